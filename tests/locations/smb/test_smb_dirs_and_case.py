"""SMB directories keep their security descriptor, attributes and creation time (SMB → SMB), and names
that differ only in case are handled as a case-insensitive share sees them; against the real smbd."""

from __future__ import annotations

import os

import pyarrow.parquet as pq

from airflow_datasync.locations.base import SMB_ATTRIBUTES, SMB_CREATION_NS, SMB_SECURITY_DESCRIPTOR
from airflow_datasync.locations.smb import EPOCH_FILETIME, SmbLocation

from .conftest import CONN_ID
from .test_smb_sync import files_of, make_tree, owner_and_aces, run, smb

#: What read_extras is asked for a security descriptor (SecurityDescriptorCopyFlags=OWNER_DACL).
SD_OWNER_DACL = {SMB_SECURITY_DESCRIPTOR: "OWNER_DACL"}

HIDDEN, SYSTEM, DIRECTORY = 0x2, 0x4, 0x10
CREATED_NS = 981_173_106_000_000_000  # 2001-02-03 04:05:06 UTC


def test_smb_to_smb_keeps_directory_security_descriptor_attributes_and_creation_time(smb_folder, tmp_path):
    src_dir = smb_folder()
    make_tree(tmp_path / "seed")
    assert run(str(tmp_path / "seed"), smb(src_dir), {}, tmp_path / "store")["Status"] == "SUCCESS"
    src = SmbLocation(src_dir.uri, CONN_ID)
    src._set_basic("docs", attributes=HIDDEN | SYSTEM | DIRECTORY,
                   creation=CREATED_NS // 100 + EPOCH_FILETIME)
    # A DACL that differs from what a new folder inherits: no access for group and others.
    os.chmod(src_dir.disk / "docs" / "deep", 0o700)
    source_acl = owner_and_aces(src.read_extras("docs/deep", SD_OWNER_DACL)[SMB_SECURITY_DESCRIPTOR])

    copies = {}
    for flags in ("OWNER_DACL", "NONE"):
        dst_dir = smb_folder("other")
        out = run(smb(src_dir), smb(dst_dir), {"SecurityDescriptorCopyFlags": flags,
                                                "VerifyMode": "POINT_IN_TIME_CONSISTENT"}, tmp_path / "store")
        assert out["Status"] == "SUCCESS", out
        assert files_of(dst_dir.disk) == files_of(src_dir.disk)
        copies[flags] = dst = SmbLocation(dst_dir.uri, CONN_ID)
        # Attributes and creation time travel with every SMB → SMB copy, like a file's.
        docs = dst.stat("docs")
        assert docs.extras[SMB_ATTRIBUTES] & (HIDDEN | SYSTEM) == HIDDEN | SYSTEM, hex(docs.extras[SMB_ATTRIBUTES])
        assert docs.extras[SMB_CREATION_NS] == src.stat("docs").extras[SMB_CREATION_NS] == CREATED_NS
        assert docs.mtime_ns == src.stat("docs").mtime_ns
        assert not dst.stat("data").extras[SMB_ATTRIBUTES] & (HIDDEN | SYSTEM)  # a plain folder stays plain
        # A re-run finds nothing to copy.
        again = run(smb(src_dir), smb(dst_dir), {"SecurityDescriptorCopyFlags": flags}, tmp_path / "store")
        assert again["Status"] == "SUCCESS" and again["FilesTransferred"] == 0, again

    def acl_of(location: SmbLocation):
        return owner_and_aces(location.read_extras("docs/deep", SD_OWNER_DACL)[SMB_SECURITY_DESCRIPTOR])

    assert acl_of(copies["OWNER_DACL"]) == source_acl
    # NONE leaves the destination's inherited ACL: the source's restricted one is not copied.
    assert acl_of(copies["NONE"]) != source_acl


def report_rows(summary) -> dict[str, dict]:
    return {r["path"]: r for r in pq.read_table(summary["ReportUri"]).to_pylist()}


def test_names_differing_only_in_case_are_refused_for_an_smb_destination(smb_folder, tmp_path):
    src = tmp_path / "src"
    (src / "Data").mkdir(parents=True)
    (src / "data").mkdir()
    (src / "Data" / "a.txt").write_bytes(b"from Data")
    (src / "data" / "b.txt").write_bytes(b"from data")
    (src / "Report.txt").write_bytes(b"upper")
    (src / "report.txt").write_bytes(b"lower")
    (src / "fine.txt").write_bytes(b"fine")
    dst = smb_folder()
    out = run(str(src), smb(dst), {}, tmp_path / "store")
    # Reported with the entries PREPARING refuses (like unreadable ones), before anything is written.
    assert out["Status"] == "ERROR" and out["ErrorCode"] == "SourceErrors" and out["FilesFailed"] == 6, out
    rows = report_rows(out)
    for path, other in (("Report.txt", "report.txt"), ("report.txt", "Report.txt"), ("Data", "data"),
                        ("data", "Data"), ("Data/a.txt", "data"), ("data/b.txt", "Data")):
        assert rows[path]["status"] == "FAILED", rows[path]
        error = rows[path]["error"]
        assert repr(path) in error and repr(other) in error and "only in case" in error, error
        assert "SMB destination is case-insensitive" in error, error
    assert files_of(dst.disk) == {"fine.txt": files_of(src)["fine.txt"]}  # neither of a pair was copied

    # Excluding one of the two names is the fix.
    fixed = run(str(src), smb(dst), {"Excludes": "/report.txt|/data"}, tmp_path / "store")
    assert fixed["Status"] == "SUCCESS", fixed
    assert (dst.disk / "Report.txt").read_bytes() == b"upper" and (dst.disk / "Data" / "a.txt").read_bytes() == b"from Data"
    assert sorted(files_of(dst.disk)) == ["Data", "Data/a.txt", "Report.txt", "fine.txt"]


def test_a_destination_name_in_another_case_is_the_same_entry(smb_folder, tmp_path):
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "readme").write_bytes(b"new readme\n")
    (src / "docs" / "guide.md").write_bytes(b"# guide\n")
    dst = smb_folder()
    (dst.disk / "README").write_bytes(b"old README, another size\n")
    (dst.disk / "Docs").mkdir()
    (dst.disk / "Docs" / "Guide.md").write_bytes(b"old guide, longer\n")
    (dst.disk / "Docs" / "stale.md").write_bytes(b"not in the source")
    options = {"PreserveDeletedFiles": "REMOVE", "VerifyMode": "POINT_IN_TIME_CONSISTENT"}
    store = tmp_path / "store"

    first = run(str(src), smb(dst), options, store)
    assert first["Status"] == "SUCCESS", first
    assert first["FilesDeleted"] == 1  # only Docs/stale.md: README and Docs/Guide.md are the source's entries
    on_disk = files_of(dst.disk)
    assert len(on_disk) == 3, on_disk  # one readme, one docs folder, one guide, whatever their case
    readme = next(p for p in on_disk if p.lower() == "readme")
    guide = next(p for p in on_disk if p.lower() == "docs/guide.md")
    assert (dst.disk / readme).read_bytes() == b"new readme\n"
    assert (dst.disk / guide).read_bytes() == b"# guide\n"

    for _ in range(2):  # re-runs neither copy nor delete it again
        again = run(str(src), smb(dst), options, store)
        assert again["Status"] == "SUCCESS", again
        assert again["FilesTransferred"] == 0 and again["FilesDeleted"] == 0, again
        assert files_of(dst.disk) == on_disk

    # A destination that keeps the other spelling (the share was filled by another tool) is just as stable.
    os.rename(dst.disk / readme, dst.disk / "ReadMe")
    later = run(str(src), smb(dst), options, store)
    assert later["Status"] == "SUCCESS", later
    assert later["FilesTransferred"] == 0 and later["FilesDeleted"] == 0, later
    assert (dst.disk / "ReadMe").read_bytes() == b"new readme\n"
