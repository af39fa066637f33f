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


def test_a_lane_opens_its_connection_while_another_waits_for_its_server(samba, smb_folder):
    """Each lane opens its own connection and session: a negotiate the server has not answered yet (here a
    listener that never answers) holds up no other lane's."""
    import socket

    from airflow_datasync.locations.smb.sessions import current_lane, drop_session, open_session, use_lane

    folder = smb_folder()
    loc = open_location(folder.uri, folder.conn_id)
    config = loc.config
    silent = socket.create_server(("127.0.0.1", 0))
    silent.settimeout(60)  # the accept below fails instead of hanging if the opener never connects
    silent_port = silent.getsockname()[1]
    outcome: list[BaseException | None] = []

    def open_silent() -> None:
        use_lane(0)
        try:
            open_session("127.0.0.1", silent_port, config)
            outcome.append(None)
        except BaseException as exc:  # the listener hangs up: reported below
            outcome.append(exc)

    opener = threading.Thread(target=open_silent, daemon=True)
    opener.start()
    accepted, _ = silent.accept()  # the silent lane is connected and its negotiate sent
    own_lane = current_lane()
    try:
        use_lane(1)
        session = open_session("127.0.0.1", loc.port, config)
        assert session.connection.session_table[session.session_id] is session
        assert opener.is_alive() and not outcome  # still waiting for its negotiate's answer
    finally:
        accepted.close()
        silent.close()
        opener.join(60)
        drop_session("127.0.0.1", loc.port, config)
        use_lane(own_lane)
    assert not opener.is_alive()
    assert outcome and outcome[0] is not None  # the hung-up negotiate failed, nothing was pooled


def test_threads_of_one_lane_share_one_connection_and_session(samba, smb_folder):
    """Two threads of one lane opening at once: one connection (one smbd), one session."""
    from airflow_datasync.locations.smb.sessions import open_session, use_lane

    folder = smb_folder()
    loc = open_location(folder.uri, folder.conn_id)
    reset_pools()
    idle = _server_processes(samba)
    barrier = threading.Barrier(2)
    sessions: list = []

    def open_one() -> None:
        use_lane(3)
        barrier.wait(30)
        sessions.append(open_session("127.0.0.1", loc.port, loc.config))

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sessions) == 2 and sessions[0] is sessions[1]
    assert len(_server_processes(samba) - idle) == 1
