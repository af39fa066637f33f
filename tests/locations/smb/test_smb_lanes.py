"""Copy threads spread over several connections ("lanes"), and the server serves them in parallel."""

from __future__ import annotations

import threading
from pathlib import Path

from airflow_datasync.locations import open_location
from airflow_datasync.locations.base import Metadata
from airflow_datasync.locations.smb.sessions import MAX_LANES, reset_pools


def _server_processes(samba) -> set[int]:
    """The smbd processes serving clients: the children of the one the fixture started."""
    children = Path(f"/proc/{samba.process.pid}/task/{samba.process.pid}/children").read_text().split()
    return {int(p) for p in children}


def test_each_lane_is_served_by_a_process_of_its_own(samba, smb_folder):
    """Samba passes a connection announcing a client GUID it already serves to that process (multichannel):
    lanes sharing one GUID ran in one smbd process, on one core."""
    folder = smb_folder()
    reset_pools()  # new connections: the lanes of earlier tests are served already
    idle = _server_processes(samba)
    loc = open_location(folder.uri, folder.conn_id)
    lanes = 4
    barrier = threading.Barrier(lanes)
    failures: list[BaseException] = []

    def write(i: int) -> None:
        try:
            barrier.wait(30)
            loc.write(f"f{i}.txt", iter([b"x" * 10]), Metadata(), tag=f"t{i}")
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert lanes <= MAX_LANES
    assert len(_server_processes(samba) - idle) >= lanes
    assert sorted(p.name for p in folder.disk.iterdir()) == [f"f{i}.txt" for i in range(lanes)]
