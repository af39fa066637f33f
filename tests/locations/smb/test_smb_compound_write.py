"""A small file is written in ONE compound send (create + write + SET_INFO + rename + close) and a new
directory in one (create + close), against the real smbd: what arrives is what the streaming path gives,
a refused request leaves the same outcome and no temporary, and a connection dropped under a compound
converges with no temporary and no partial file at a final name."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.errors import AlreadyExistsError
from airflow_datasync.locations import LocationError
from airflow_datasync.locations.base import (
    SMB_ATTRIBUTES,
    SMB_CREATION_NS,
    SMB_SECURITY_DESCRIPTOR,
    SMB_SECURITY_FLAGS,
    Metadata,
)
from airflow_datasync.locations.smb import ATTR_READONLY, SmbLocation

from .conftest import CONN_ID, ENCRYPTED_CONN_ID
from .test_smb_sync import owner_and_aces

MTIME = 1_700_000_000_123_456_700
ATIME = 1_700_000_100_000_000_000
CREATED = 1_600_000_000_987_654_300
ATTR_HIDDEN = 0x2


class Sends:
    """What the location hands smbprotocol's Connection: one entry per send, the request types in it."""

    def __init__(self, monkeypatch):
        from smbprotocol.connection import Connection

        self.sends: list[list[str]] = []
        send, send_compound = Connection.send, Connection.send_compound

        def one(conn, message, *a, **k):
            self.sends.append([type(message).__name__])
            return send(conn, message, *a, **k)

        def compound(conn, messages, *a, **k):
            self.sends.append([type(m).__name__ for m in messages])
            return send_compound(conn, messages, *a, **k)

        monkeypatch.setattr(Connection, "send", one)
        monkeypatch.setattr(Connection, "send_compound", compound)


def _temporaries(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob(".~ds-*")]


@pytest.mark.parametrize("conn_id", [CONN_ID, ENCRYPTED_CONN_ID], ids=["signed", "encrypted"])
def test_one_compound_send_per_small_file(smb_folder, monkeypatch, conn_id):
    dst = smb_folder(conn_id=conn_id)
    loc = SmbLocation(dst.uri, conn_id)
    loc.mkdir("d")
    loc.write("d/warm.bin", iter([b"w"]), Metadata(mtime_ns=MTIME), tag="t-0")  # session and tree ready
    payloads = {f"d/f{i:02}.bin": os.urandom(i * 997) for i in range(50)}  # 0 bytes to ~48 KiB
    sends = Sends(monkeypatch)
    for path, data in payloads.items():
        meta = Metadata(mtime_ns=MTIME, atime_ns=ATIME, extras={SMB_CREATION_NS: CREATED, SMB_ATTRIBUTES: ATTR_HIDDEN})
        half = len(data) // 2
        assert loc.write(path, iter([data[:half], data[half:]]), meta, tag="t-0").size == len(data)
    assert len(sends.sends) == 50, sends.sends[:5]
    assert sends.sends[0] == ["SMB2CreateRequest", "SMB2WriteRequest", "SMB2SetInfoRequest", "SMB2SetInfoRequest",
                              "SMB2CloseRequest"]
    for path, data in payloads.items():
        s = loc.stat(path)  # before reading it back, which moves the access time
        assert (s.mtime_ns, s.atime_ns, s.extras[SMB_CREATION_NS]) == (MTIME, ATIME, CREATED)
        assert s.extras[SMB_ATTRIBUTES] & ATTR_HIDDEN
        assert (dst.disk / path).read_bytes() == data
    assert _temporaries(dst.disk) == []


def test_a_file_over_the_small_limit_streams(smb_folder, monkeypatch):
    dst = smb_folder()
    loc = SmbLocation(dst.uri, CONN_ID)
    loc.mkdir("d")
    big = os.urandom((1 << 20) + 1)
    sends = Sends(monkeypatch)
    loc.write("d/big.bin", iter([big[:4096], big[4096:]]), Metadata(mtime_ns=MTIME), tag="t-0")
    assert (dst.disk / "d" / "big.bin").read_bytes() == big and loc.stat("d/big.bin").mtime_ns == MTIME
    assert sends.sends[0] == ["SMB2CreateRequest"] and len(sends.sends) > 1
    exactly = big[: 1 << 20]
    sends.sends.clear()
    loc.write("d/limit.bin", iter([exactly]), Metadata(mtime_ns=MTIME), tag="t-0")
    assert len(sends.sends) == 1 and (dst.disk / "d" / "limit.bin").read_bytes() == exactly


