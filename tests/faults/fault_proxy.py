"""A loopback TCP fault proxy for the server-fault cases: it sits between the engine and one real server
(SeaweedFS, smbd, Azurite) and, switched at run time from the test thread, passes traffic, resets
connections, stalls, throttles, truncates responses or refuses connections.

It runs its own asyncio event loop in a daemon thread; every public method is thread-safe (it hands the
change to the loop and returns at once, or waits for it where the caller needs the effect in place, as
for :meth:`FaultProxy.refuse`). Which connections a fault hits is drawn from a seeded ``random.Random``,
so a failing case replays with its seed.

Modes (one at a time; each applies to live connections from the moment it is set, and to new ones):

- ``pass_through()``: forward both ways.
- ``reset(after=N, fraction=f, direction=..., new_connections=True)``: a drawn fraction of the
  connections is reset (RST, by ``SO_LINGER`` 0) once N more bytes have gone through in ``direction``
  (``"up"`` client→server, ``"down"`` server→client, ``"both"``); ``after=0`` resets them at once, idle
  or not; ``new_connections=False`` spares connections opened after the mode was set (a one-off fault).
- ``stall(seconds)``: nothing is forwarded, either way, on any connection, for ``seconds`` (connections
  are still accepted); then traffic resumes by itself.
- ``slow(bytes_per_second)``: each direction of each connection throttled to that rate.
- ``truncate(after=N, fraction=f, new_connections=True)``: a drawn fraction of the connections gets N more bytes of the
  server's answers, then both sides are closed (FIN): the client sees a response cut short.
- ``refuse()`` / ``accept()``: the listener is closed (connection refused) / opened again on the same port.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Mode:
    kind: str = "pass"  #: pass, reset, stall, slow, truncate
    after: int = 0
    fraction: float = 1.0
    direction: str = "both"
    rate: int = 0
    until: float = 0.0  #: loop time a stall ends
    new_connections: bool = True  #: False: only the connections live when the mode was set are hit
    generation: int = 0


@dataclass(eq=False)  # identity: links live in a set
class _Link:
    """One proxied connection: the client's and the server's streams and what went through."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    up: int = 0  #: bytes client → server
    down: int = 0  #: bytes server → client
    generation: int = -1  #: the mode this link last drew its fate for
    victim: bool = False
    budget_from: tuple[int, int] = (0, 0)  #: (up, down) when the current mode began for this link
    tasks: list[asyncio.Task] = field(default_factory=list)
    closed: bool = False


