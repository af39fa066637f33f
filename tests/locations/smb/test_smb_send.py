"""Our framing of ordinary requests (smb/send.py) against smbprotocol's own ``Connection._send``: the same
bytes on the wire, the same message ids, credits, outstanding requests and ``Request.message`` fields, for
every request type we send, alone and in related and unrelated compounds, signed (HMAC-SHA256, AES-CMAC,
AES-GMAC) and unsigned; the sends it leaves to smbprotocol; and the real smbd serving it (the other SMB
tests run every copy through it too)."""

from __future__ import annotations

import threading
import uuid
from types import SimpleNamespace

import pytest
from smbprotocol.connection import Connection, SMB2Echo
from smbprotocol.exceptions import SMBException
from smbprotocol.open import (
    SMB2CloseRequest,
    SMB2CreateRequest,
    SMB2QueryDirectoryRequest,
    SMB2ReadRequest,
    SMB2SetInfoRequest,
    SMB2WriteRequest,
)

from airflow_datasync.locations import open_location
from airflow_datasync.locations.base import Metadata
from airflow_datasync.locations.smb import messages as lean
from airflow_datasync.locations.smb.protocol import refused_for_credits
from airflow_datasync.locations.smb.receive import LeanConnection
from airflow_datasync.locations.smb.send import SentHeader

SESSION_ID, TREE_ID = 0x0000_1234_5678_9ABC, 7
FILE_ID = bytes(range(16))
#: (dialect, signing algorithm id): HMAC-SHA256 (2.1), AES-CMAC (3.0, and 3.1.1 negotiated), AES-GMAC.
SIGNINGS = {"hmac": (0x0210, None), "cmac": (0x0300, None), "cmac-311": (0x0311, 1), "gmac": (0x0311, 2)}


class CaptureSocket:
    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    def sendall(self, data) -> None:
        self._frames.append(bytes(data))


class CaptureTransport:
    """Keeps each Direct TCP frame a send would put on the socket (the thing under test is the framing)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.connected = True
        self._sock_lock = threading.Lock()
        self._sock = CaptureSocket(self.frames)

    def send(self, message: bytes) -> None:  # smbprotocol's path: Tcp.send adds the length itself
        self.frames.append(len(message).to_bytes(4, "big") + bytes(message))


def _connection(signing: str | None, dfs: bool = False, multi_credit: bool = True, credits: int = 512):
    conn = LeanConnection(uuid.uuid4(), "server", 445, require_signing=signing is not None)
    conn.transport = CaptureTransport()
    conn.dialect, conn.signing_algorithm_id = SIGNINGS[signing or "gmac"]
    conn.supports_multi_credit = multi_credit
    conn.sequence_window = {"low": 5, "high": 5 + credits}
    tree = SimpleNamespace(is_dfs_share=dfs, encrypt_data=False, share_name="\\\\server\\data")
    conn.session_table[SESSION_ID] = SimpleNamespace(
        session_id=SESSION_ID, signing_required=signing is not None, signing_key=bytes(range(100, 116)),
        encrypt_data=False, tree_connect_table={TREE_ID: tree})
    return conn


def _create() -> SMB2CreateRequest:
    req = SMB2CreateRequest()
    req["impersonation_level"] = 2
    req["desired_access"] = 0x0012019F
    req["file_attributes"] = 0x80
    req["share_access"] = 7
    req["create_disposition"] = 5
    req["create_options"] = 0x40
    req["buffer_path"] = "dir\\file.txt".encode("utf-16-le")
    return req


def _write(size: int = 4096) -> SMB2WriteRequest:
    req = SMB2WriteRequest()
    req["offset"], req["file_id"], req["buffer"] = 4096, FILE_ID, bytes(i % 251 for i in range(size))
    return req


def _read(size: int = 200_000) -> SMB2ReadRequest:
    req = SMB2ReadRequest()
    req["length"], req["offset"], req["file_id"] = size, 0, FILE_ID
    return req


def _close() -> SMB2CloseRequest:
    req = SMB2CloseRequest()
    req["file_id"] = FILE_ID
    return req


def _set_info() -> SMB2SetInfoRequest:
    req = SMB2SetInfoRequest()
    req["info_type"], req["file_info_class"], req["file_id"] = 1, 4, FILE_ID
    req["buffer"] = lean.basic_info(1, 2, 3, 0x80)
    return req


def _query_directory() -> SMB2QueryDirectoryRequest:
    req = SMB2QueryDirectoryRequest()
    req["file_information_class"], req["file_id"] = 37, FILE_ID
    req["buffer"] = "*".encode("utf-16-le")
    req["output_buffer_length"] = 65536 * 3
    return req


SINGLE = {
    "create": lambda: [_create()], "write": lambda: [_write()], "write-100k": lambda: [_write(100_000)],
    "read": lambda: [_read()], "close": lambda: [_close()], "set_info": lambda: [_set_info()],
    "query_directory": lambda: [_query_directory()], "echo": lambda: [SMB2Echo()],
}
COMPOUNDS = {
    "read": lambda: [_create(), _read(5000), _close()],
    "list": lambda: [_create(), _query_directory(), _query_directory(), _close()],
    "lean-write": lambda: [lean.create_request("d\\f.tmp", 0x0012019F, 0x80, 0, 5, 0x40),
                           lean.write_request(b"x" * 4093), lean.set_info_request(1, 4, lean.basic_info(0, 0, 9, 0)),
                           lean.set_info_request(1, 10, lean.rename_info("d\\f", True)), lean.close_request()],
    "echoes": lambda: [SMB2Echo(), SMB2Echo(), SMB2Echo()],
}


def _both(build, signing, *, related=False, dfs=False, multi_credit=True, tree_id=TREE_ID, credit_request=None):
    """The frames and requests of smbprotocol's ``_send`` and ours, from connections in the same state."""
    out = []
    for send in (Connection._send, LeanConnection._send):
        conn = _connection(signing, dfs=dfs, multi_credit=multi_credit)
        requests = send(conn, build(), session_id=SESSION_ID, tree_id=tree_id, related=related,
                        credit_request=credit_request)
        out.append((conn, requests))
    return out


