"""A lean receiver for our pooled SMB connections: responses read, split, verified and handed over with ``struct``.

smbprotocol's receiver thread unpacks every response into an ``SMB2HeaderResponse`` of Field objects and
verifies its signature over a re-packed copy of it; with 8 connections and 16 copy threads that thread's
Python is most of the interpreter's time on small files. :class:`LeanConnection` replaces only that thread:

- frames are read from the socket through one buffer (several small responses per ``recv``);
- a compound response is split at its ``NextCommand`` offsets, each header read with one ``unpack_from``;
- a signed response is verified over the bytes received, its signature field zeroed (MS-SMB2 3.2.5.1.3),
  with the algorithm the dialect gives (AES-GMAC, AES-CMAC or HMAC-SHA256, as ``_generate_signature``)
  and the session's own signing key;
- credits go to ``sequence_window["high"]`` under ``sequence_lock`` and the response to its ``Request``
  under its ``response_event_lock``, as smbprotocol does, so ``Connection.receive``, ``send_compound``,
  STATUS_PENDING and everything that reads a response keep working: :class:`ReceivedHeader` answers the
  header fields they read and unpacks smbprotocol's structure the first time anything else is asked.

What stays smbprotocol's: NEGOTIATE and SESSION_SETUP responses (its preauth integrity hash and session id
handling, through its own header structure), decryption of a transform header (``Connection._decrypt``;
a decrypted message is not verified again, as smbprotocol), the keep-alive echo. Ordinary requests are
framed by :mod:`.send`, the others by smbprotocol's ``_send``. Any error in the
receiver is the connection's end, as in smbprotocol: the exception is kept in ``_t_exc`` for the next
caller, the socket closed and every waiting request woken.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import select
import socket
import struct
from typing import Any

from smbprotocol.connection import Connection, SMB2Echo, SMB2TransformHeader
from smbprotocol.exceptions import SMBConnectionClosed, SMBException
from smbprotocol.header import SMB2HeaderResponse

from airflow_datasync.locations.smb.send import HeaderField, HeaderFlags, send_lean

log = logging.getLogger(__name__)

#: The SYNC/ASYNC header (MS-SMB2 2.2.1): ProtocolId, StructureSize, CreditCharge, Status, Command,
#: CreditResponse, Flags, NextCommand, MessageId, Reserved/AsyncId low, TreeId/AsyncId high, SessionId.
_HEADER = struct.Struct("<4sHHIHHIIQIIQ")
_HEADER_SIZE = 64
_SMB2_MAGIC, _TRANSFORM_MAGIC = b"\xfeSMB", b"\xfdSMB"
SMB2_NEGOTIATE, SMB2_SESSION_SETUP, SMB2_CANCEL, SMB2_ECHO = 0x0000, 0x0001, 0x000C, 0x000D
FLAGS_SERVER_TO_REDIR, FLAGS_ASYNC, FLAGS_SIGNED = 0x00000001, 0x00000002, 0x00000008
STATUS_PENDING, STATUS_MORE_PROCESSING_REQUIRED = 0x00000103, 0xC0000016
#: NTSTATUS values from here on are errors (severity 3, MS-ERREF 2.3).
_ERROR_SEVERITY = 0xC0000000
#: The message id of an unsolicited message (an oplock or lease break notification): no request awaits it.
UNSOLICITED = 0xFFFFFFFFFFFFFFFF
HMAC_SHA256, AES_CMAC, AES_GMAC = 0, 1, 2
_DIALECT_3_0_0, _DIALECT_3_1_1 = 0x0300, 0x0311
_ZERO_SIGNATURE = bytes(16)
#: How much one ``recv`` asks for; frames larger than this are read straight into a buffer of their own.
READ_BUFFER = 256 * 1024
#: Messages at most this size are signed over one joined copy; larger ones (READ data) incrementally.
_JOIN_LIMIT = 64 * 1024


class SignatureMismatch(SMBException):
    """A response's signature is not the one its session's key gives: the connection is not to be trusted."""


class ReceivedHeader:
    """A response as ``Connection.receive`` and its callers read it: ``header["status"].get_value()``,
    ``["message_id"]``, ``["credit_response"]``, ``["flags"].has_flag(…)``, ``["data"]`` (the body, with the
    padding before the next compound member, as smbprotocol gives it). Any other field, ``pack()`` or
    attribute comes from smbprotocol's ``SMB2HeaderResponse``, unpacked on first use."""

    __slots__ = ("_raw", "_fields", "_structure")
    # _raw: a view of the received message (its frame is not reused), copied only where bytes are asked for.
    _FAST = {"status": 3, "command": 4, "credit_response": 5, "next_command": 7, "message_id": 8,
             "tree_id": 10, "session_id": 11}

    def __init__(self, raw: memoryview, fields: tuple) -> None:
        self._raw, self._fields, self._structure = raw, fields, None

    def __getitem__(self, name: str) -> Any:
        index = self._FAST.get(name)
        if index is not None:
            return HeaderField(self._fields[index])
        if name == "data":
            return HeaderField(bytes(self._raw[_HEADER_SIZE:]))
        if name == "flags":
            return HeaderFlags(self._fields[6])
        return self.structure()[name]

    def body(self) -> bytes:
        """The response's body (what ``["data"].get_value()`` gives)."""
        return bytes(self._raw[_HEADER_SIZE:])

    def message(self) -> memoryview:
        """The whole response, header first, as received (a READ's data taken from it without a copy)."""
        return self._raw

    def structure(self) -> SMB2HeaderResponse:
        """smbprotocol's own structure of this response."""
        if self._structure is None:
            header = SMB2HeaderResponse()
            header.unpack(bytes(self._raw))
            self._structure = header
        return self._structure

    def pack(self) -> bytes:
        return bytes(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.structure(), name)