def test_new_directories_cost_one_compound_each(smb_folder, monkeypatch):
    dst = smb_folder()
    (dst.disk / "there").mkdir()
    (dst.disk / "file").write_bytes(b"in the way")
    loc = SmbLocation(dst.uri, CONN_ID)
    loc.stat("")  # session and tree ready
    sends = Sends(monkeypatch)
    loc.mkdir("a/b/c")
    loc.mkdir("there")
    assert sends.sends == [["SMB2CreateRequest", "SMB2CloseRequest"]] * 4
    assert (dst.disk / "a" / "b" / "c").is_dir()
    with pytest.raises(LocationError, match="'file' exists at the destination and is not a directory"):
        loc.mkdir("file")
    with pytest.raises(LocationError, match="'file' exists at the destination and is not a directory"):
        loc.write("file/x.txt", iter([b"x"]), Metadata(), tag="t-0")
    assert (dst.disk / "file").read_bytes() == b"in the way"


def test_credits_taken_by_a_request_not_yet_outstanding_are_waited_for(smb_folder):
    """Another thread's request has taken every credit but is not outstanding yet (it is being packed or
    signed): a compound waits for the credits instead of reading the window as too narrow (a kill -9 case
    failed on and off with "2 credits needed for a compound, 0 granted")."""
    dst = smb_folder()
    loc = SmbLocation(dst.uri, CONN_ID)
    loc.stat("")
    connection = loc._session().connection
    window = connection.sequence_window
    with connection.sequence_lock:
        high = window["high"]
        window["high"] = window["low"]
    assert not connection.outstanding_requests
    timer = threading.Timer(0.3, lambda: window.__setitem__("high", max(window["high"], high)))
    timer.start()
    try:
        loc.write("new/dir/a.txt", iter([b"a"]), Metadata(mtime_ns=MTIME), tag="t-0")
    finally:
        timer.join()
    assert (dst.disk / "new" / "dir" / "a.txt").read_bytes() == b"a"


def test_a_window_narrower_than_a_compound_goes_one_request_at_a_time(smb_folder, monkeypatch):
    dst = smb_folder()
    loc = SmbLocation(dst.uri, CONN_ID)
    loc.stat("")
    connection = loc._session().connection
    window = connection.sequence_window
    free = window["high"] - window["low"]
    monkeypatch.setattr(connection, "_datasync_widest_window", 1, raising=False)
    with connection.sequence_lock:
        window["high"] = window["low"] + 1  # one credit: every request returns the one it takes
    sends = Sends(monkeypatch)
    try:
        loc.write("narrow/a.txt", iter([b"narrow"]), Metadata(mtime_ns=MTIME), tag="t-0")
    finally:
        with connection.sequence_lock:
            window["high"] = max(window["high"], window["low"] + free)
    assert all(len(send) == 1 for send in sends.sends), sends.sends
    assert (dst.disk / "narrow" / "a.txt").read_bytes() == b"narrow"
    assert sorted(p.name for p in (dst.disk / "narrow").iterdir()) == ["a.txt"]


@pytest.mark.parametrize("overwrite", [True, False])
def test_refused_renames_keep_todays_outcomes_and_leave_no_temporary(smb_folder, overwrite):
    dst = smb_folder()
    (dst.disk / "dir" / "inside").mkdir(parents=True)
    loc = SmbLocation(dst.uri, CONN_ID)
    with pytest.raises(LocationError, match="'dir' is a directory at the destination and a file at the source"):
        loc.write("dir", iter([b"data"]), Metadata(mtime_ns=MTIME), tag="t-0", overwrite=overwrite)
    assert sorted(p.name for p in dst.disk.iterdir()) == ["dir"]

    ro = Metadata(mtime_ns=MTIME, extras={SMB_ATTRIBUTES: ATTR_READONLY})
    loc.write("ro.txt", iter([b"old"]), ro, tag="t-0")
    if overwrite:
        loc.write("ro.txt", iter([b"new"]), ro, tag="t-0")  # read-only attribute cleared, renamed again
        assert (dst.disk / "ro.txt").read_bytes() == b"new"
        assert loc.stat("ro.txt").extras[SMB_ATTRIBUTES] & ATTR_READONLY
    else:
        with pytest.raises(AlreadyExistsError):
            loc.write("ro.txt", iter([b"new"]), ro, tag="t-0", overwrite=False)
        assert (dst.disk / "ro.txt").read_bytes() == b"old"
    assert sorted(p.name for p in dst.disk.iterdir()) == ["dir", "ro.txt"]


