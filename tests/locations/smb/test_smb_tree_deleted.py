"""A share connection (tree connect) the server deletes under a pooled connection (``smbcontrol close-share``,
as an administrator's ``net share /delete`` or a share reconfigured): the next operation fails with
STATUS_NETWORK_NAME_DELETED, the location drops that connection and goes on on a new one. A real smbd."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from airflow_datasync.locations.smb import SmbLocation
from airflow_datasync.locations.smb.dir_query import TreeLister
from airflow_datasync.locations.smb.protocol import connection_alive

from .conftest import CONN_ID
from .test_smb_compound_read import seed

STATUS_NETWORK_NAME_DELETED = 0xC00000C9
#: How long the test waits for smbd to act on the close-share message (a bound, not a measured time).
PATIENCE_S = 30


def _close_share(samba, loc: SmbLocation) -> None:
    """Have smbd delete the tree connects of the share ``loc`` is on, and wait until the tree ``loc``'s
    thread holds is refused."""
    from smbprotocol.exceptions import SMBResponseException

    tree, _name = loc._tree("")
    subprocess.run(["smbcontrol", "-s", str(samba.root / "smb.conf"), "smbd", "close-share", loc.target.share],
                   check=True, capture_output=True)
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        try:
            TreeLister(tree).entries(loc._unc(), loc._kw())
        except SMBResponseException as exc:
            if exc.status != STATUS_NETWORK_NAME_DELETED:
                raise
            return
        time.sleep(0.05)
    pytest.fail("smbd did not close the share")


def test_a_scan_goes_on_after_the_server_deleted_its_tree(samba, smb_folder):
    """The scan's listings are sent on the new connection, not again on the dropped one; that one is closed."""
    folder = smb_folder()
    files = {f"d{d}/f{i}.bin": os.urandom(8 + i) for d in range(4) for i in range(3)}
    seed(folder.disk, files)
    loc = SmbLocation(folder.uri, CONN_ID)
    assert sorted(r["path"] for b in loc.scan() for r in b.to_pylist() if r["type"] == "file") == sorted(files)
    dropped = loc._session().connection
    _close_share(samba, loc)
    rows = [r for b in loc.scan() for r in b.to_pylist()]
    assert sorted(r["path"] for r in rows if r["type"] == "file") == sorted(files)
    assert not [r for r in rows if r["error"]], rows
    assert loc._session().connection is not dropped
    assert not connection_alive(dropped)  # its socket and receiver thread are gone, not left open


def test_a_read_goes_on_after_the_server_deleted_its_tree(samba, smb_folder):
    folder = smb_folder()
    seed(folder.disk, {"a.bin": b"a" * 100, "b.bin": b"b" * 100})
    loc = SmbLocation(folder.uri, CONN_ID)
    with loc.open_read("a.bin") as fh:
        assert fh.read() == b"a" * 100
    dropped = loc._session().connection
    _close_share(samba, loc)
    with loc.open_read("b.bin") as fh:
        assert fh.read() == b"b" * 100
    assert not connection_alive(dropped)
