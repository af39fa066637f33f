"""SmbLocation.write works on one open handle (create → write → SET_INFO metadata → before_commit → SET_INFO
rename → close) and looks at the final path only when the rename fails: a directory in the way, a read-only
file to replace, an entry that appeared with overwrite=False."""

from __future__ import annotations

import os

import pytest

from airflow_datasync.locations import LocationError
from airflow_datasync.locations.base import SMB_ATTRIBUTES, SMB_CREATION_NS, Metadata
from airflow_datasync.locations.smb import ATTR_READONLY, COPIED_ATTRIBUTES, SmbLocation

from .conftest import CONN_ID

MTIME = 1_700_000_000_123_456_700
ATIME = 1_700_000_100_000_000_000


def _names(disk):
    return sorted(p.name for p in disk.iterdir())


@pytest.mark.parametrize("overwrite", [True, False])
def test_directory_in_the_way_is_a_clear_error(smb_folder, overwrite):
    dst = smb_folder()
    (dst.disk / "sub" / "thing").mkdir(parents=True)
    (dst.disk / "sub" / "thing" / "inside.txt").write_bytes(b"kept")
    loc = SmbLocation(dst.uri, CONN_ID)
    with pytest.raises(LocationError, match="'sub/thing' is a directory at the destination and a file at the source"):
        loc.write("sub/thing", iter([b"data"]), Metadata(mtime_ns=MTIME), tag="t-0", overwrite=overwrite)
    assert _names(dst.disk / "sub") == ["thing"]  # no temporary file left
    assert (dst.disk / "sub" / "thing" / "inside.txt").read_bytes() == b"kept"


def test_read_only_file_is_replaced(smb_folder):
    dst = smb_folder()
    loc = SmbLocation(dst.uri, CONN_ID)
    loc.write("ro.txt", iter([b"old"]), Metadata(mtime_ns=MTIME, extras={SMB_ATTRIBUTES: ATTR_READONLY}), tag="t-0")
    assert loc.stat("ro.txt").extras[SMB_ATTRIBUTES] & ATTR_READONLY
    loc.write("ro.txt", iter([b"new"]), Metadata(mtime_ns=MTIME, extras={SMB_ATTRIBUTES: ATTR_READONLY}), tag="t-0")
    assert (dst.disk / "ro.txt").read_bytes() == b"new"
    s = loc.stat("ro.txt")
    assert s.extras[SMB_ATTRIBUTES] & ATTR_READONLY and s.mtime_ns == MTIME
    assert _names(dst.disk) == ["ro.txt"]


def test_times_applied_on_the_handle_and_no_leftovers(smb_folder):
    dst = smb_folder()
    loc = SmbLocation(dst.uri, CONN_ID)
    payload = os.urandom(100_000)
    seen = []
    n = loc.write("d/f.bin", iter([payload[:50_000], payload[50_000:]]),
                  Metadata(mtime_ns=MTIME, atime_ns=ATIME), tag="t-0", before_commit=seen.append)
    assert n.size == len(payload) and seen == [len(payload)]
    s = loc.stat("d/f.bin")  # before reading it back, which moves the access time
    assert (s.size, s.mtime_ns, s.atime_ns) == (len(payload), MTIME, ATIME)
    assert (dst.disk / "d" / "f.bin").read_bytes() == payload
    assert _names(dst.disk / "d") == ["f.bin"]

    def refuse(written):
        assert not (dst.disk / "d" / "g.bin").exists()  # nothing visible before the commit
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        loc.write("d/g.bin", iter([b"x"]), Metadata(mtime_ns=MTIME), tag="t-0", before_commit=refuse)
    assert _names(dst.disk / "d") == ["f.bin"]
    with pytest.raises(FileExistsError):
        loc.write("d/f.bin", iter([b"x"]), Metadata(mtime_ns=MTIME), tag="t-0", overwrite=False)
    assert _names(dst.disk / "d") == ["f.bin"] and (dst.disk / "d" / "f.bin").read_bytes() == payload
    loc.write("d/h.bin", iter([b"new"]), Metadata(mtime_ns=MTIME), tag="t-0", overwrite=False)
    assert (dst.disk / "d" / "h.bin").read_bytes() == b"new"


def test_a_small_file_costs_five_requests(smb_folder, monkeypatch):
    from smbprotocol.connection import Connection

    dst = smb_folder()
    loc = SmbLocation(dst.uri, CONN_ID)
    loc.mkdir("d")
    loc.write("d/warm.bin", iter([b"w"]), Metadata(mtime_ns=MTIME), tag="t-0")  # session and tree ready
    sent = []
    send, send_compound = Connection.send, Connection.send_compound

    def count(self, message, *a, **k):
        sent.append(type(message).__name__)
        return send(self, message, *a, **k)

    def count_compound(self, messages, *a, **k):
        sent.extend(type(m).__name__ for m in messages)
        return send_compound(self, messages, *a, **k)

    monkeypatch.setattr(Connection, "send", count)
    monkeypatch.setattr(Connection, "send_compound", count_compound)
    loc.write("d/f.bin", iter([b"data"]), Metadata(mtime_ns=MTIME, atime_ns=ATIME), tag="t-0")
    assert sent == ["SMB2CreateRequest", "SMB2WriteRequest", "SMB2SetInfoRequest", "SMB2SetInfoRequest",
                    "SMB2CloseRequest"], sent


def test_stat_matches_smbclient_lstat(smb_folder):
    import smbclient

    dst = smb_folder()
    loc = SmbLocation(dst.uri, CONN_ID)
    loc.write("d/f.bin", iter([b"12345"]),
              Metadata(mtime_ns=MTIME, atime_ns=ATIME, extras={SMB_ATTRIBUTES: ATTR_READONLY}), tag="t-0")
    for path in ("d", "d/f.bin"):
        mine = loc.stat(path)
        ref = smbclient.lstat(loc._unc(path), **loc._kw())
        size = mine.size if mine.type == "file" else ref.st_size
        assert (size, mine.mtime_ns, mine.atime_ns, mine.extras[SMB_CREATION_NS]) == (
            ref.st_size, ref.st_mtime_ns, ref.st_atime_ns, ref.st_ctime_ns)
        assert mine.extras[SMB_ATTRIBUTES] == ref.st_file_attributes & COPIED_ATTRIBUTES
    assert loc.stat("d/f.bin").type == "file" and loc.stat("d").type == "dir" and loc.stat("nope") is None