def _signature_algorithm(connection: Connection) -> int:
    if connection.dialect >= _DIALECT_3_1_1 and connection.signing_algorithm_id is not None:
        return connection.signing_algorithm_id
    return AES_CMAC if connection.dialect >= _DIALECT_3_0_0 else HMAC_SHA256


class ResponseVerifier:
    """Computes a response's expected signature over its received bytes with one session key."""

    __slots__ = ("key", "_algorithm", "_gcm", "_hmac")

    def __init__(self, connection: Connection, key: bytes) -> None:
        self.key, self._algorithm = key, _signature_algorithm(connection)
        self._gcm = self._hmac = None
        if self._algorithm == AES_GMAC:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._gcm = AESGCM(key)  # keyed once per session, not per message
        elif self._algorithm == HMAC_SHA256:
            self._hmac = hmac.new(key, digestmod=hashlib.sha256)

    def signature(self, message: memoryview, message_id: int, flags: int, command: int) -> bytes:
        """The signature ``message`` (one message, its signature field as received) should carry."""
        return self.sign(message, message_id, bool(flags & FLAGS_SERVER_TO_REDIR), command)

    def sign(self, message: memoryview | bytes, message_id: int, response: bool, command: int) -> bytes:
        """The signature of ``message`` (a request, or with ``response`` a response), whatever its
        signature field holds (MS-SMB2 3.1.4.1)."""
        message = memoryview(message)
        pieces = (message[:48], _ZERO_SIGNATURE, message[_HEADER_SIZE:])
        if self._algorithm == AES_GMAC:
            info = (1 if response else 0) | (2 if command == SMB2_CANCEL else 0)
            nonce = message_id.to_bytes(8, "little") + info.to_bytes(4, "little")
            if len(message) <= _JOIN_LIMIT:
                return self._gcm.encrypt(nonce, b"", b"".join(pieces))
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

            ctx = Cipher(algorithms.AES(self.key), modes.GCM(nonce)).encryptor()
            for piece in pieces:
                ctx.authenticate_additional_data(piece)
            ctx.finalize()
            return ctx.tag
        if self._algorithm == AES_CMAC:
            from cryptography.hazmat.primitives import cmac
            from cryptography.hazmat.primitives.ciphers import algorithms

            mac = cmac.CMAC(algorithms.AES(self.key))
            for piece in pieces:
                mac.update(piece)
            return mac.finalize()
        digest = self._hmac.copy()
        for piece in pieces:
            digest.update(piece)
        return digest.digest()[:16]


