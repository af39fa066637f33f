"""TRANSFERRING's copy loop spread over several processes, so that copies costing interpreter time (small
files over SMB: milliseconds of Python per file) use more than the one core a process's threads share.

The task's process copies too; the others are fresh interpreters (``subprocess``: fork and exec, so none
inherits the parent's threads, sockets or C libraries' state) that open their own locations and sessions
from the execution's launch record. Each pulls batches of entries from the parent over its stdin/stdout
pipes (a pull, so a process held up by big files takes fewer), copies them with today's threaded
:class:`~airflow_datasync.phases.transfer.ShardCopier`, writes its own journal part (a retry skips what
any part holds) and sends back each entry's result, its progress counts and its log lines. A process that
dies leaves its unreported entries FAILED (retryable) in the shard's results. Each dies with the parent
(``PR_SET_PDEATHSIG``, and a watch on its parent's pid elsewhere), so a ``kill -9`` of the task leaves
nothing writing when a retry starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from airflow_datasync.locations.connections import connection_fields, hand_over
from airflow_datasync.manifest import ExecutionDir, Journal
from airflow_datasync.options import TaskOptions
from airflow_datasync.phases.threads import run_pulled
from airflow_datasync.progress import CountingProgress, RateLimiter, ShardProgress

if TYPE_CHECKING:
    from airflow_datasync.locations.base import Location

log = logging.getLogger("airflow_datasync")

#: "auto" splits a shard only with at least this many entries left after its directories: below it, a
#: process's start-up (an interpreter, imports, sessions) costs more than it saves.
SPLIT_MIN_ENTRIES = 1000
#: "auto" starts at most this many processes (the task's own included).
MAX_AUTO_PROCESSES = 4
#: Entries a copy process asks for at once: few enough to balance the end of a shard, many enough that
#: the pipe's messages stay a small part of the work.
BATCH_ENTRIES = 32
#: How often a copy process sends its results and progress counts.
REPORT_SECONDS = 0.5

_CHILD_MAIN = "from airflow_datasync.phases.copy_processes import child_main; child_main()"
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, e.g. a container's cpuset), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def process_count(setting: int | str, entries: int, *locations: Location) -> int:
    """Processes to copy ``entries`` with: ``transfer_processes`` as set, or for "auto" one per usable CPU
    (at most :data:`MAX_AUTO_PROCESSES`) when there are at least :data:`SPLIT_MIN_ENTRIES` and a location's
    copies cost interpreter time (:attr:`Capabilities.interpreter_bound_copies`), else 1: local files and
    object stores wait on the kernel or the server, which threads already overlap."""
    if setting != "auto":
        return max(1, int(setting))
    if entries < SPLIT_MIN_ENTRIES or not any(loc.capabilities.interpreter_bound_copies for loc in locations):
        return 1
    return max(1, min(usable_cpus(), MAX_AUTO_PROCESSES))


class _Dispenser:
    """The entries not yet handed out, taken by the parent's copy threads and by the copy processes."""

    def __init__(self, rows: list[dict[str, Any]], processes: int) -> None:
        self._rows, self._processes = rows, processes
        self._next = 0
        self._lock = threading.Lock()

    def take(self, wanted: int) -> list[dict[str, Any]]:
        # Smaller batches as the end nears, so that no process is left with a long tail alone.
        with self._lock:
            left = len(self._rows) - self._next
            n = min(wanted, max(1, left // (2 * self._processes)))
            batch = self._rows[self._next:self._next + n]
            self._next += len(batch)
        return batch

    def take_one(self) -> dict[str, Any] | None:
        batch = self.take(1)
        return batch[0] if batch else None


def lost_result(row: dict[str, Any], why: str) -> dict[str, Any]:
    """The result of an entry a copy process took and never reported: failed, and a retry copies it."""
    return {"path": row["path"], "type": row["type"], "action": row["action"], "status": "FAILED",
            "bytes_written": 0, "retryable": True, "resumed": False, "error": f"{row['path']}: {why}"}


def _connections(conn_ids: list[str | None]) -> dict[str, dict[str, Any]]:
    """The fields of the connections the copy processes need: a child is no Airflow task process (no
    supervisor to ask), so it is handed them over its pipe."""
    return {conn_id: connection_fields(conn_id, conn_type="any", where="transfer_processes")
            for conn_id in dict.fromkeys(filter(None, conn_ids))}


def _take_connections(connections: dict[str, dict[str, Any]]) -> None:
    """In the child: answer the locations' lookups with the parent's connections; Airflow's own lookups
    (the Amazon provider's hook, for an AWS role or profile) find them in the environment."""
    for conn_id, fields in connections.items():
        hand_over(conn_id, fields)
        airflow_form = {k: v for k, v in fields.items() if k != "extra_dejson"} | {"extra": fields["extra_dejson"]}
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(airflow_form)


class _CopyProcess:
    """One child copy process seen from the parent: its pipes, the entries it holds, its results."""

    def __init__(self, part: int, job: dict[str, Any], dispenser: _Dispenser, progress: ShardProgress) -> None:
        self.part, self.dispenser, self.progress = part, dispenser, progress
        self.held: dict[str, dict[str, Any]] = {}  # path → row: handed over, no result yet
        self.results: list[dict[str, Any]] = []
        # One OpenBLAS thread unless asked otherwise: a copy process does no linear algebra (see cli.main).
        env = {"OPENBLAS_NUM_THREADS": "1", **os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
        # stderr is the parent's: a child's crash before its log relay starts still reaches the task log.
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD_MAIN, str(os.getpid())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        self._send({**job, "part": part})
        self.thread = threading.Thread(target=self._serve, name=f"copy-process-{part}", daemon=True)
        self.thread.start()

    def _send(self, message: Any) -> None:
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:  # the child is gone: its end of the pipe tells the rest when read
            pass

    def _serve(self) -> None:
        try:
            for line in self.proc.stdout:
                self._handle(json.loads(line))
        except Exception:  # a garbled message: the child's further results cannot be trusted
            log.exception("copy process %d: its messages could not be read; it is stopped", self.part)
            self.stop()
        code = self.proc.wait()
        with contextlib.suppress(OSError):  # a pipe the child broke
            self.proc.stdin.close()
        self.proc.stdout.close()
        if self.held:
            log.warning("copy process %d exited with code %s holding %d entries; they fail, a retry copies them",
                        self.part, code, len(self.held))
        self.results.extend(lost_result(row, f"its copy process exited (code {code}) before copying it")
                            for row in self.held.values())

    def _handle(self, msg: dict[str, Any]) -> None:
        for result in msg.get("results", ()):
            self.held.pop(result["path"], None)
            self.results.append(result)
        if "progress" in msg:
            self.progress.merge(msg["progress"])
        for level, text in msg.get("logs", ()):
            log.log(level, "copy process %d: %s", self.part, text)
        if "want" in msg:
            batch = self.dispenser.take(msg["want"])
            self.held.update((row["path"], row) for row in batch)
            self._send(batch)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


def copy_in_processes(run_one: Callable[[dict[str, Any]], dict[str, Any]], rows: list[dict[str, Any]],
                      done: dict[str, Any], *, execution: ExecutionDir, shard: int, tag: str, options: TaskOptions,
                      workers: int, processes: int, progress: ShardProgress, limiter: RateLimiter,
                      ) -> list[dict[str, Any]]:
    """Copy ``rows`` in this process (``run_one``) and ``processes - 1`` child processes; every row's result.

    ``workers`` copy threads are shared out among the processes, and so is the rate limit (each takes its
    share of ``limiter``'s rate: together they stay within it)."""
    per_process = max(1, -(-workers // processes))
    share = max(1, limiter.rate // processes) if limiter.rate > 0 else limiter.rate
    record = execution.read_json(execution.launch) or {}
    conn_ids = [execution.conn_id, *(record.get(side, {}).get("conn_id") for side in ("source", "destination"))]
    dispenser = _Dispenser([{**row, "prior": done.get(row["path"])} for row in rows], processes)
    job = {"execution": execution.uri, "store_conn_id": execution.conn_id, "shard": shard, "tag": tag,
           "options": options.to_dict(), "workers": per_process, "rate": share, "level": log.getEffectiveLevel(),
           "connections": _connections(conn_ids)}
    children: list[_CopyProcess] = []
    for part in range(1, processes):
        try:
            children.append(_CopyProcess(part, job, dispenser, progress))
        except OSError as exc:  # out of processes or memory: the ones started (and this one) copy it all
            log.warning("shard %d: could not start copy process %d (%s); copying with %d", shard, part, exc, part)
            break
    limiter.rate = share  # this process's share, for the rest of the shard (its directories are done)
    try:
        results = run_pulled(lambda row: run_one(row, done), dispenser.take_one, per_process, f"shard{shard}")
    except BaseException:
        for child in children:
            child.stop()
        raise
    finally:
        for child in children:
            child.thread.join()
    for child in children:
        results.extend(child.results)
    return results


# -- the child's side -------------------------------------------------------------------------------------
class _Channel:
    """The child's end of the pipes: one JSON line per message, each way."""

    def __init__(self, incoming: IO[bytes], outgoing: IO[bytes]) -> None:
        self._in, self._out = incoming, outgoing
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._out.write(json.dumps(message).encode() + b"\n")
            self._out.flush()

    def ask(self, message: dict[str, Any]) -> Any:
        """Send ``message`` and read the parent's reply (one asker at a time: the feed holds its lock)."""
        self.send(message)
        line = self._in.readline()
        if not line:
            raise EOFError("the parent process closed the pipe")
        return json.loads(line)


class _Relay(logging.Handler):
    """The child's log records, queued for the parent to log (a child has no task log of its own)."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.pending.append((record.levelno, self.format(record)))
        except Exception:  # a record that does not format: the handler's contract is not to raise
            self.handleError(record)


class _Reports:
    """What the child owes the parent: its results, progress counts and log lines, sent together every
    :data:`REPORT_SECONDS` and with each request for entries."""

    def __init__(self, channel: _Channel, counts: CountingProgress, relay: _Relay) -> None:
        self.channel, self.counts, self.relay = channel, counts, relay
        self.results: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, result: dict[str, Any]) -> None:
        with self._lock:
            self.results.append(result)

    def message(self) -> dict[str, Any]:
        with self._lock:
            results, self.results = self.results, []
            logs, self.relay.pending = self.relay.pending, []
        return {"results": results, "progress": self.counts.take(), "logs": logs}

    def flush(self) -> None:
        self.channel.send(self.message())


class _Feed:
    """The child's copy threads take entries one by one; it asks the parent for a batch when it runs dry."""

    def __init__(self, channel: _Channel, reports: _Reports) -> None:
        self.channel, self.reports = channel, reports
        self._batch: list[dict[str, Any]] = []
        self._ended = False
        self._lock = threading.Lock()

    def take_one(self) -> dict[str, Any] | None:
        with self._lock:
            if not self._batch and not self._ended:
                self._batch = list(reversed(self.channel.ask({**self.reports.message(), "want": BATCH_ENTRIES})))
                self._ended = not self._batch
            return self._batch.pop() if self._batch else None


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the parent dies (Linux); elsewhere the watch in :func:`_report_until`."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the prctl
        os._exit(1)


def _report_until(stop: threading.Event, reports: _Reports, parent: int) -> None:
    while not stop.wait(REPORT_SECONDS):
        if os.getppid() != parent:
            os._exit(1)
        reports.flush()


def child_main() -> None:
    """A copy process: read the job, open the locations, copy what the parent hands out, report."""
    parent = int(sys.argv[1])
    _die_with_parent(parent)
    # The pipe to the parent moves off descriptor 1, which then goes where stderr goes: nothing a library
    # prints (from Python or C) can garble the messages.
    channel = _Channel(sys.stdin.buffer, os.fdopen(os.dup(1), "wb"))
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    job = json.loads(sys.stdin.buffer.readline())
    _take_connections(job["connections"])
    relay = _Relay()
    relay.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(relay)
    log.setLevel(job["level"])
    log.propagate = False
    counts = CountingProgress()
    reports = _Reports(channel, counts, relay)
    stop = threading.Event()
    reporter = threading.Thread(target=_report_until, args=(stop, reports, parent), daemon=True)
    reporter.start()
    try:
        _copy(job, channel, reports, counts)
    except BaseException:
        log.exception("copy process %d failed", job["part"])
        raise
    finally:
        stop.set()
        reporter.join()
        reports.flush()


def _copy(job: dict[str, Any], channel: _Channel, reports: _Reports, counts: CountingProgress) -> None:
    from airflow_datasync.phases.launch import LocationSpec  # the child's imports: transfer imports this module
    from airflow_datasync.phases.leftovers import UploadRecords
    from airflow_datasync.phases.transfer import ShardCopier

    execution = ExecutionDir(job["execution"], job["store_conn_id"])
    shard, part = job["shard"], job["part"]
    options = TaskOptions.from_dict(job["options"])
    record = execution.read_json(execution.launch)
    with LocationSpec(**record["source"]).open() as src, LocationSpec(**record["destination"]).open() as dst:
        dst.prepare_writes(durable=options.sync_writes)
        dst.track_uploads(UploadRecords(execution, shard))
        journal: Journal = execution.journal(shard, part)
        copier = ShardCopier(src, dst, options, job["tag"], journal, RateLimiter(job["rate"]), counts)
        log.info("pid %d, %d copy threads, connections of its own", os.getpid(), job["workers"])

        def run_one(row: dict[str, Any]) -> dict[str, Any]:
            prior = row.pop("prior", None)
            result = copier.run_one(row, {row["path"]: prior} if prior else {})
            reports.add(result)
            return result

        try:
            run_pulled(run_one, _Feed(channel, reports).take_one, job["workers"], f"shard{shard}-p{part}")
        finally:
            journal.close()
