"""Big files with several WRITE or READ requests in flight on one open handle.

One request at a time leaves the link idle for a round trip per MiB; here a file keeps up to
:data:`WRITE_DEPTH`/:data:`READ_DEPTH` requests of up to :data:`WRITE_BYTES`/:data:`READ_BYTES` (capped by
the negotiated max write/read size) outstanding and takes their responses in order.

Credits: a request is sent only when the connection's granted window holds its charge (else the oldest
response is awaited first, or — nothing of ours in flight — the request shrinks to the window, or waits as
:func:`.sessions.wait_for_credits` does); each request asks the server for enough credits to keep
:data:`CREDIT_TARGET` granted. smbprotocol itself would only ever ask for each request's own charge, so the
window would stay at what the session setup left (64 credits on Samba: 4 MiB).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

from airflow_datasync.locations.smb.error_table import ConnectionBusyError
from airflow_datasync.locations.smb.messages import READ_RESPONSE
from airflow_datasync.locations.smb.protocol import refused_for_credits
from airflow_datasync.locations.smb.sessions import wait_for_credits
from airflow_datasync.locations.smb.wire import plain_path
from airflow_datasync.locations.smb.wire import send_write as send_write_uncopied

T = TypeVar("T")
#: Mapping of client failures to the errors.py vocabulary (``SmbLocation._mapped`` bound to a path).
Mapped = Callable[[Callable[[], T]], T]

#: WRITE requests kept in flight per file, and their size (at most the negotiated max_write_size): each
#: request costs the client Python of its own (fewer, larger ones are cheaper for us), while smbd spends
#: less per MiB on 4 MiB writes than on 8 MiB ones; 3 x 4 MiB is 192 credits, so two files fit in the
#: 512 a Windows server grants a connection.
WRITE_DEPTH = 3
WRITE_BYTES = 4 << 20
#: READ requests kept in flight per file, and their size (at most the negotiated max_read_size). On
#: loopback a READ ahead made 2 x 500 MiB SMB -> local no faster and VERIFYING's read-back slower (more CPU:
#: smbprotocol's receiver copies every response into fresh buffers, and threads contend for the GIL), so
#: one at a time; over a link with a real round trip, 2 hides it.
READ_DEPTH = 1
READ_BYTES = 1 << 20
#: Credits each connection asks the server to keep granted: Windows servers grant up to 512 by default
#: (Smb2CreditsMin 512 / Smb2CreditsMax 8192), Samba up to 8192 ("smb2 max credits").
CREDIT_TARGET = 512
#: Bytes one credit pays for (MS-SMB2 3.1.5.2).
CREDIT_BYTES = 65536


def credit_charge(length: int) -> int:
    return (max(0, length - 1) // CREDIT_BYTES) + 1


def credits_at_hand(connection: Any) -> int:
    window = connection.sequence_window
    return window["high"] - window["low"]


def credit_request(connection: Any, charge: int, held: int) -> int:
    """What to ask for on a request of ``charge`` credits while ``held`` credits ride on our other requests:
    the charge back, plus what brings the window up to :data:`CREDIT_TARGET`."""
    return charge + max(0, CREDIT_TARGET - credits_at_hand(connection) - held)


_WAITING_LOCK = threading.Lock()
#: Per connection (by id), how many pipelined files wait for credits: while one does, the others send no
#: more requests until theirs are answered, so that the credits coming back reach the waiting one.
_WAITING: dict[int, int] = {}


def others_wait(connection: Any) -> bool:
    return _WAITING.get(id(connection), 0) > 0


def wait_for_some_credits(connection: Any) -> int:
    """The credits at hand, once there are any (waiting as :func:`.sessions.wait_for_credits` does)."""
    key = id(connection)
    with _WAITING_LOCK:
        _WAITING[key] = _WAITING.get(key, 0) + 1
    try:
        return wait_for_credits(lambda: _some_credits(connection))
    finally:
        with _WAITING_LOCK:
            _WAITING[key] -= 1
            if not _WAITING[key]:
                del _WAITING[key]


def _some_credits(connection: Any) -> int:
    """The credits at hand; :class:`ConnectionBusyError` while other requests hold them all."""
    n = credits_at_hand(connection)
    if n <= 0:
        raise ConnectionBusyError("every credit of the connection is held by requests in flight")
    return n


def _ids(fd: Any) -> tuple[int, int]:
    return fd.tree_connect.session.session_id, fd.tree_connect.tree_connect_id


class _Queue:
    """Byte views waiting to be sent, taken from the front in runs of a requested length."""

    def __init__(self) -> None:
        self.views: deque[memoryview] = deque()
        self.size = 0

    def put(self, data: bytes) -> None:
        if data:
            if not isinstance(data, bytes):  # a buffer its producer may refill while our WRITE is in flight
                data = bytes(data)
            self.views.append(memoryview(data))
            self.size += len(self.views[-1])

    def take(self, n: int) -> list[memoryview]:
        out: list[memoryview] = []
        while n > 0:
            head = self.views[0]
            if len(head) <= n:
                out.append(self.views.popleft())
                n -= len(head)
                self.size -= len(head)
            else:
                out.append(head[:n])
                self.views[0] = head[n:]
                self.size -= n
                n = 0
        return out


def send_write(fd: Any, offset: int, views: list[memoryview], credits: int):
    """Send one WRITE of ``views`` at ``offset`` (not waiting for the response); the pending Request."""
    if sum(len(v) for v in views) > CREDIT_BYTES and plain_path(fd):  # small ones: their copies cost little
        return send_write_uncopied(fd, offset, views, credits)
    data = views[0] if len(views) == 1 else b"".join(views)
    message, _ = fd.write(data, offset=offset, send=False)
    sid, tid = _ids(fd)
    return fd.connection.send(message, sid=sid, tid=tid, credit_request=credits)


class SourceFill:
    """A source file read straight into the writer's reused request buffers (:meth:`PipelinedWriter.write_from`),
    each read fed to ``hasher`` (and ``also``) and counted by ``on_chunk``. A fresh ``bytes`` per chunk is a
    fresh mapping of the allocator: its page faults and, when it is freed, a TLB shootdown across the
    threads' CPUs each time, a cost that swings with how the host schedules those CPUs. Iterated, it gives
    chunks as :func:`checksum.stream` does, for a path that takes chunks."""

    def __init__(self, fh: IO[bytes], hasher: Any, also: Any = None,
                 on_chunk: Callable[[int], None] | None = None) -> None:
        self.fh, self.hasher, self.also, self.on_chunk = fh, hasher, also, on_chunk

    def fill(self, buffer: memoryview) -> int:
        """Read into ``buffer`` until it is full or the file ends; the count (0: the end)."""
        n = 0
        while n < len(buffer):
            got = self.fh.readinto(buffer[n:])
            if not got:
                break
            n += got
        if n:
            view = buffer[:n]
            self.hasher.update(view)
            if self.also is not None:
                self.also.update(view)
            if self.on_chunk is not None:
                self.on_chunk(n)
        return n

    def __iter__(self) -> Iterator[bytes]:
        from airflow_datasync import checksum

        return checksum.stream(self.fh, self.hasher, on_chunk=self.on_chunk, also=self.also)


class PipelinedWriter:
    """Streams chunks into an open file handle (``SMBFileIO``) with several WRITEs in flight."""

    def __init__(self, raw: Any, mapped: Mapped) -> None:
        self.raw, self.fd, self.mapped = raw, raw.fd, mapped
        self.conn = self.fd.connection
        self.size = max(1, min(WRITE_BYTES, self.conn.max_write_size if self.conn.supports_multi_credit else CREDIT_BYTES))
        self.offset = raw._offset  # where the next request writes
        self.queue = _Queue()
        # request, offset, views, charge, and the buffer its response frees (write_from: its buffer's last)
        self.inflight: deque[tuple[Any, int, list[memoryview], int, memoryview | None]] = deque()
        self.free: deque[memoryview] = deque()  # write_from's buffers no request in flight holds
        self.written = 0

    def write(self, chunks: Iterator[bytes]) -> int:
        if isinstance(chunks, SourceFill):
            return self.write_from(chunks)
        try:
            for chunk in chunks:
                self.queue.put(chunk)
                while self.queue.size >= self.size:
                    self._send_next()
            while self.queue.size:
                self._send_next()
            while self.inflight:
                self._finish_oldest()
        except BaseException:
            self._abandon()
            raise
        return self._done()

    def write_from(self, source: SourceFill) -> int:
        """Stream ``source`` through buffers of one request each, one more than :data:`WRITE_DEPTH`: a buffer
        is read into again only once the requests sending it are answered (a short write resends from it)."""
        self.free.extend(memoryview(bytearray(self.size)) for _ in range(WRITE_DEPTH + 1))
        try:
            while True:
                while not self.free:
                    self._finish_oldest()
                buffer = self.free.popleft()
                n = source.fill(buffer)
                if not n:
                    break
                self.queue.views.append(buffer[:n])
                self.queue.size += n
                while self.queue.size:  # credits may cut it into several requests; the last frees it
                    self._send_next(buffer)
            while self.inflight:
                self._finish_oldest()
        except BaseException:
            self._abandon()
            raise
        finally:
            self.free.clear()
        return self._done()

    def _done(self) -> int:
        self.raw._offset = self.offset
        self.fd.end_of_file = max(self.fd.end_of_file, self.offset)
        return self.written

    def _held(self) -> int:
        return sum(entry[3] for entry in self.inflight)

    def _send_next(self, buffer: memoryview | None = None) -> None:
        while len(self.inflight) >= WRITE_DEPTH or (self.inflight and others_wait(self.conn)):
            self._finish_oldest()
        n = min(self.size, self.queue.size)
        while credit_charge(n) > credits_at_hand(self.conn):
            if self.inflight:  # its response brings its credits back
                self._finish_oldest()
            else:  # others hold the window, or the server grants less: a smaller request
                n = min(n, wait_for_some_credits(self.conn) * CREDIT_BYTES)
        self._send(self.offset, self.queue.take(n), None if self.queue.size else buffer)
        self.offset += n

    def _send(self, offset: int, views: list[memoryview], frees: memoryview | None = None) -> None:
        n = sum(len(v) for v in views)
        charge = credit_charge(n)

        def once():
            try:
                return send_write(self.fd, offset, views, credit_request(self.conn, charge, self._held()))
            except Exception as exc:
                refused = refused_for_credits(exc) or isinstance(exc, ConnectionBusyError)
                if refused and self.inflight:  # another thread took them first
                    self._finish_oldest()
                raise

        request = wait_for_credits(lambda: self.mapped(once))
        self.inflight.append((request, offset, views, charge, frees))

    def _finish_oldest(self) -> None:
        request, offset, views, _, frees = self.inflight.popleft()
        count = self.mapped(lambda: self.fd._write_response(request))
        length = sum(len(v) for v in views)
        self.written += min(count, length)
        if count < length:  # a short write: the rest again once the requests after it are answered (their
            rest = _tail(views, count)  # credits are then back for it)
            while self.inflight:
                self._finish_oldest()
            self._rewrite(offset + count, rest)
        if frees is not None:
            self.free.append(frees)

    def _rewrite(self, offset: int, views: list[memoryview]) -> None:
        remaining = sum(len(v) for v in views)
        while remaining:
            def once(at=offset, data=views):
                request = send_write(self.fd, at, data, credit_charge(sum(len(v) for v in data)))
                count = self.fd._write_response(request)
                if count <= 0:  # no credits for this request right now: others return theirs
                    raise ConnectionBusyError("the server accepted no bytes")
                return count

            count = wait_for_credits(lambda: self.mapped(once))
            self.written += count
            offset += count
            remaining -= count
            views = _tail(views, count)

    def _abandon(self) -> None:
        """Take the responses of the requests still in flight (their errors do not matter: the write failed)."""
        while self.inflight:
            request = self.inflight.popleft()[0]
            try:
                self.fd._write_response(request)
            except Exception:  # the write already failed; the connection may be gone
                pass


def read_data(fd: Any, request: Any) -> bytes | memoryview:
    """A READ response's data: a view of the message our receiver delivered (smbprotocol's own parse copies
    it twice over, through its body and its structure), else smbprotocol's parse."""
    from airflow_datasync.locations.smb.receive import ReceivedHeader  # imports smbprotocol: not at module load

    response = fd.connection.receive(request)
    if not isinstance(response, ReceivedHeader):
        from smbprotocol.open import SMB2ReadResponse

        parsed = SMB2ReadResponse()
        parsed.unpack(response["data"].get_value())
        return parsed["buffer"].get_value()
    message = response.message()
    size, offset, length = READ_RESPONSE.unpack_from(message, 64)
    if size != 17 or offset + length > len(message) or (length and offset < 64 + 16):
        from smbprotocol.exceptions import SMBException

        raise SMBException(f"a READ response with StructureSize {size}, DataOffset {offset}, DataLength {length} "
                           f"in a {len(message)}-byte message")
    return message[offset:offset + length]