class FaultProxy:
    """``127.0.0.1:<port>`` → ``target_host:target_port`` with faults switched at run time."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, seed: int = 0, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.seed = seed
        self.port = port
        self._random = random.Random(seed)
        self._mode = Mode()
        self._links: set[_Link] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._counter_lock = threading.Lock()
        #: Connections accepted, and faults injected (connections reset or truncated, stalls, refusals).
        self.connections = 0
        self.faults_injected = 0
        #: Bytes forwarded client → server and server → client, over every connection.
        self.bytes_up = 0
        self.bytes_down = 0

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"fault-proxy-{self.target[1]}",
                                        daemon=True)
        self._thread.start()
        self._run(self._listen())
        return self

    def close(self) -> None:
        if self._loop is None:
            return
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(self, *, bytes_up: int = 0, timeout: float = 120.0) -> bool:
        """Wait (in the caller's thread) until at least ``bytes_up`` bytes went to the server."""
        deadline = time.monotonic() + timeout
        while self.bytes_up < bytes_up:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- modes (thread-safe) ----------------------------------------------------------------------
    def pass_through(self) -> None:
        self._set(Mode())

    def reset(self, *, after: int = 0, fraction: float = 1.0, direction: str = "both",
              new_connections: bool = True) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction {direction!r}: up, down or both")
        self._set(Mode("reset", after=after, fraction=fraction, direction=direction,
                       new_connections=new_connections))

    def stall(self, seconds: float) -> None:
        assert self._loop is not None
        self._count_fault()
        self._set(Mode("stall", until=self._loop.time() + seconds))

    def slow(self, bytes_per_second: int) -> None:
        self._set(Mode("slow", rate=max(1, bytes_per_second)))

    def truncate(self, *, after: int, fraction: float = 1.0, new_connections: bool = True) -> None:
        self._set(Mode("truncate", after=after, fraction=fraction, direction="down",
                       new_connections=new_connections))

    def refuse(self) -> None:
        """Close the listener (new connections are refused) and reset every live connection."""
        self._count_fault()
        self._run(self._refuse())

    def accept(self) -> None:
        """Listen again on the same port."""
        self._run(self._listen())

    def _set(self, mode: Mode) -> None:
        assert self._loop is not None
        self._run(self._apply(mode))

    def _run(self, coroutine) -> object:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def _count_fault(self) -> None:
        with self._counter_lock:
            self.faults_injected += 1

    # -- inside the loop --------------------------------------------------------------------------
    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _refuse(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for link in list(self._links):
            self._abort(link)

    async def _shutdown(self) -> None:
        await self._refuse()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _apply(self, mode: Mode) -> None:
        self._mode = Mode(mode.kind, mode.after, mode.fraction, mode.direction, mode.rate, mode.until,
                          mode.new_connections, self._mode.generation + 1)
        for link in list(self._links):
            self._draw(link, live=True)
            if link.victim and self._mode.kind == "reset" and self._mode.after == 0:
                self._count_fault()
                self._abort(link)

    def _draw(self, link: _Link, *, live: bool = False) -> None:
        """Decide once per mode whether this link is one the fault hits; its byte budget starts now.
        ``live``: the link was open when the mode was set."""
        mode = self._mode
        if link.generation != mode.generation:
            link.generation = mode.generation
            link.victim = (mode.kind in ("reset", "truncate") and (live or mode.new_connections)
                           and self._random.random() < mode.fraction)
            link.budget_from = (link.up, link.down)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._counter_lock:
            self.connections += 1
        link = _Link(writer)
        self._links.add(link)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                self._abort(link)  # the server is down: the client sees its connection reset
                return
            link.server = up_writer
            self._draw(link)
            if link.victim and self._mode.kind == "reset" and self._mode.after == 0:
                self._count_fault()
                self._abort(link)
                return
            link.tasks = [asyncio.ensure_future(self._pump(link, reader, up_writer, "up")),
                          asyncio.ensure_future(self._pump(link, up_reader, writer, "down"))]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            self._close(link)
            self._links.discard(link)

    async def _pump(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not link.closed:
                await self._while_stalled()
                data = await reader.read(self._chunk())
                if not data:
                    break
                await self._while_stalled()
                self._draw(link)
                mode = self._mode
                if link.victim and mode.kind in ("reset", "truncate") and mode.direction in (way, "both"):
                    passed = (link.up - link.budget_from[0]) + (link.down - link.budget_from[1]) \
                        if mode.direction == "both" else \
                        (link.up - link.budget_from[0] if way == "up" else link.down - link.budget_from[1])
                    left = mode.after - passed
                    if left < len(data):
                        if left > 0:
                            writer.write(data[:left])
                            await writer.drain()
                        self._count_fault()
                        if mode.kind == "reset":
                            self._abort(link)
                        else:
                            self._close(link)
                        return
                started = loop.time()
                writer.write(data)
                await writer.drain()
                if way == "up":
                    link.up += len(data)
                    self.bytes_up += len(data)
                else:
                    link.down += len(data)
                    self.bytes_down += len(data)
                if mode.kind == "slow":
                    await asyncio.sleep(max(0.0, len(data) / mode.rate - (loop.time() - started)))
        except (ConnectionError, OSError, asyncio.CancelledError):
            self._abort(link)
            return
        # One side finished: pass the end on (half close), as a real path between them would.
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            self._close(link)

    def _chunk(self) -> int:
        mode = self._mode
        return max(1, min(CHUNK, mode.rate // 10)) if mode.kind == "slow" else CHUNK

    async def _while_stalled(self) -> None:
        loop = asyncio.get_running_loop()
        while self._mode.kind == "stall" and loop.time() < self._mode.until:
            await asyncio.sleep(min(0.05, self._mode.until - loop.time()))

    def _abort(self, link: _Link) -> None:
        """Reset both sides: SO_LINGER 0, then close, so the kernel sends RST instead of FIN."""
        for writer in (link.client, link.server):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            try:
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            writer.transport.abort()
        link.closed = True

    def _close(self, link: _Link) -> None:
        for writer in (link.client, link.server):
            if writer is not None and not writer.is_closing():
                writer.close()
        link.closed = True