def _same(theirs, ours) -> None:
    (their_conn, their_requests), (our_conn, our_requests) = theirs, ours
    assert len(our_conn.transport.frames) == 1
    assert our_conn.transport.frames == their_conn.transport.frames
    assert our_conn.sequence_window == their_conn.sequence_window
    assert list(our_conn.outstanding_requests) == list(their_conn.outstanding_requests)
    for their, our in zip(their_requests, our_requests, strict=True):
        assert isinstance(our.message, SentHeader)
        for name in ("message_id", "command", "tree_id", "session_id", "credit_charge", "credit_request",
                     "next_command", "signature", "data", "reserved", "process_id"):
            assert our.message[name].get_value() == their.message[name].get_value(), name
        assert our.message["flags"].get_value() == their.message["flags"].get_value()
        assert our.message.pack() == their.message.pack()
        assert our.related_ids == their.related_ids
        assert our.session_id == their.session_id
        assert type(our.get_message_data()) is type(their.get_message_data())
        assert our.get_message_data().pack() == their.get_message_data().pack()


@pytest.mark.parametrize("signing", [None, *SIGNINGS])
@pytest.mark.parametrize("kind", SINGLE)
def test_a_request_is_framed_byte_for_byte_as_smbprotocol_frames_it(kind, signing):
    _same(*_both(SINGLE[kind], signing))


@pytest.mark.parametrize("signing", [None, "hmac", "cmac", "gmac"])
@pytest.mark.parametrize("related", [True, False])
@pytest.mark.parametrize("kind", COMPOUNDS)
def test_a_compound_is_framed_byte_for_byte_as_smbprotocol_frames_it(kind, related, signing):
    _same(*_both(COMPOUNDS[kind], signing, related=related))


@pytest.mark.parametrize("multi_credit", [True, False])
def test_dfs_flag_credit_request_no_tree_and_single_credit_dialects_match(multi_credit):
    _same(*_both(COMPOUNDS["read"], "gmac", related=True, dfs=True, multi_credit=multi_credit, credit_request=64))
    _same(*_both(SINGLE["echo"], "cmac", tree_id=None, multi_credit=multi_credit))


def test_a_request_is_outstanding_before_it_is_packed():
    """A compound's credit check reads "no credits and nothing outstanding" as a window nothing will widen:
    a request is outstanding from the moment its credits are taken, before its (slow) packing and signing."""
    conn = _connection("gmac")
    seen = []

    class Watched(SMB2CloseRequest):
        def pack(self):
            seen.append(sorted(conn.outstanding_requests))
            return super().pack()

    message = Watched()
    message["file_id"] = FILE_ID
    LeanConnection._send(conn, [message], session_id=SESSION_ID, tree_id=TREE_ID)
    assert seen == [[5]]


def test_a_window_too_narrow_is_smbprotocols_refusal():
    """Credits short of the whole send: smbprotocol's own path refuses, the same exception the error table
    maps to 'connection busy' (and no message id is taken by ours)."""
    conn = _connection("gmac", credits=2)
    with pytest.raises(SMBException) as caught:
        LeanConnection._send(conn, [_read(65536 * 3)], session_id=SESSION_ID, tree_id=TREE_ID)
    assert refused_for_credits(caught.value)
    assert conn.sequence_window == {"low": 5, "high": 7} and not conn.outstanding_requests


