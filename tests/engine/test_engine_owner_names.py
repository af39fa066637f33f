"""Uid/Gid NAME and BOTH, local → local as root with real owners: ``daemon`` (a name in the user database)
and ids no user or group database names (real engine runs on real trees)."""

from __future__ import annotations

import os

import pytest

from airflow_datasync.engine import run_execution

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other owners needs root")

UNNAMED_UID, UNNAMED_GID = 54321, 54322  # checked below to be in neither database


def owned_tree(root):
    import grp
    import pwd

    for database, owner_id in ((pwd.getpwuid, UNNAMED_UID), (grp.getgrgid, UNNAMED_GID)):
        with pytest.raises(KeyError):
            database(owner_id)
    root.mkdir()
    (root / "named.txt").write_text("owned by daemon")
    (root / "unnamed.txt").write_text("owned by ids without names")
    daemon_uid, daemon_gid = pwd.getpwnam("daemon").pw_uid, grp.getgrnam("daemon").gr_gid
    os.chown(root / "named.txt", daemon_uid, daemon_gid)
    os.chown(root / "unnamed.txt", UNNAMED_UID, UNNAMED_GID)
    return daemon_uid, daemon_gid


def owner(path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


@pytest.mark.parametrize("mode, unnamed_owner", [("NAME", (0, 0)), ("BOTH", (UNNAMED_UID, UNNAMED_GID))])
def test_name_maps_named_owners_and_both_falls_back_to_ids(tmp_path, store, mode, unnamed_owner):
    daemon = owned_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    options = {"Uid": mode, "Gid": mode}
    summary = run_execution(str(tmp_path / "src"), str(dst), options, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert owner(dst / "named.txt") == daemon
    # NAME: an owner without a name is not applied (the file keeps the worker's, root); BOTH: the id.
    assert owner(dst / "unnamed.txt") == unnamed_owner
    again = run_execution(str(tmp_path / "src"), str(dst), options, store=str(store))
    assert again["Status"] == "SUCCESS" and again["FilesTransferred"] == 0, again  # nothing replanned


def test_name_updates_an_owner_changed_at_the_destination(tmp_path, store):
    daemon = owned_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    run_execution(str(tmp_path / "src"), str(dst), {"Uid": "NAME", "Gid": "NAME"}, store=str(store))
    os.chown(dst / "named.txt", 0, 0)
    summary = run_execution(str(tmp_path / "src"), str(dst), {"Uid": "NAME", "Gid": "NAME"}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert owner(dst / "named.txt") == daemon
