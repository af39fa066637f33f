"""Ordinary requests on an established session framed with ``struct``, for :class:`~.receive.LeanConnection`.

smbprotocol's ``Connection._send`` builds an ``SMB2HeaderRequest`` Structure of Field objects per message,
packs it, copies it to splice padding and signature in, and sends through a slicing loop: on small files it is
the largest share of the SMB client's Python. :func:`send_lean` builds the same bytes (MS-SMB2 2.2.1.2, the
SYNC header) with one ``struct.pack`` per message and keeps smbprotocol's bookkeeping as it is:

- credit charge from ``Connection._calculate_credit_charge``, credit request ``credit_request or charge``;
- message ids and the sequence window taken under ``sequence_lock``; a window short of one request is
  smbprotocol's own path, so its refusal (``protocol.refused_for_credits``) stays the same exception; one
  short of a compound raises :class:`~.error_table.ConnectionBusyError` before any id is taken (the
  caller waits for credits, as for ``compound._reserve``'s refusal: another thread may have taken them
  since that check), where smbprotocol would number the first requests and burn their ids;
- each ``Request`` registered in ``outstanding_requests`` as soon as its id is taken, before packing and
  signing (``compound._reserve`` reads "no credits, nothing outstanding" as a window nothing will widen);
- compound members at 8-byte boundaries with ``NextCommand``, the related and DFS flags, the signature over
  each member's bytes with its padding, from the connection's cached key setup (``_generate_signature``).

A ``Request.message`` is a :class:`SentHeader`: it answers the header fields smbprotocol and our receiver
read and builds smbprotocol's structure from the sent bytes the first time anything else is asked.
NEGOTIATE, SESSION_SETUP (preauth hash), CANCEL and async requests, forced signatures, requests without a
session and encrypted sessions or trees return None here: the caller takes smbprotocol's ``_send``.
"""

from __future__ import annotations

import struct
from _thread import allocate_lock
from datetime import datetime
from typing import Any

from airflow_datasync.locations.smb.error_table import ConnectionBusyError

#: ProtocolId, StructureSize, CreditCharge, ChannelSequence, Reserved, Command, CreditRequest, Flags,
#: NextCommand, MessageId, Reserved (process id), TreeId, SessionId; the signature (16 bytes) follows.
_HEAD = struct.Struct("<4sHHHHHHIIQIIQ")
_ZERO_SIGNATURE = bytes(16)
SMB2_NEGOTIATE, SMB2_SESSION_SETUP, SMB2_CANCEL = 0x0000, 0x0001, 0x000C
FLAGS_RELATED, FLAGS_SIGNED, FLAGS_DFS = 0x00000004, 0x00000008, 0x10000000
_SETUP_COMMANDS = (SMB2_NEGOTIATE, SMB2_SESSION_SETUP, SMB2_CANCEL)
#: Direct TCP's largest message (a 3-byte length, as smbprotocol's ``Tcp.MAX_SIZE``).
MAX_FRAME = 0xFFFFFF


class HeaderField:
    """A header field as smbprotocol's Structures give it (``.get_value()``), without the Structure; shared by
    the sent (:class:`SentHeader`) and received (``receive.ReceivedHeader``) headers."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def get_value(self) -> Any:
        return self.value


class HeaderFlags(HeaderField):
    __slots__ = ()

    def has_flag(self, flag: int) -> bool:
        return self.value & flag == flag


class SentHeader:
    """A sent request's header as ``Request.message``: ``["message_id"]``, ``["command"]``, ``["tree_id"]``,
    ``["session_id"]``, ``["reserved"]``, ``["flags"]``, ``["signature"]``, ``["data"]`` (the body, as
    smbprotocol keeps it) read without a Structure; anything else, ``pack()`` or an assignment goes to
    smbprotocol's ``SMB2HeaderRequest`` unpacked from the sent bytes."""

    __slots__ = ("_fields", "_message", "_body", "_signature", "_structure")
    _INDEX = {"credit_charge": 0, "command": 1, "credit_request": 2, "flags": 3, "next_command": 4,
              "message_id": 5, "tree_id": 6, "session_id": 7}

    def __init__(self, fields: tuple, message: Any) -> None:
        self._fields = fields  # credit charge, command, credit request, flags, next command, id, tree, session
        self._message, self._body, self._signature, self._structure = message, None, _ZERO_SIGNATURE, None

    def body(self) -> bytes:
        if self._body is None:
            self._body = self._message.pack()
        return self._body

    def head(self) -> bytes:
        """The 64-byte header with the signature it was sent with."""
        f = self._fields
        return _HEAD.pack(b"\xfeSMB", 64, f[0], 0, 0, f[1], f[2], f[3], f[4], f[5], 0, f[6], f[7]) + self._signature

    def structure(self) -> Any:
        if self._structure is None:
            from smbprotocol.header import SMB2HeaderRequest

            header = SMB2HeaderRequest()
            header.unpack(self.head() + self.body())
            self._structure = header
        return self._structure

    def __getitem__(self, name: str) -> Any:
        if self._structure is not None:
            return self._structure[name]
        index = self._INDEX.get(name)
        if index is not None:
            return HeaderFlags(self._fields[3]) if index == 3 else HeaderField(self._fields[index])
        if name == "data":
            return HeaderField(self.body())
        if name == "signature":
            return HeaderField(self._signature)
        if name in ("reserved", "process_id", "channel_sequence"):
            return HeaderField(0)
        return self.structure()[name]

    def __setitem__(self, name: str, value: Any) -> None:
        # smbprotocol marks its keep-alive echo with reserved = 1 after sending; from here on the structure
        # holds the truth.
        self.structure()[name] = value

    def pack(self) -> bytes:
        return self.structure().pack()

    def __len__(self) -> int:
        return 64 + len(self.body())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle probing a half-made object: not the structure's to answer
            raise AttributeError(name)
        return getattr(self.structure(), name)