@pytest.mark.parametrize("multi_credit", [True, False])
def test_a_compound_short_of_its_message_ids_is_refused_whole(multi_credit):
    """A window of two ids and a compound of three requests: refused before any id is taken, as a wait for
    credits; on a dialect that charges no credits (SMB 2.0.2, charge 0) each request still takes an id."""
    from airflow_datasync.locations.smb.error_table import ConnectionBusyError

    conn = _connection("gmac", multi_credit=multi_credit, credits=2)
    with pytest.raises(ConnectionBusyError):
        LeanConnection._send(conn, COMPOUNDS["read"](), session_id=SESSION_ID, tree_id=TREE_ID, related=True)
    assert conn.sequence_window == {"low": 5, "high": 7} and not conn.outstanding_requests


def test_set_up_cancel_async_forced_and_encrypted_sends_are_smbprotocols(monkeypatch):
    taken = []
    original = Connection._send
    monkeypatch.setattr(Connection, "_send", lambda self, messages, **kw: taken.append(kw) or original(
        self, messages, **kw))
    conn = _connection("gmac")
    LeanConnection._send(conn, [SMB2Echo()], session_id=SESSION_ID, force_signature=True)
    LeanConnection._send(conn, [SMB2Echo()], session_id=None)
    conn.session_table[SESSION_ID].encrypt_data = True
    conn._encrypt = lambda data, session: data  # the transform is smbprotocol's; here only who frames counts
    LeanConnection._send(conn, [SMB2Echo()], session_id=SESSION_ID)
    assert len(taken) == 3
    conn.session_table[SESSION_ID].encrypt_data = False
    LeanConnection._send(conn, [SMB2Echo()], session_id=SESSION_ID)
    assert len(taken) == 3  # an ordinary request is ours


def test_the_keep_alive_mark_is_kept_on_a_sent_header():
    conn = _connection("gmac")
    request = conn.send(SMB2Echo(), sid=SESSION_ID)
    assert request.message["reserved"].get_value() == 0
    request.message["reserved"] = 1
    assert request.message["reserved"].get_value() == 1
    assert request.message["command"].get_value() == 0x000D


def test_a_copy_to_the_real_smbd_goes_through_the_lean_framing(samba, smb_folder, monkeypatch):
    """Files written and read back through a pooled connection on the real smbd: every ordinary request
    framed here, and the server (which checks every signature) answering them all."""
    from airflow_datasync.locations.smb import send as send_module

    framed = []
    original = send_module.send_lean

    def counted(connection, messages, *args):
        requests = original(connection, messages, *args)
        if requests is not None:
            framed.extend(type(m).__name__ for m in messages)
        return requests

    monkeypatch.setattr("airflow_datasync.locations.smb.receive.send_lean", counted)
    folder = smb_folder()
    from tests.locations.smb.conftest import CONN_ID

    loc = open_location(folder.uri, CONN_ID)
    for i in range(20):
        loc.write(f"d/f{i}.bin", iter([bytes([i]) * (1000 + i)]), Metadata(mtime_ns=1_600_000_000_000_000_000),
                  tag="t-0")
    for i in range(20):
        assert (folder.disk / "d" / f"f{i}.bin").read_bytes() == bytes([i]) * (1000 + i)
        with loc.open_read(f"d/f{i}.bin") as handle:
            assert handle.read() == bytes([i]) * (1000 + i)
        assert loc.stat(f"d/f{i}.bin").size == 1000 + i
    assert {"SMB2CreateRequest", "SMB2WriteRequest", "SMB2CloseRequest"} <= set(framed)


def test_the_response_event_behaves_as_threading_event_for_one_response():
    """The one-lock event our sent requests carry: wait/set/clear/is_set as smbprotocol's receive uses them
    (a STATUS_PENDING response is cleared and waited for again), and a waiter on another thread is woken."""
    import threading

    from airflow_datasync.locations.smb.send import ResponseEvent

    event = ResponseEvent()
    assert not event.is_set() and event.wait(0.01) is False
    event.set()
    event.set()  # the receiver's exit sets every outstanding request's event, set or not
    assert event.is_set() and event.wait() and event.wait(0)
    event.clear()
    event.clear()
    assert not event.is_set() and event.wait(0.01) is False
    woken = []
    waiter = threading.Thread(target=lambda: woken.append(event.wait(30)))
    waiter.start()
    event.set()
    waiter.join(30)
    assert woken == [True] and event.is_set()