def _tail(views: list[memoryview], skip: int) -> list[memoryview]:
    """``views`` without their first ``skip`` bytes."""
    out = []
    for v in views:
        if skip >= len(v):
            skip -= len(v)
            continue
        out.append(v[skip:])
        skip = 0
    return out


class ReadAhead:
    """READs of an open file handle (``SMBFileIO``) sent ahead of the bytes handed out, up to the size the
    server reported at open; bytes come out in file order."""

    def __init__(self, raw: Any, mapped: Mapped) -> None:
        self.fd, self.mapped = raw.fd, mapped
        self.conn = self.fd.connection
        self.size = max(1, min(READ_BYTES, self.conn.max_read_size if self.conn.supports_multi_credit else CREDIT_BYTES))
        self.end = self.fd.end_of_file
        self.next = raw._offset  # where the next request reads
        self.inflight: deque[tuple[Any, int, int, int]] = deque()  # request, offset, length, charge
        self.buffer = memoryview(b"")

    def readinto(self, b) -> int:
        """Bytes into ``b`` from the oldest response; 0 at the end of the file, or when a read came back empty
        before it (the caller tells the two apart)."""
        if not self.buffer:
            self._top_up()
            if not self.inflight:
                return 0
            self._take_oldest()
        n = min(len(b), len(self.buffer))
        b[:n] = self.buffer[:n]
        self.buffer = self.buffer[n:]
        return n

    def _top_up(self) -> None:
        while len(self.inflight) < READ_DEPTH and self.next < self.end:
            if self.inflight and others_wait(self.conn):
                return
            n = min(self.size, self.end - self.next)
            if credit_charge(n) > credits_at_hand(self.conn):
                if self.inflight:
                    return  # the responses on the way bring credits back
                n = min(n, wait_for_some_credits(self.conn) * CREDIT_BYTES)
            request = self._send(n)
            if request is None:  # another thread took the credits first; ours come back with the responses
                return
            self.inflight.append((request, self.next, n, credit_charge(n)))
            self.next += n

    def _send(self, n: int):
        charge = credit_charge(n)
        message, _ = self.fd.read(self.next, n, send=False)
        sid, tid = _ids(self.fd)
        credits = credit_request(self.conn, charge, sum(entry[3] for entry in self.inflight))
        try:
            return self.mapped(lambda: self.conn.send(message, sid=sid, tid=tid, credit_request=credits))
        except ConnectionBusyError:
            if self.inflight:
                return None
            raise

    def _take_oldest(self) -> None:
        request, offset, length, _ = self.inflight.popleft()
        try:
            data = self.mapped(lambda: read_data(self.fd, request))
        except BaseException:
            self.next = offset  # what the failed request read is asked for again
            self.abandon()
            raise
        if len(data) < length:  # a short read: the requests after it read past a gap
            self.abandon()
            self.next = offset + len(data)
        self.buffer = memoryview(data)

    def abandon(self) -> None:
        """Take the responses still in flight and forget them (smbprotocol keeps a response until taken)."""
        while self.inflight:
            request, offset, _, _ = self.inflight.popleft()
            self.next = min(self.next, offset)
            try:
                self.fd._read_response(request)
            except Exception:  # their bytes are not wanted; the connection may be gone
                pass