class ResponseEvent:
    """``threading.Event``'s ``wait``/``set``/``clear``/``is_set`` for one response, on one lock (an Event
    is a Condition and two locks). Its gate is held while the event is clear. Every ``set`` and ``clear``
    runs under the request's ``response_event_lock`` (smbprotocol's ``receive``; :class:`~.receive.LeanConnection`
    sets them nowhere else), so the flag and the gate change together."""

    __slots__ = ("_flag", "_gate")

    def __init__(self) -> None:
        self._flag = False
        self._gate = allocate_lock()
        self._gate.acquire()

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        if not self._flag:
            self._flag = True
            self._gate.release()

    def clear(self) -> None:
        if self._flag:
            self._gate.acquire()  # free since set (a waiter holds it only for an instant)
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        if self._gate.acquire(True, -1 if timeout is None else timeout):
            self._gate.release()
        return self._flag


def sent_request(message: Any, message_type: Any, connection: Any, session_id: Any) -> Any:
    """smbprotocol's ``Request`` for a sent message, its response event a :class:`ResponseEvent`."""
    from smbprotocol.connection import Request

    request = Request.__new__(Request)
    request.async_id, request.message, request.timestamp, request.cancelled = None, message, datetime.now(), False
    request.response, request.response_event, request.response_event_lock = None, ResponseEvent(), allocate_lock()
    request.related_ids, request.session_id = [], session_id
    request._connection, request._message_type = connection, message_type
    return request


def send_lean(connection: Any, messages: list, session_id: Any, tree_id: Any, credit_request: Any,
              related: bool) -> list | None:
    """Send ``messages`` (one, or a compound) as smbprotocol's ``_send`` would and return their ``Request``
    objects; None when this send is one smbprotocol's own path must make (see the module's docstring)."""
    session = connection.session_table.get(session_id)
    if session is None or session.encrypt_data:
        return None
    is_dfs = False
    if tree_id:
        tree = session.tree_connect_table.get(tree_id)
        if tree is None or tree.encrypt_data:
            return None  # smbprotocol raises its own error for an unknown tree
        is_dfs = tree.is_dfs_share
    for message in messages:
        if message.COMMAND in _SETUP_COMMANDS:
            return None
    charges = [connection._calculate_credit_charge(m) for m in messages]
    # The message ids each takes: its charge, one where the dialect charges none (SMB 2.0.2: charge 0).
    steps = [charge if charge > 0 else 1 for charge in charges]
    with connection.sequence_lock:
        window = connection.sequence_window
        low = window["low"]
        if sum(steps) > window["high"] - low:
            if len(messages) > 1:  # smbprotocol would number the first requests, then refuse: ids burned
                raise ConnectionBusyError(f"{sum(steps)} credits needed for a compound, "
                                          f"{window['high'] - low} free")
            return None  # smbprotocol's path refuses (or, credits arrived meanwhile, sends)
        ids = []
        for step in steps:
            ids.append(low)
            low += step
        window["low"] = low

    signing_key = session.signing_key if session.signing_required else None
    base_flags = (FLAGS_DFS if is_dfs else 0) | (FLAGS_SIGNED if signing_key else 0)
    last = len(messages) - 1
    outstanding = connection.outstanding_requests
    requests, headers = [], []
    for i, message in enumerate(messages):
        flags = base_flags | (FLAGS_RELATED if related and i else 0)
        charge = charges[i]
        # NextCommand is filled in once the body is packed; until then the header answers what is known.
        header = SentHeader((charge, message.COMMAND, credit_request or charge, flags, 0, ids[i], tree_id or 0,
                             session_id), message)
        request = sent_request(header, type(message), connection, session_id)
        outstanding[ids[i]] = request
        requests.append(request)
        headers.append(header)
    try:
        pieces = []
        for i, header in enumerate(headers):
            body = header.body()
            padding = b""
            next_command = 0
            if i != last:
                size = 64 + len(body)
                padding = bytes(-size % 8)
                next_command = size + len(padding)
                f = header._fields
                header._fields = (f[0], f[1], f[2], f[3], next_command, f[5], f[6], f[7])
            head = header.head()
            if signing_key:
                f = header._fields
                header._signature = connection._generate_signature(head + body + padding, signing_key, f[5],
                                                                   False, f[1])
                head = head[:48] + header._signature
            pieces += (head, body, padding)
        size = sum(len(p) for p in pieces)
        if size > MAX_FRAME:
            raise ValueError(f"Data to be sent over Direct TCP size {size} exceeds the max length allowed {MAX_FRAME}")
    except BaseException:
        for header in headers:  # nothing was sent: no response will come for these ids
            outstanding.pop(header._fields[5], None)
        raise
    if related:
        requests[0].related_ids = ids[1:]
    connection._check_worker_running()
    frame = b"".join([size.to_bytes(4, "big"), *pieces])
    transport = connection.transport
    with transport._sock_lock:
        transport._sock.sendall(frame)
    return requests