class FrameReader:
    """Direct-TCP frames (a 4-byte big-endian length, then the message) read from the transport's socket
    through one buffer. Holds the transport's close lock while it reads, as smbprotocol's ``Tcp._recv``
    does, so that ``Tcp.close`` (shutdown, then close under that lock) never closes a socket mid-recv."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._buffer = bytearray(READ_BUFFER)
        self._view = memoryview(self._buffer)
        self._start = self._end = 0

    def next_frame(self, timeout: float) -> bytes | bytearray | None:
        """The next frame's message; None once the socket is closed or shut down. Raises ``TimeoutError``
        when no frame starts within ``timeout`` seconds, :class:`SMBConnectionClosed` when one stops half-way."""
        if not self._fill(4, timeout, idle=True):
            return None
        size = int.from_bytes(self._view[self._start:self._start + 4], "big")
        self._start += 4
        if size > len(self._buffer):
            return self._large_frame(size, timeout)
        if not self._fill(size, timeout, idle=False):
            raise SMBConnectionClosed(f"the SMB connection closed in the middle of a {size}-byte response")
        frame = bytes(self._view[self._start:self._start + size])
        self._start += size
        return frame

    def _fill(self, need: int, timeout: float, idle: bool) -> bool:
        """At least ``need`` bytes buffered after ``_start``; False if the socket ended first."""
        if self._end - self._start >= need:
            return True
        if self._start:  # move the partial rest to the front, so the buffer's free space follows it
            held = self._end - self._start
            self._view[:held] = self._view[self._start:self._end]
            self._start, self._end = 0, held
        while self._end < need:
            count = self._recv_into(self._view[self._end:], timeout, idle and self._end == 0)
            if not count:
                return False
            self._end += count
        return True

    def _large_frame(self, size: int, timeout: float) -> bytearray:
        frame = bytearray(size)
        view = memoryview(frame)
        held = min(self._end - self._start, size)
        view[:held] = self._view[self._start:self._start + held]
        self._start += held
        while held < size:
            count = self._recv_into(view[held:], timeout, idle=False)
            if not count:
                raise SMBConnectionClosed(f"the SMB connection closed in the middle of a {size}-byte response")
            held += count
        return frame

    def _recv_into(self, target: memoryview, timeout: float, idle: bool) -> int:
        transport = self._transport
        with transport._close_lock:
            if not transport.connected:
                return 0
            sock = transport._sock
            try:
                # Without a wait when bytes are already there: the socket is shared with the senders, so it
                # stays blocking and the wait for bytes is a select.
                return sock.recv_into(target, len(target), socket.MSG_DONTWAIT) or self._ended()
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno in (errno.ESHUTDOWN, errno.ECONNRESET, errno.ECONNABORTED):
                    return self._ended()
                raise
            if not select.select([sock], [], [], max(timeout, 1))[0]:
                if idle:
                    raise TimeoutError(f"no SMB response for {timeout} s")
                raise SMBConnectionClosed(f"the SMB server stopped for {timeout} s in the middle of a response")
            try:
                count = sock.recv_into(target, len(target))
            except OSError as exc:
                if exc.errno in (errno.ESHUTDOWN, errno.ECONNRESET, errno.ECONNABORTED):
                    return self._ended()
                raise
        return count or self._ended()

    @staticmethod
    def _ended() -> int:
        # The stream ended. The caller closes the transport, as smbprotocol's Tcp._recv does, once out of the
        # close lock: Tcp.close takes that lock too.
        return 0


class LeanConnection(Connection):
    """smbprotocol's ``Connection`` with :class:`FrameReader` and :meth:`_deliver` as its receiver thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verifiers: dict[int, ResponseVerifier] = {}  # per session id, for the receiver thread
        self._signers: dict[bytes, ResponseVerifier] = {}  # per signing key, for the sending threads

    def _process_message_thread(self) -> None:
        reader = FrameReader(self.transport)
        try:
            while True:
                try:
                    frame = reader.next_frame(self._receive_timeout)
                except TimeoutError as exc:
                    self._keep_alive(exc)
                    continue
                if frame is None:
                    self.transport.close()
                    return
                self._dispatch(frame)
        except Exception as exc:
            log.warning("SMB receiver of %s:%s stopped: %s", self.server_name, self.port, exc)
            self._t_exc = exc  # raised to the next caller by _check_worker_running
            self.disconnect(False)
        finally:
            for request in list(self.outstanding_requests.values()):
                with request.response_event_lock:  # as every set: a waiter may be clearing it (STATUS_PENDING)
                    request.response_event.set()

    def _send(self, messages: list, session_id: Any = None, tree_id: Any = None, message_id: Any = None,
              credit_request: Any = None, related: bool = False, async_id: Any = None,
              force_signature: bool = False) -> list:
        # Every send and send_compound comes here: ordinary requests are framed by send.send_lean, the rest
        # (set-up, CANCEL, async, forced signatures, encryption, a short window) by smbprotocol.
        if message_id is None and async_id is None and not force_signature:
            requests = send_lean(self, messages, session_id, tree_id, credit_request, related)
            if requests is not None:
                return requests
        return super()._send(messages, session_id=session_id, tree_id=tree_id, message_id=message_id,
                             credit_request=credit_request, related=related, async_id=async_id,
                             force_signature=force_signature)

    def _generate_signature(self, b_header: bytes, signing_key: bytes, message_id: int, response: bool,
                            command: int) -> bytes:
        # smbprotocol's _send signs each request through this: the same signature, from a key schedule
        # made once per key instead of per message.
        verifier = self._signers.get(signing_key)
        if verifier is None:
            verifier = self._signers[signing_key] = ResponseVerifier(self, signing_key)
        return verifier.sign(b_header, message_id, response, command)

    def _keep_alive(self, idle: TimeoutError) -> None:
        """An idle connection: an echo per session keeps the server from dropping it; an echo of ours still
        unanswered means the server is gone (smbprotocol's rule, with its ``reserved`` = 1 mark)."""
        for request in list(self.outstanding_requests.values()):
            if (request.response is None and request.message["command"].get_value() == SMB2_ECHO
                    and request.message["reserved"].get_value() == 1):
                raise SMBConnectionClosed("the SMB server did not answer a keep-alive echo") from idle
        for session_id in list(self.session_table):
            self.send(SMB2Echo(), sid=session_id).message["reserved"] = 1

    def _dispatch(self, frame: bytes | bytearray) -> None:
        encrypted = frame[:4] == _TRANSFORM_MAGIC
        if encrypted:
            transform = SMB2TransformHeader()
            transform.unpack(bytes(frame))
            frame = self._decrypt(transform)
        view = memoryview(frame)
        offset, total = 0, len(frame)
        while True:
            if total - offset < _HEADER_SIZE:  # an SMBException, as a connection problem, not a struct.error
                raise SMBException(f"a response of {total - offset} bytes, shorter than an SMB2 header")
            fields = _HEADER.unpack_from(frame, offset)
            if fields[0] != _SMB2_MAGIC:
                raise SMBException(f"a response that is not SMB2 (protocol id {bytes(fields[0])!r})")
            next_command = fields[7]
            end = offset + next_command if next_command else total
            if end > total or end < offset + _HEADER_SIZE:
                raise SMBException(f"a compound response's NextCommand {next_command} runs outside its frame")
            self._deliver(view[offset:end], fields, encrypted)
            if not next_command:
                return
            offset = end

    def _deliver(self, message: memoryview, fields: tuple, encrypted: bool) -> None:
        status, command, credit_response, flags, message_id = fields[3], fields[4], fields[5], fields[6], fields[8]
        if message_id == UNSOLICITED:
            # An oplock/lease break notification: we ask for neither, so nothing of ours waits on it.
            log.debug("SMB unsolicited message, command %#x, ignored", command)
            return
        request = self.outstanding_requests.get(message_id)
        if request is None:
            raise SMBException(f"a response to message id {message_id}, which no request awaits")
        if command in (SMB2_NEGOTIATE, SMB2_SESSION_SETUP):
            response = self._setup_response(bytes(message), request, status, command, message_id)
        else:
            if not encrypted and status != STATUS_PENDING:
                if flags & FLAGS_SIGNED:
                    self._verify(message, request.session_id, fields)
                elif status < _ERROR_SEVERITY and self._signs(request.session_id):
                    # A meddler could clear the flag and change the body (MS-SMB2 3.2.5.1.3: discard it).
                    # Errors may come unsigned (an expired session): forged, they stop an operation, no more.
                    raise SignatureMismatch(f"the response to message id {message_id} (command {command:#x}) "
                                            "is not signed on a session that signs")
            response = ReceivedHeader(message, fields)
        if credit_response == 0 and not self.supports_multi_credit:
            credit_response = 1  # a dialect without credits still moves the window by one per response
        with self.sequence_lock:
            self.sequence_window["high"] += credit_response
        with request.response_event_lock:
            if flags & FLAGS_ASYNC:
                request.async_id = bytes(message[32:40])
            request.response = response
            request.response_event.set()
            if command == SMB2_ECHO and request.message["reserved"].get_value() == 1:
                self.outstanding_requests.pop(message_id, None)  # our keep-alive: nobody takes its response

    def _setup_response(self, raw: bytes, request: Any, status: int, command: int, message_id: int):
        """smbprotocol's structure and bookkeeping for NEGOTIATE and SESSION_SETUP responses: the preauth
        integrity hash takes their exact bytes, session setup's session id comes from the response."""
        header = SMB2HeaderResponse()
        header.unpack(raw)
        if command == SMB2_NEGOTIATE:
            self.verify_signature(header, request.session_id)
            self.preauth_integrity_hash_value.append(raw)
        elif status == STATUS_MORE_PROCESSING_REQUIRED:
            self.preauth_integrity_session_hash_value[message_id].append(raw)
        return header

    def _signs(self, session_id: int | None) -> bool:
        session = self.session_table.get(session_id)
        return session is not None and bool(session.signing_required and session.signing_key)

    def _verify(self, message: memoryview, session_id: int | None, fields: tuple) -> None:
        session = self.session_table.get(session_id)
        if session is None:
            raise SMBException(f"a signed response for session {session_id}, which this connection does not hold")
        verifier = self._verifiers.get(session_id)
        if verifier is None or verifier.key is not session.signing_key:
            verifier = self._verifiers[session_id] = ResponseVerifier(self, session.signing_key)
        expected = verifier.signature(message, fields[8], fields[6], fields[4])
        if message[48:64] != expected:
            raise SignatureMismatch(f"the signature of the response to message id {fields[8]} (command "
                                    f"{fields[4]:#x}) does not verify with its session's key")
