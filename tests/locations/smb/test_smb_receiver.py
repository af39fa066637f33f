"""Our receiver of SMB responses (smb/receive.py) against the real smbd: signatures verified over the bytes
received (a flipped byte is refused and the connection replaced), compound responses split, encryption,
and a connection cut in the middle of a response seen as lost."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from smbprotocol.connection import SMB2Echo
from smbprotocol.exceptions import SMBConnectionClosed

from airflow_datasync.locations import open_location
from airflow_datasync.locations.base import Metadata
from airflow_datasync.locations.smb.protocol import connection_alive
from airflow_datasync.locations.smb.receive import FLAGS_SIGNED, LeanConnection, SignatureMismatch
from airflow_datasync.locations.smb.sessions import pool, reset_pools
from tests.faults.fault_proxy import FaultProxy
from tests.locations.smb.conftest import ENCRYPTED_CONN_ID

#: A frame's 4-byte length, then the SMB2 header: the signature is at 48..63 of the message.
SIGNATURE_BYTE, BODY_BYTE = 4 + 50, 4 + 64 + 1
#: The low byte of the header's Flags (offset 16), where SMB2_FLAGS_SIGNED is 0x08.
FLAGS_BYTE = 4 + 16


class Tap:
    """The pooled connection's socket, as it is, with what the receiver reads counted frame by frame, and
    one byte of the next chunk read flipped when armed (what a bit error or a meddler on the path does)."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self.flip_at: int | None = None
        self.flip_mask = 0x5A
        self.flipped = 0
        self.frames: list[bytes] = []  # the first 4 bytes of each frame's message
        self._pending = b""  # the stream's bytes not yet counted into frames
        self._lock = threading.Lock()

    def recv_into(self, buffer, nbytes=0, flags=0):
        count = self._sock.recv_into(buffer, nbytes, flags)
        with self._lock:
            if self.flip_at is not None and count > self.flip_at:
                buffer[self.flip_at] ^= self.flip_mask
                self.flip_at, self.flipped = None, self.flipped + 1
            self._count(bytes(buffer[:count]))
        return count

    def _count(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) >= 8:
            size = int.from_bytes(self._pending[:4], "big")
            if len(self._pending) < 4 + size:
                return
            self.frames.append(self._pending[4:8])
            self._pending = self._pending[4 + size:]

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _pooled(loc) -> LeanConnection:
    """This thread's pooled connection of ``loc`` (opened by a first request)."""
    return pool(loc.target.server, loc.port, loc.config)[f"{loc.target.server.lower()}:{loc.port}"]


def _session_id(conn) -> int:
    return next(iter(conn.session_table))


def _tapped(loc) -> tuple[LeanConnection, Tap]:
    conn = _pooled(loc)
    tap = Tap(conn.transport._sock)
    conn.transport._sock = tap
    # The receiver, waiting already, holds the socket it waits on: one echo later it reads through the tap.
    conn.receive(conn.send(SMB2Echo(), sid=_session_id(conn)))
    tap.frames.clear()
    return conn, tap


def _ready(smb_folder, conn_id=None):
    folder = smb_folder() if conn_id is None else smb_folder(conn_id=conn_id)
    reset_pools()
    loc = open_location(folder.uri, folder.conn_id)
    loc.write("a.txt", iter([b"hello"]), Metadata(), tag="t")
    return folder, loc


def test_pooled_connections_use_the_lean_receiver_and_verify_signed_responses(samba, smb_folder):
    _folder, loc = _ready(smb_folder)
    conn, tap = _tapped(loc)
    assert isinstance(conn, LeanConnection)
    request = conn.send(SMB2Echo(), sid=_session_id(conn))
    response = conn.receive(request)
    assert response["flags"].get_value() & FLAGS_SIGNED  # the server signs: it went through _verify
    assert response["status"].get_value() == 0
    assert response["message_id"].get_value() == request.message["message_id"].get_value()
    assert response["structure_size"].get_value() == 64  # a field not read fast: smbprotocol's structure
    assert len(tap.frames) == 1


@pytest.mark.parametrize(("where", "mask"), [(SIGNATURE_BYTE, 0x5A), (BODY_BYTE, 0x5A), (FLAGS_BYTE, 0x08)],
                         ids=["signature", "body", "signed-flag-cleared"])