def test_security_descriptor_goes_before_the_rename(smb_folder, monkeypatch):
    dst = smb_folder()
    loc = SmbLocation(dst.uri, CONN_ID)
    loc.write("model.txt", iter([b"model"]), Metadata(mtime_ns=MTIME), tag="t-0")
    extras = loc.read_extras("model.txt", {SMB_SECURITY_DESCRIPTOR: "OWNER_DACL"})
    assert extras[SMB_SECURITY_DESCRIPTOR]
    sends = Sends(monkeypatch)
    loc.write("copy.txt", iter([b"copy"]), Metadata(mtime_ns=MTIME, extras=extras), tag="t-0")
    assert sends.sends == [["SMB2CreateRequest", "SMB2WriteRequest", "SMB2SetInfoRequest", "SMB2SetInfoRequest"],
                           ["SMB2SetInfoRequest", "SMB2CloseRequest"]]
    copied = loc.read_extras("copy.txt", {SMB_SECURITY_DESCRIPTOR: "OWNER_DACL"})[SMB_SECURITY_DESCRIPTOR]
    assert owner_and_aces(copied) == owner_and_aces(extras[SMB_SECURITY_DESCRIPTOR])  # as test_smb_sync compares
    assert (dst.disk / "copy.txt").read_bytes() == b"copy" and loc.stat("copy.txt").mtime_ns == MTIME

    # A descriptor the server refuses: the file fails, the old one stays, no temporary is left.
    bad = {SMB_SECURITY_DESCRIPTOR: b"\x01\x00\x04\x80" + b"\xff" * 16, SMB_SECURITY_FLAGS: "OWNER_DACL"}
    with pytest.raises(LocationError):
        loc.write("copy.txt", iter([b"refused"]), Metadata(mtime_ns=MTIME, extras=bad), tag="t-0")
    assert (dst.disk / "copy.txt").read_bytes() == b"copy"
    assert sorted(p.name for p in dst.disk.iterdir()) == ["copy.txt", "model.txt"]


def test_a_connection_dropped_under_a_compound_write(smb_folder, drop_connections, monkeypatch):
    """The compound went out and the connection died before its answers: the write goes on over a new
    connection (the temporary, if the server made one, removed by path) and lands whole, once."""
    from smbprotocol.connection import Connection

    dst = smb_folder()
    loc = SmbLocation(dst.uri, CONN_ID)
    loc.mkdir("d")
    send_compound = Connection.send_compound
    dropped = []

    def send_then_drop(conn, messages, *a, **k):
        requests = send_compound(conn, messages, *a, **k)
        if not dropped and type(messages[0]).__name__ == "SMB2CreateRequest" and len(messages) > 2:
            dropped.append(drop_connections())
        return requests

    monkeypatch.setattr(Connection, "send_compound", send_then_drop)
    data = os.urandom(4096)
    loc.write("d/f.bin", iter([data]), Metadata(mtime_ns=MTIME), tag="t-0")
    assert dropped and dropped[0] >= 1
    assert (dst.disk / "d" / "f.bin").read_bytes() == data and loc.stat("d/f.bin").mtime_ns == MTIME
    assert sorted(p.name for p in (dst.disk / "d").iterdir()) == ["f.bin"]


