"""A compound goes out only when the connection has the credits of all its requests: a READ or WRITE of a
small file (up to 1 MiB) charges one credit per 64 KiB (MS-SMB2 3.1.5.2), not one. Short of them,
smbprotocol numbers the requests one by one and refuses midway, after the first ones took their message
ids: ids that are never sent, which the server's window cannot move past. A real smbd; the window is made
narrow by hand, as a busy connection's is, and widened again shortly after."""

from __future__ import annotations

import os
import threading

import pytest

from airflow_datasync.locations.base import Metadata
from airflow_datasync.locations.smb import SmbLocation
from airflow_datasync.locations.smb.messages import SMALL_FILE_BYTES
from airflow_datasync.locations.smb.receive import LeanConnection

from .conftest import CONN_ID

MTIME = 1_700_000_000_000_000_000
#: Credits left free: more than a small-file compound has requests, fewer than its READ or WRITE charges.
NARROW = 8
#: When the window is widened again (the wait for credits has begun by then; not a measured time).
WIDEN_AFTER_S = 0.3


@pytest.fixture
def burned_ids(monkeypatch) -> list:
    """Sends that raised after taking message ids (the window's low edge moved, nothing went out)."""
    burned: list = []
    original = LeanConnection._send

    def _send(self, messages, *args, **kwargs):
        low = self.sequence_window["low"]
        try:
            return original(self, messages, *args, **kwargs)
        except Exception:
            if self.sequence_window["low"] != low:
                burned.append(([type(m).__name__ for m in messages], self.sequence_window["low"] - low))
            raise

    monkeypatch.setattr(LeanConnection, "_send", _send)
    return burned


def _narrowed(loc: SmbLocation) -> threading.Timer:
    connection = loc._session().connection
    window = connection.sequence_window
    with connection.sequence_lock:
        free = window["high"] - window["low"]
        window["high"] = window["low"] + NARROW
    assert free > 2 * NARROW
    timer = threading.Timer(WIDEN_AFTER_S, lambda: window.__setitem__("high", window["low"] + free))
    timer.start()
    return timer


def test_a_small_file_write_waits_for_its_writes_credits(smb_folder, burned_ids):
    folder = smb_folder()
    loc = SmbLocation(folder.uri, CONN_ID)
    data = os.urandom(SMALL_FILE_BYTES)
    loc.write("warm.bin", iter([b"w"]), Metadata(mtime_ns=MTIME), tag="t-0")
    timer = _narrowed(loc)
    try:
        loc.write("a.bin", iter([data]), Metadata(mtime_ns=MTIME), tag="t-0")
    finally:
        timer.join()
    assert (folder.disk / "a.bin").read_bytes() == data
    assert not burned_ids, burned_ids


def test_a_small_file_read_waits_for_its_reads_credits(smb_folder, burned_ids):
    folder = smb_folder()
    data = os.urandom(SMALL_FILE_BYTES)
    (folder.disk / "a.bin").write_bytes(data)
    loc = SmbLocation(folder.uri, CONN_ID)
    assert loc.stat("a.bin") is not None
    timer = _narrowed(loc)
    try:
        with loc.open_read("a.bin") as fh:
            assert fh.read() == data
    finally:
        timer.join()
    assert not burned_ids, burned_ids


def test_a_compound_short_of_credits_at_send_waits_and_burns_no_ids(smb_folder, burned_ids):
    """The window narrowed between a caller's credit check and its send (another thread's requests took
    the credits): the compound is refused whole, before any message id is taken, as a wait for credits."""
    from airflow_datasync.locations.smb.dir_query import TreeLister
    from airflow_datasync.locations.smb.error_table import ConnectionBusyError

    folder = smb_folder()
    (folder.disk / "d").mkdir()
    loc = SmbLocation(folder.uri, CONN_ID)
    tree, _name = loc._tree("")
    lister = TreeLister(tree)
    connection = tree.session.connection
    window = connection.sequence_window
    with connection.sequence_lock:
        free, window["high"] = window["high"] - window["low"], window["low"] + 2  # a listing compound takes 4
    try:
        with pytest.raises(ConnectionBusyError):
            lister._send(loc._unc("d"))
        lister.send_ahead([loc._unc("d")])  # sending ahead stops quietly
        assert not lister._pending
    finally:
        with connection.sequence_lock:
            window["high"] = window["low"] + free
    assert not burned_ids, burned_ids
    assert not connection.outstanding_requests
    listed = {name.decode("utf-16-le") for name, *_rest in lister.entries(loc._unc("d"), loc._kw())}
    assert listed <= {".", ".."}  # the empty directory, listed once the credits are back