def test_a_response_with_a_flipped_byte_is_refused_and_the_connection_replaced(samba, smb_folder, where, mask):
    folder, loc = _ready(smb_folder)
    conn, tap = _tapped(loc)
    tap.flip_at, tap.flip_mask = where, mask
    request = conn.send(SMB2Echo(), sid=_session_id(conn))
    with pytest.raises(SignatureMismatch):
        conn.receive(request)
    assert tap.flipped == 1
    assert not connection_alive(conn)
    # The location opens a new connection and goes on; the old one is never used again.
    assert loc.stat("a.txt").size == 5
    assert _pooled(loc) is not conn and connection_alive(_pooled(loc))
    assert (folder.disk / "a.txt").read_bytes() == b"hello"


def test_a_flipped_byte_during_a_copy_is_retried_on_a_new_connection(samba, smb_folder):
    folder, loc = _ready(smb_folder)
    conn, tap = _tapped(loc)
    tap.flip_at = SIGNATURE_BYTE
    loc.write("b.txt", iter([b"x" * 3000]), Metadata(), tag="t")  # the compound write's response flipped
    assert tap.flipped == 1 and isinstance(conn._t_exc, SignatureMismatch)
    assert (folder.disk / "b.txt").read_bytes() == b"x" * 3000
    assert not [p.name for p in folder.disk.iterdir() if p.name not in ("a.txt", "b.txt")]


def test_a_compound_response_is_split_into_its_requests(samba, smb_folder):
    _folder, loc = _ready(smb_folder)
    conn, tap = _tapped(loc)
    requests = conn.send_compound([SMB2Echo(), SMB2Echo(), SMB2Echo()], _session_id(conn), None)
    responses = [conn.receive(r) for r in requests]
    assert len(tap.frames) == 1  # one frame came back: three responses in it
    assert [r["message_id"].get_value() for r in responses] == [r.message["message_id"].get_value()
                                                                 for r in requests]
    assert all(r["status"].get_value() == 0 and r["flags"].get_value() & FLAGS_SIGNED for r in responses)
    assert [r["next_command"].get_value() > 0 for r in responses] == [True, True, False]


def test_an_encrypted_session_is_decrypted_by_smbprotocol_and_served(samba, smb_folder):
    folder, loc = _ready(smb_folder, ENCRYPTED_CONN_ID)
    conn, tap = _tapped(loc)
    payload = os.urandom(300_000)
    loc.write("big.bin", iter([payload]), Metadata(), tag="t")
    with loc.open_read("big.bin") as f:
        assert f.read() == payload
    assert (folder.disk / "big.bin").read_bytes() == payload
    assert tap.frames and all(magic == b"\xfdSMB" for magic in tap.frames)  # every response a transform
    assert _pooled(loc) is conn and connection_alive(conn)


def test_a_connection_cut_in_the_middle_of_a_response_is_lost_and_reopened(samba, smb_folder, monkeypatch):
    folder = smb_folder()
    payload = os.urandom(3 * 1024 * 1024)
    (folder.disk / "big.bin").write_bytes(payload)
    with FaultProxy(samba.port) as proxy:
        conn_id = "datasync_smb_receiver_cut"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
            {"conn_type": "datasync_smb", "host": "127.0.0.1", "port": proxy.port, "login": samba.user,
             "password": samba.password, "extra": {"require_signing": True}}))
        reset_pools()
        loc = open_location(folder.uri.replace(f":{samba.port}/", f":{proxy.port}/"), conn_id)
        assert loc.stat("big.bin").size == len(payload)
        first = _pooled(loc)
        proxy.truncate(after=1000, new_connections=False)  # its next answers stop after 1,000 bytes
        with loc.open_read("big.bin") as f:
            assert f.read() == payload
        assert proxy.faults_injected >= 1
        # 1,000 bytes into the read: the receiver saw the frame stop half-way, not a whole response.
        assert isinstance(first._t_exc, SMBConnectionClosed) and not first.transport.connected
        assert not connection_alive(first) and _pooled(loc) is not first
    reset_pools()


def test_an_idle_connection_is_kept_alive_by_echoes(samba, smb_folder):
    _folder, loc = _ready(smb_folder)
    conn, tap = _tapped(loc)
    conn._receive_timeout = 1  # read at each wait: idle for 1 s → an echo per session
    conn.receive(conn.send(SMB2Echo(), sid=_session_id(conn)))  # the wait under way ends, the next is 1 s
    tap.frames.clear()
    deadline = time.monotonic() + 30
    while len(tap.frames) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    conn._receive_timeout = 600
    assert len(tap.frames) >= 2  # answers to echoes nobody of ours sent
    assert connection_alive(conn) and not conn.outstanding_requests  # taken by the receiver itself
    assert loc.stat("a.txt").size == 5 and _pooled(loc) is conn
