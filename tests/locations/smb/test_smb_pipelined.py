"""Big files go with several WRITEs/READs in flight (smb/pipeline.py, smb/wire.py), on the real Samba: content
and checksum right at sizes around the request size, signing required and encryption, dropped connections
mid-write and mid-read, and a server granting few credits to 16 threads at once."""

from __future__ import annotations

import json
import os
import threading

import pytest

from airflow_datasync import checksum
from airflow_datasync.errors import ConnectionLostError
from airflow_datasync.locations.base import Metadata
from airflow_datasync.locations.smb import SmbLocation, pipeline, reset_pools, sessions
from tests.fixtures_servers import kill_smb_connections

from .conftest import CONN_ID, ENCRYPTED_CONN_ID
from .smbd_server import start_samba

MTIME = 1_700_000_000_123_456_700
MIB = 1 << 20


def _crc(data: bytes) -> str:
    hasher = checksum.new_hasher()
    hasher.update(data)
    return hasher.hexdigest()


def _chunks(data: bytes, size: int = 700 * 1024):
    """Chunks that straddle request boundaries (the engine's are 1 MiB; these are not a divisor of it)."""
    return (data[i:i + size] for i in range(0, len(data), size))


class InFlight:
    """Counts WRITE and READ requests sent and not yet answered, through wrappers of the real calls (with
    a READ ahead: the default reads one at a time, see pipeline.READ_DEPTH)."""

    def __init__(self, monkeypatch) -> None:
        from smbprotocol.connection import Connection

        monkeypatch.setattr(pipeline, "READ_DEPTH", 2)

        self.lock = threading.Lock()
        self.now = {"write": 0, "read": 0}
        self.most = {"write": 0, "read": 0}
        self.sent: dict[int, str] = {}  # id of each counted request → its kind (compounds are not counted)
        send_write, send, receive = pipeline.send_write, Connection.send, Connection.receive

        def counted_send_write(*a, **k):
            request = send_write(*a, **k)
            self._up("write", request)
            return request

        def counted_send(conn, message, *a, **k):
            request = send(conn, message, *a, **k)
            if type(message).__name__ == "SMB2ReadRequest":
                self._up("read", request)
            return request

        def counted_receive(conn, request, *a, **k):
            try:
                return receive(conn, request, *a, **k)
            finally:
                with self.lock:
                    kind = self.sent.pop(id(request), None)
                    if kind:
                        self.now[kind] -= 1

        monkeypatch.setattr(pipeline, "send_write", counted_send_write)
        monkeypatch.setattr(Connection, "send", counted_send)
        monkeypatch.setattr(Connection, "receive", counted_receive)

    def _up(self, kind: str, request) -> None:
        with self.lock:
            self.sent[id(request)] = kind
            self.now[kind] += 1
            self.most[kind] = max(self.most[kind], self.now[kind])


def _names(disk) -> list[str]:
    return sorted(p.name for p in disk.iterdir())


def _sizes() -> list[int]:
    w, r = pipeline.WRITE_BYTES, pipeline.READ_BYTES
    return sorted({0, 1, r - 1, r, r + 1, w - 1, w, w + 1, 3 * w + 12345})


@pytest.mark.parametrize("conn_id", [CONN_ID, ENCRYPTED_CONN_ID], ids=["signing-required", "encrypted"])
def test_content_and_checksum_at_sizes_around_the_request_size(smb_folder, monkeypatch, conn_id):
    folder = smb_folder(conn_id=conn_id)
    loc = SmbLocation(folder.uri, conn_id)
    seen = InFlight(monkeypatch)
    payload = os.urandom(max(_sizes()))
    for size in _sizes():
        data = payload[:size]
        written = loc.write(f"f{size}.bin", _chunks(data), Metadata(mtime_ns=MTIME), tag="t-0")
        assert written.size == size
        assert (folder.disk / f"f{size}.bin").read_bytes() == data, size
        with loc.open_read(f"f{size}.bin") as fh:
            assert checksum.file_checksum(fh) == _crc(data), size
    assert seen.most["write"] > 1 and seen.most["read"] > 1, seen.most
    assert _names(folder.disk) == sorted(f"f{size}.bin" for size in _sizes())  # no temporary left


