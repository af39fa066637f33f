"""VERIFYING's POINT_IN_TIME_CONSISTENT listings start on the phase's thread, as PREPARING's do: the SMB
side lists on the session LAUNCHING opened there, whichever thread reads the scan, not on a connection of
its own. A real smbd, the real engine; only the sends are observed."""

from __future__ import annotations

from airflow_datasync.engine import LocationSpec
from airflow_datasync.locations.smb import reset_pools

from .test_smb_compound_read import LIST_COMPOUND, run, sends  # noqa: F401 - the fixture

NEGOTIATES = {"SMB3Negotiate", "Negotiate"}


def test_the_second_listing_goes_on_the_session_launching_opened(smb_folder, sends, tmp_path):
    """A re-run of a tree of folders: nothing to copy and no content to compare, so only the listings touch
    the share: one connection for the whole execution."""
    folder = smb_folder()
    for d in range(3):
        (folder.disk / f"d{d}" / "sub").mkdir(parents=True)
    src, dst, store = LocationSpec(folder.uri, folder.conn_id), str(tmp_path / "local"), tmp_path / "store"
    options = {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}
    assert run(src, dst, store, options)["Status"] == "SUCCESS"
    reset_pools()  # a fresh process's pools: the re-run opens what it needs
    sends.clear()
    out = run(src, dst, store, options)
    assert out["Status"] == "SUCCESS" and out["FilesTransferred"] == 0, out
    assert sum(1 for s in sends.log if NEGOTIATES & set(s)) == 1, sends.log
    assert sends.kinds()[LIST_COMPOUND] == 2 * 7, sends.kinds()  # the root and six folders, in each phase
