"""Uid/Gid NAME and BOTH with SMB (smbd): SMB has no POSIX owners, so the options are a no-op there and the
report says so once (a real engine run to a real share)."""

from __future__ import annotations

from airflow_datasync.engine import LocationSpec, run_execution


def test_owner_names_towards_smb_are_a_no_op_with_a_warning(tmp_path, smb_folder):
    folder = smb_folder()
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    summary = run_execution(str(src), LocationSpec(folder.uri, folder.conn_id), {"Uid": "NAME", "Gid": "BOTH"},
                            store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    assert (folder.disk / "a.txt").read_text() == "a"
    assert any("SMB has no POSIX owners" in w for w in summary["Warnings"]), summary["Warnings"]