@pytest.mark.parametrize("conn_id", [CONN_ID, ENCRYPTED_CONN_ID], ids=["signing-required", "encrypted"])
def test_a_local_file_read_into_the_request_buffers_lands_whole_with_its_checksum(smb_folder, monkeypatch, tmp_path,
                                                                                  conn_id):
    folder = smb_folder(conn_id=conn_id)
    loc = SmbLocation(folder.uri, conn_id)
    seen = InFlight(monkeypatch)
    fills = []
    fill = pipeline.SourceFill.fill
    monkeypatch.setattr(pipeline.SourceFill, "fill", lambda self, buffer: fills.append(fill(self, buffer)) or fills[-1])
    payload = os.urandom(max(_sizes()))
    for size in _sizes():
        (tmp_path / "src.bin").write_bytes(payload[:size])
        hasher, also, counted = checksum.new_hasher(), checksum.new_hasher(), []
        with open(tmp_path / "src.bin", "rb", buffering=0) as fh:
            written = loc.write_file(f"f{size}.bin", fh, Metadata(mtime_ns=MTIME), tag="t-0", hasher=hasher,
                                     also=also, on_chunk=counted.append, size=size)
        assert written.size == size == sum(counted)
        assert (folder.disk / f"f{size}.bin").read_bytes() == payload[:size], size
        assert hasher.hexdigest() == also.hexdigest() == _crc(payload[:size]), size
    assert max(fills) == pipeline.WRITE_BYTES  # the big ones went through the buffers, a request's worth each
    assert seen.most["write"] > 1
    assert _names(folder.disk) == sorted(f"f{size}.bin" for size in _sizes())


def test_a_dropped_connection_mid_write_leaves_nothing_and_the_retry_lands(smb_folder, samba, monkeypatch):
    folder = smb_folder()
    loc = SmbLocation(folder.uri, CONN_ID)
    payload = os.urandom(5 * pipeline.WRITE_BYTES + 99)
    send_write, sent = pipeline.send_write, []

    def drop_after_two(*a, **k):
        sent.append(1)
        if len(sent) == 3:  # two requests in flight or answered: the server side goes away
            assert kill_smb_connections(samba) >= 1
        return send_write(*a, **k)

    monkeypatch.setattr(pipeline, "send_write", drop_after_two)
    with pytest.raises(ConnectionLostError):
        loc.write("big.bin", _chunks(payload, MIB), Metadata(mtime_ns=MTIME), tag="t-0")
    assert _names(folder.disk) == []  # neither the temporary nor a partial file at the final name
    monkeypatch.setattr(pipeline, "send_write", send_write)
    assert loc.write("big.bin", _chunks(payload, MIB), Metadata(mtime_ns=MTIME), tag="t-0").size == len(payload)
    assert (folder.disk / "big.bin").read_bytes() == payload and _names(folder.disk) == ["big.bin"]


@pytest.mark.parametrize("handed_out", [1, pipeline.READ_BYTES + 1, 5 * pipeline.READ_BYTES])
def test_a_dropped_connection_mid_read_resumes_at_the_first_byte_not_handed_out(smb_folder, samba, monkeypatch,
                                                                              handed_out):
    monkeypatch.setattr(pipeline, "READ_DEPTH", 2)  # a READ ahead in flight or buffered when the drop comes
    folder = smb_folder()
    payload = os.urandom(9 * pipeline.READ_BYTES + 4321)
    (folder.disk / "big.bin").write_bytes(payload)
    loc = SmbLocation(folder.uri, CONN_ID)
    with loc.open_read("big.bin") as fh:
        head = fh.read(handed_out)  # with read-ahead, responses beyond this offset are in flight or buffered
        assert kill_smb_connections(samba) >= 1
        rest = b"".join(iter(lambda: fh.read(MIB), b""))
    assert len(head) == handed_out and _crc(head + rest) == _crc(payload)


