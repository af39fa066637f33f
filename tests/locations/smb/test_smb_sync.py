"""What only SMB locations do, against a real smbd: SMB → SMB times, attributes and security descriptors,
encryption, Windows-forbidden names, dropped connections. Copies, re-runs, deletes, atomic writes and
secrets kept out of records in every direction are the conformance suite's (tests/locations/test_*.py)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations import LocationError, open_location
from airflow_datasync.locations.base import SMB_ATTRIBUTES, SMB_CREATION_NS, SMB_SECURITY_DESCRIPTOR, Metadata
from airflow_datasync.locations.smb import SmbLocation, reset_pools, windows_name_problem

from .conftest import CONN_ID, ENCRYPTED_CONN_ID

#: What read_extras is asked for a security descriptor (SecurityDescriptorCopyFlags=OWNER_DACL).
SD_OWNER_DACL = {SMB_SECURITY_DESCRIPTOR: "OWNER_DACL"}

def make_tree(root: Path) -> Path:
    files = {
        "a.txt": b"alpha\n",
        "empty.bin": b"",
        "docs/readme ✓.md": b"# hello\n" * 100,
        "docs/deep/er/x.bin": os.urandom(70_000),
        "data/numbers.csv": b"1,2,3\n" * 5000,
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "empty-dir").mkdir()
    return root


def files_of(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.name.startswith(".~ds-"):
            out[str(p.relative_to(root))] = "TEMP"
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(root))] = "dir"
    return out


def mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns // 100 for p in root.rglob("*") if p.is_file()}


def run(src, dst, options=None, store=None):
    return run_execution(src, dst, options or {}, store=str(store))


def smb(folder) -> LocationSpec:
    return LocationSpec(folder.uri, folder.conn_id)


def owner_and_aces(descriptor: bytes):
    from smbprotocol.security_descriptor import SMB2CreateSDBuffer

    sd = SMB2CreateSDBuffer()
    sd.unpack(descriptor)
    aces = {(a["ace_type"].get_value(), a["mask"].get_value(), str(a["sid"].get_value()))
            for a in sd.get_dacl()["aces"].get_value()}
    return str(sd.get_owner()), aces


def test_smb_to_smb_keeps_times_attributes_and_security_descriptor(smb_folder, tmp_path):
    src_dir, dst_dir = smb_folder(), smb_folder("other")
    make_tree(tmp_path / "seed")
    assert run(str(tmp_path / "seed"), smb(src_dir), {}, tmp_path / "store")["Status"] == "SUCCESS"
    src = SmbLocation(src_dir.uri, CONN_ID)
    src._set_basic("a.txt", attributes=0x2 | 0x20)  # hidden + archive
    created = src.stat("docs/readme ✓.md").extras[SMB_CREATION_NS]

    out = run(smb(src_dir), smb(dst_dir), {"VerifyMode": "POINT_IN_TIME_CONSISTENT",
                                             "SecurityDescriptorCopyFlags": "OWNER_DACL"}, tmp_path / "store")
    assert out["Status"] == "SUCCESS", out
    assert files_of(dst_dir.disk) == files_of(src_dir.disk)
    dst = SmbLocation(dst_dir.uri, CONN_ID)
    assert dst.stat("a.txt").extras[SMB_ATTRIBUTES] & 0x2
    assert dst.stat("docs/readme ✓.md").extras[SMB_CREATION_NS] == created
    assert dst.stat("docs/readme ✓.md").mtime_ns == src.stat("docs/readme ✓.md").mtime_ns
    for path in ("a.txt", "docs/deep/er/x.bin"):
        # Samba (without vfs_acl_xattr) stores a DACL as a POSIX ACL and may return it with a duplicate
        # entry: compare the owner and the set of access entries, not the bytes.
        assert owner_and_aces(dst.read_extras(path, SD_OWNER_DACL)[SMB_SECURITY_DESCRIPTOR]) == \
            owner_and_aces(src.read_extras(path, SD_OWNER_DACL)[SMB_SECURITY_DESCRIPTOR])
    assert run(smb(src_dir), smb(dst_dir), {}, tmp_path / "store")["FilesTransferred"] == 0


def test_encrypted_session_copies(smb_folder, tmp_path):
    src = make_tree(tmp_path / "src")
    dst = smb_folder(conn_id=ENCRYPTED_CONN_ID)
    out = run(str(src), smb(dst), {}, tmp_path / "store")
    assert out["Status"] == "SUCCESS", out
    assert files_of(dst.disk) == files_of(src)
    session = SmbLocation(dst.uri, ENCRYPTED_CONN_ID)._session()
    assert session.encrypt_data is True
    assert session.connection.dialect == 0x0311


def test_names_windows_forbids_are_reported_per_file(smb_folder, tmp_path):
    src = make_tree(tmp_path / "src")
    for name in ("aux.txt", "a:b", "trailing.", "COM1", "q?.txt"):
        (src / name).write_bytes(b"x")
    (src / "con").mkdir()
    (src / "con" / "inside.txt").write_bytes(b"x")
    dst = smb_folder()
    out = run(str(src), smb(dst), {}, tmp_path / "store")
    # Refused per entry in PREPARING (the destination's name_problem), before any write: SourceErrors.
    assert out["Status"] == "ERROR" and out["ErrorCode"] == "SourceErrors"
    assert out["FilesFailedDetail"]["Transfer"] == 0
    rows = {r["path"]: r for r in pq.read_table(out["ReportUri"]).to_pylist()}
    for path, rule in (("aux.txt", "reserved device name AUX"), ("a:b", "':'"), ("trailing.", "ends with a dot"),
                       ("COM1", "reserved device name COM1"), ("q?.txt", "'?'"), ("con", "reserved device name CON"),
                       ("con/inside.txt", "reserved device name CON")):
        assert rows[path]["status"] == "FAILED", rows[path]
        assert path in rows[path]["error"] and rule in rows[path]["error"], rows[path]["error"]
    assert set(files_of(dst.disk)) == set(files_of(make_tree(tmp_path / "clean")))  # the rest copied, nothing renamed


def test_windows_name_rules():
    for bad in ("CON", "con.txt", "Lpt9.log", "nul", "a<b", 'x"y', "pipe|", "star*", "ctl\x01", "dot.", "space "):
        assert windows_name_problem(bad), bad
    for good in ("CONSOLE", "COM10", "con-x.txt", "a.b.c", ".hidden", "ünïcode ✓", "LPT"):
        assert windows_name_problem(good) is None, good


def test_dropped_connections_are_reestablished(smb_folder, drop_connections, tmp_path):
    src = make_tree(tmp_path / "src")
    dst = smb_folder()
    store = tmp_path / "store"
    assert run(str(src), smb(dst), {}, store)["Status"] == "SUCCESS"
    assert drop_connections() >= 1  # the pooled connection is now dead on the server side
    (src / "later.txt").write_bytes(b"after the drop")
    out = run(str(src), smb(dst), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store)
    assert out["Status"] == "SUCCESS", out
    assert out["FilesTransferred"] == 1 and (dst.disk / "later.txt").read_bytes() == b"after the drop"

    # A read in progress re-opens the file and goes on at the same offset.
    payload = os.urandom(3 * 1024 * 1024 + 17)
    (dst.disk / "stream.bin").write_bytes(payload)
    loc = SmbLocation(dst.uri, CONN_ID)
    with loc.open_read("stream.bin") as fh:
        head = fh.read(1024 * 1024)
        assert drop_connections() >= 1
        rest = b"".join(iter(lambda: fh.read(1024 * 1024), b""))
    assert head + rest == payload

    reset_pools()  # a pool emptied between files: the next file opens a new session
    assert loc.stat("stream.bin").size == len(payload)


def test_the_connection_settings_never_show_the_password(samba, smb_folder):
    # (records and logs of every pair with SMB are checked by tests/locations/test_pairs.py)
    assert samba.password not in repr(SmbLocation(smb_folder().uri, CONN_ID).config)


def test_bad_locations_are_refused_clearly(samba, smb_folder, tmp_path, monkeypatch):
    with pytest.raises(LocationError, match="not in the URI"):
        open_location(f"smb://root:pw@127.0.0.1:{samba.port}/data/x", CONN_ID)
    with pytest.raises(LocationError, match="smb://server"):
        open_location("smb://127.0.0.1", CONN_ID)
    with pytest.raises(LocationError, match="not defined"):
        open_location(f"smb://127.0.0.1:{samba.port}/data", "no_such_conn").check(writable=False)
    with pytest.raises(LocationError, match="does not exist"):
        open_location(f"smb://127.0.0.1:{samba.port}/data/missing/deeper", CONN_ID).check(writable=True)
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_SMB_WRONG", json.dumps(
        {"conn_type": "datasync_smb", "host": "127.0.0.1", "port": samba.port, "login": "root", "password": "wrong-pw"}))
    with pytest.raises(LocationError) as info:
        open_location(f"smb://127.0.0.1:{samba.port}/data", "datasync_smb_wrong").check(writable=False)
    assert "authentication failed" in str(info.value) and "wrong-pw" not in str(info.value)
    # A missing destination folder is created when its parent exists (one folder per day).
    folder = smb_folder(create=False)
    open_location(folder.uri, CONN_ID).check(writable=True)
    assert folder.disk.is_dir()
    # The symlink refusal is per entry and explicit.
    loc = SmbLocation(folder.uri, CONN_ID)
    with pytest.raises(LocationError, match="does not support symbolic links"):
        loc.symlink("link", "target.txt", Metadata(), tag="t-0")
    assert list(folder.disk.iterdir()) == []