def test_connections_dropped_during_an_execution_converge(smb_folder, drop_connections, tmp_path):
    src = tmp_path / "src"
    files = {f"s{i % 7}/f{i:03}.bin": os.urandom(4096 + i) for i in range(300)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    dst = smb_folder()
    done = threading.Event()

    def dropper():
        thresholds = [40, 120, 220]
        while thresholds and not done.is_set():
            written = sum(1 for _ in dst.disk.rglob("f*.bin"))
            if written >= thresholds[0]:
                thresholds.pop(0)
                drop_connections()
            done.wait(0.005)

    thread = threading.Thread(target=dropper)
    thread.start()
    try:
        statuses = []
        for _ in range(3):
            out = run_execution(str(src), smb_uri(dst), {}, store=str(tmp_path / "store"))
            statuses.append(out["Status"])
            for path in dst.disk.rglob("f*.bin"):  # never a partial file at a final name
                rel = str(path.relative_to(dst.disk))
                assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(files[rel]).digest(), rel
            if out["Status"] == "SUCCESS":
                break
    finally:
        done.set()
        thread.join()
    assert statuses[-1] == "SUCCESS", statuses
    assert _temporaries(dst.disk) == []
    assert {str(p.relative_to(dst.disk)) for p in dst.disk.rglob("f*.bin")} == set(files)


def smb_uri(folder) -> LocationSpec:
    return LocationSpec(folder.uri, folder.conn_id)


def test_lean_requests_pack_as_smbprotocol_does():
    """The lean packers of the hot requests give smbprotocol's bytes (and what its credit charge reads)."""
    from smbprotocol.file_info import FileBasicInformation, FileRenameInformation, InfoType
    from smbprotocol.open import SMB2CloseRequest, SMB2CreateRequest, SMB2SetInfoRequest, SMB2WriteRequest

    from airflow_datasync.locations.smb import messages

    for name in ("d\\.~ds-t-0-x-f.bin", "", "ünï ✓\\x"):
        ref = SMB2CreateRequest()
        for key, value in (("impersonation_level", 2), ("desired_access", 0x110116), ("file_attributes", 0x80),
                           ("share_access", 0), ("create_disposition", 5), ("create_options", 0x40)):
            ref[key] = value
        ref["buffer_path"] = name.encode("utf-16-le") if name else b"\x00\x00"
        lean = messages.create_request(name, 0x110116, 0x80, 0, 5, 0x40)
        assert lean.pack() == ref.pack() and len(lean) == len(ref) and lean.COMMAND == ref.COMMAND

    for data in (b"", b"x", os.urandom(70_000)):
        ref = SMB2WriteRequest()
        ref["length"] = len(data)
        ref["file_id"] = messages.RELATED_FILE_ID
        ref["buffer"] = data
        lean = messages.write_request(data)
        assert lean.pack() == ref.pack() and lean.COMMAND == ref.COMMAND
        for item in ("length", "write_channel_info_length"):
            assert lean[item].get_value() == ref[item].get_value()

    basic = FileBasicInformation()
    for key, value in (("creation_time", 1), ("last_access_time", 2), ("last_write_time", 3), ("change_time", 0),
                       ("file_attributes", 0x22)):
        basic[key] = value
    rename = FileRenameInformation()
    rename["replace_if_exists"] = True
    rename["file_name"] = "d\\ünï ✓.txt"
    for info, lean_buffer in ((basic, messages.basic_info(1, 2, 3, 0x22)),
                              (rename, messages.rename_info("d\\ünï ✓.txt", True))):
        ref = SMB2SetInfoRequest()
        ref["info_type"] = info.INFO_TYPE
        ref["file_info_class"] = info.INFO_CLASS
        ref["file_id"] = b"\x01" * 16
        ref["buffer"] = info
        lean = messages.set_info_request(messages.INFO_FILE, info.INFO_CLASS, lean_buffer, file_id=b"\x01" * 16)
        assert lean.pack() == ref.pack() and lean.COMMAND == ref.COMMAND
    ref = SMB2SetInfoRequest()
    ref["info_type"] = InfoType.SMB2_0_INFO_SECURITY
    ref["additional_information"] = 5
    ref["file_id"] = messages.RELATED_FILE_ID
    ref["buffer"] = b"descriptor"
    assert messages.set_info_request(messages.INFO_SECURITY, 0, b"descriptor", 5).pack() == ref.pack()

    ref = SMB2CloseRequest()
    ref["file_id"] = messages.RELATED_FILE_ID
    lean = messages.close_request()
    assert lean.pack() == ref.pack()
    rehydrated = type(lean)()  # what smbprotocol's Request.get_message_data does with a sent request
    rehydrated.unpack(lean.pack())
    assert isinstance(rehydrated, SMB2CloseRequest) and rehydrated["file_id"].get_value() == messages.RELATED_FILE_ID