@pytest.fixture(scope="module")
def stingy_samba(tmp_path_factory):
    """A Samba granting at most 128 credits per connection (8 MiB outstanding), less than 16 threads want."""
    server = start_samba(tmp_path_factory.mktemp("stingy-samba"), extra_global="   smb2 max credits = 128\n")
    yield server
    reset_pools()
    server.stop()


@pytest.mark.parametrize("via", ["chunks", "file"])
def test_sixteen_threads_writing_big_files_stay_inside_the_granted_credits(stingy_samba, monkeypatch, tmp_path, via):
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_STINGY_SMB", json.dumps({
        "conn_type": "datasync_smb", "host": "127.0.0.1", "port": stingy_samba.port, "login": stingy_samba.user,
        "password": stingy_samba.password, "extra": {"require_signing": True}}))
    (stingy_samba.shares["data"] / via).mkdir()
    loc = SmbLocation(f"smb://127.0.0.1:{stingy_samba.port}/data/{via}", "datasync_stingy_smb")
    seen = InFlight(monkeypatch)
    from smbprotocol.connection import Connection

    connects, connect = [], Connection.connect
    monkeypatch.setattr(Connection, "connect", lambda self, *a, **k: (connects.append(self), connect(self, *a, **k)))
    payloads = [os.urandom(2 * pipeline.WRITE_BYTES + i * 4099) for i in range(16)]
    failures: list[BaseException] = []

    def copy(i: int) -> None:
        try:
            if via == "chunks":
                loc.write(f"f{i}.bin", _chunks(payloads[i], MIB), Metadata(mtime_ns=MTIME), tag="t-0")
            else:  # a buffer the window cuts into several requests is read into again only when all are answered
                (tmp_path / f"src{i}.bin").write_bytes(payloads[i])
                with open(tmp_path / f"src{i}.bin", "rb", buffering=0) as fh:
                    loc.write_file(f"f{i}.bin", fh, Metadata(mtime_ns=MTIME), tag="t-0", hasher=checksum.new_hasher(),
                                   size=len(payloads[i]))
            with loc.open_read(f"f{i}.bin") as fh:
                assert checksum.file_checksum(fh) == _crc(payloads[i])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=copy, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    # A request past the window is a protocol violation Samba answers by dropping the connection: none was
    # re-opened (one per lane).
    assert len(connects) <= sessions.MAX_LANES
    for i, data in enumerate(payloads):
        assert (stingy_samba.shares["data"] / via / f"f{i}.bin").read_bytes() == data
    assert seen.most["write"] > 1 and seen.most["read"] > 1


def test_a_write_beyond_the_granted_credits_is_refused_before_anything_is_sent(smb_folder):
    from airflow_datasync.locations.smb import wire
    from airflow_datasync.locations.smb.error_table import ConnectionBusyError
    from airflow_datasync.locations.smb.protocol import create_exclusive

    folder = smb_folder()
    loc = SmbLocation(folder.uri, CONN_ID)
    loc.stat("")  # the session and tree are up
    raw = create_exclusive(loc._unc("held.bin"), 0, loc._kw())
    conn = raw.fd.connection
    try:
        with conn.sequence_lock:  # every credit but 3 taken, as by requests of other threads in flight
            window = conn.sequence_window
            saved, window["low"] = window["low"], window["high"] - 3
        try:
            with pytest.raises(ConnectionBusyError):
                wire.send_write(raw.fd, 0, [memoryview(bytes(4 * 65536))], 4)
        finally:
            with conn.sequence_lock:
                window["low"] = saved
        # The refusal sent nothing and spent no message id: the connection goes on.
        assert pipeline.PipelinedWriter(raw, lambda fn: fn()).write(iter([bytes(300_000)])) == 300_000
    finally:
        raw.close()
    assert (folder.disk / "held.bin").read_bytes() == bytes(300_000)
