"""Harness of the kill -9 cases (tests/faults/test_kill9.py): seeded kill points, a process that forks the
phase under test so that it can be killed for real, and what must hold at each kind of destination.

The phase runs in a child forked from a warm parent (:class:`Zygote`), the way Airflow's task supervisor
forks its task runner: every kill lands in a real process that was doing real work, without paying the
interpreter's and Airflow's start-up (seconds here) for each of dozens of kill points. The child is never
reaped before the test has killed it or seen it end, so its pid cannot be reused under the ``kill``.

Run as ``python -m tests.faults.killing`` it is that parent: one JSON request per line on stdin
(``run`` forks a phase, ``wait`` waits for a child with a timeout), one JSON answer per line on stdout.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".~ds-"  # airflow_datasync.locations.base.TEMP_PREFIX, without importing the engine here
REPO_ROOT = Path(__file__).resolve().parents[2]


# -- kill points -------------------------------------------------------------------------------------------
def kill_delays(rng: random.Random, duration: float, count: int) -> list[float]:
    """``count`` delays drawn uniformly in (0, ``duration``): attempt *i* of a shard is killed ``delays[i]``
    seconds after it started. ``duration`` is the unkilled shard's; a retry resumes the files the killed
    attempt finished but starts its unfinished ones again, so with a few multi-MiB files each attempt lasts
    about as long and the kills fall across all of it (small files, mid-write, commits, the results)."""
    return [rng.uniform(0.0, duration) for _ in range(count)]


# -- the forking parent -----------------------------------------------------------------------------------
def _run_phase(request: dict[str, Any]) -> None:
    """In the forked child: run one phase of an execution, exit 0 when it returned, 1 when it raised."""
    import logging
    import traceback

    from airflow_datasync import engine
    from airflow_datasync.manifest import ExecutionDir

    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    code = 1
    try:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                            format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
        execution = ExecutionDir(request["execution"], request.get("store_conn_id"))
        phase = request["phase"]
        if phase == "transfer":
            print(json.dumps(engine.transfer(execution, request["shard"])), flush=True)
        elif phase == "prepare":
            print(json.dumps(engine.prepare(execution)), flush=True)
        elif phase == "finalize":
            print(json.dumps(engine.finalize(execution)), flush=True)
        else:
            raise ValueError(f"unknown phase {phase!r}")
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The parent's loop (``python -m tests.faults.killing``): what a forked child needs is imported once."""
    import importlib

    # Connections are read through airflow.sdk's BaseHook, as in a task; the backends' modules and the engine.
    for module in ("airflow.sdk", "airflow_datasync.engine", "airflow_datasync.locations.s3.location",
                   "airflow_datasync.locations.smb.location"):
        importlib.import_module(module)

    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "run":
            out.flush()
            pid = os.fork()
            if pid == 0:
                _run_phase(request)
            answer: dict[str, Any] = {"pid": pid}
        elif request["op"] == "wait":
            answer = {"pid": request["pid"], "rc": _wait(request["pid"], request["timeout"])}
        else:
            answer = {"error": f"unknown op {request['op']!r}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


def _wait(pid: int, timeout: float) -> int | None:
    """The child's return code (negative: the signal that ended it) once it ended, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.002)


@dataclass
class Child:
    """One forked phase: its pid and the file that holds its output."""

    pid: int
    log: Path
    started: float

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:] if self.log.exists() else ""


class Zygote:
    """The warm parent the phases are forked from; ``with Zygote(logs) as z: child = z.run(...)``."""

    def __init__(self, logs: Path, env: dict[str, str] | None = None) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if env is None else env)
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._count = 0
        self._live: set[int] = set()  #: children not reaped yet: killed by close() if a case failed midway
        with open(logs / "zygote.log", "wb") as errors:  # the child holds its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.faults.killing"], cwd=REPO_ROOT, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
                                         bufsize=1)
        assert self.proc.stdout is not None
        if not self.proc.stdout.readline():  # ready once everything a child needs is imported
            raise RuntimeError(f"the forking parent did not start: {(logs / 'zygote.log').read_text()[-3000:]}")

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the forking parent died: {(self.logs / 'zygote.log').read_text()[-3000:]}")
        return json.loads(line)

    def run(self, phase: str, execution: Any, shard: int | None = None) -> Child:
        """Fork ``phase`` of ``execution`` (an ExecutionDir) in a child; returns at once."""
        self._count += 1
        log = self.logs / f"{self._count:03d}-{phase}.log"
        answer = self._ask({"op": "run", "phase": phase, "execution": execution.uri,
                            "store_conn_id": execution.conn_id, "shard": shard, "log": str(log)})
        self._live.add(answer["pid"])
        return Child(answer["pid"], log, time.monotonic())

    def wait(self, child: Child, timeout: float) -> int | None:
        """The child's return code, or None if it still runs after ``timeout`` seconds."""
        rc = self._ask({"op": "wait", "pid": child.pid, "timeout": timeout})["rc"]
        if rc is not None:
            self._live.discard(child.pid)
        return rc

    def kill(self, child: Child) -> tuple[int, float]:
        """``kill -9`` the child (not reaped yet, so the pid is still its own); returns, once it is dead, its
        return code (-9, or what it ended with if it ended just before) and when it was killed."""
        os.kill(child.pid, signal.SIGKILL)
        at = time.monotonic()
        rc = self.wait(child, 30)
        assert rc is not None, f"pid {child.pid} outlived kill -9"
        return rc, at

    def run_to_end(self, phase: str, execution: Any, shard: int | None = None, timeout: float = 300) -> float:
        """Run ``phase`` unkilled; returns how long it took; fails with the child's output if it failed."""
        child = self.run(phase, execution, shard)
        rc = self.wait(child, timeout)
        assert rc == 0, f"{phase} ended with {rc}: {child.output()}"
        return time.monotonic() - child.started

    def close(self) -> None:
        for pid in self._live:  # unreaped, so still ours
            os.kill(pid, signal.SIGKILL)
        self._live.clear()
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def copy_processes_of(parent: int) -> list[int]:
    """Live copy processes (``transfer_processes``) started by ``parent``: their command line ends with its pid
    (see airflow_datasync.phases.copy_processes), which stays there once the parent is gone."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if len(args) >= 2 and b"child_main" in b" ".join(args) and args[-2] == str(parent).encode() and state != "Z":
            found.append(int(pid))
    return found


# -- what a destination holds -----------------------------------------------------------------------------
def is_temporary(rel: str) -> bool:
    return any(part.startswith(TEMP_PREFIX) for part in rel.split("/"))


class DestinationView:
    """What one destination holds, read from outside the engine: files at final names, temporaries and
    (S3) unfinished multipart uploads."""

    kind = "?"

    def files(self) -> Iterator[tuple[str, Callable[[], bytes]]]:
        """(relative path, reader of its bytes) of every file at a final name."""
        raise NotImplementedError

    def temporaries(self) -> list[str]:
        raise NotImplementedError

    def unfinished_uploads(self) -> list[str]:
        return []


class DirectoryView(DestinationView):
    """A local destination, or an SMB share's folder read on the disk smbd serves it from (what the server
    holds, seen without a client that hides temporary names)."""

    def __init__(self, root: Path, kind: str = "local") -> None:
        self.root, self.kind = Path(root), kind

    def _walk(self) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in filenames + [d for d in dirnames if d.startswith(TEMP_PREFIX)]:
                yield os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")

    def files(self) -> Iterator[tuple[str, Callable[[], bytes]]]:
        for rel in self._walk():
            if not is_temporary(rel):
                yield rel, (lambda p=self.root / rel: p.read_bytes())

    def temporaries(self) -> list[str]:
        return sorted(rel for rel in self._walk() if is_temporary(rel))


class S3View(DestinationView):
    """An S3 prefix read with its own boto3 client. An object already compared keeps its verdict while its
    ETag and size stay the same (S3 gives a rewritten object a new ETag), so each check after a kill only
    reads the objects that changed since the last one."""

    kind = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.rstrip("/") + "/"
        self._read: dict[str, tuple[str, bytes]] = {}

    def _objects(self) -> Iterator[dict[str, Any]]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            yield from page.get("Contents", [])

    def files(self) -> Iterator[tuple[str, Callable[[], bytes]]]:
        for obj in self._objects():
            rel = obj["Key"][len(self.prefix):]
            if rel and not rel.endswith("/") and not is_temporary(rel):
                yield rel, (lambda o=obj: self._body(o))

    def _body(self, obj: dict[str, Any]) -> bytes:
        seen = (obj["ETag"], obj["Size"])
        hit = self._read.get(obj["Key"])
        if hit is not None and hit[0] == seen:
            return hit[1]
        body = self.client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
        self._read[obj["Key"]] = (seen, body)
        return body

    def temporaries(self) -> list[str]:
        return sorted(o["Key"] for o in self._objects() if is_temporary(o["Key"][len(self.prefix):]))

    def unfinished_uploads(self) -> list[str]:
        found, kwargs = [], {"Bucket": self.bucket, "Prefix": self.prefix}
        while True:
            page = self.client.list_multipart_uploads(**kwargs)
            found += [f"{u['Key']} (upload {u['UploadId']})" for u in page.get("Uploads", [])]
            if not page.get("IsTruncated"):
                return found
            kwargs.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])


@dataclass
class Check:
    """One look at a destination against the source's files."""

    checked: int = 0
    partial: list[str] = field(default_factory=list)  #: at a final name, not the source's bytes (after a kill)
    lost: list[str] = field(default_factory=list)  #: in the source, not at the destination (after the retry)
    corrupt: list[str] = field(default_factory=list)  #: at a final name, not the source's bytes (after the retry)
    leftovers: list[str] = field(default_factory=list)  #: temporaries and unfinished uploads (after the retry)


def check_after_kill(view: DestinationView, source: dict[str, bytes], previous: dict[str, bytes] | None = None) -> Check:
    """Right after a kill: whatever is at a final name is complete and the source's bytes, or (an update over
    an earlier sync) still the ``previous`` bytes whole. Files not there yet are fine; temporaries of the
    killed attempt are expected."""
    check = Check()
    previous = previous or {}
    for rel, read in view.files():
        check.checked += 1
        data = read()
        if data != source.get(rel) and (rel not in previous or data != previous[rel]):
            check.partial.append(rel)
    return check


def check_converged(view: DestinationView, source: dict[str, bytes]) -> Check:
    """After the retry that finished: every source file at its final name with its bytes, nothing else,
    no temporary, no unfinished upload."""
    check = Check()
    present = set()
    for rel, read in view.files():
        present.add(rel)
        check.checked += 1
        if source.get(rel) != read():
            check.corrupt.append(rel)
    check.lost = sorted(set(source) - present)
    check.leftovers = view.temporaries() + view.unfinished_uploads()
    return check


# -- one case ---------------------------------------------------------------------------------------------
@dataclass
class Tally:
    """What a kill case injected and found, for its assertions and its figure."""

    executions: int = 0
    updates: int = 0  #: executions over a destination that held the previous version of every file
    kills: int = 0
    attempts: int = 0
    finished_before_kill: int = 0  #: attempts that ended before their kill point (the retry caught up)
    files_checked: int = 0
    partial: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    most_leftovers_after_a_kill: int = 0
    converge_s: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)

    def add(self, check: Check) -> None:
        self.files_checked += check.checked
        self.partial += check.partial
        self.lost += check.lost
        self.corrupt += check.corrupt
        self.leftovers += check.leftovers

    @property
    def median_converge_s(self) -> float | None:
        return round(statistics.median(self.converge_s), 2) if self.converge_s else None


def finish_execution(execution: Any) -> dict[str, Any]:
    """FINALIZE, VERIFYING and the report, in this process: the phases after the shards."""
    from airflow_datasync import engine

    engine.finalize(execution)
    engine.verify(execution)
    return engine.report(execution)


def kill_shard_then_retry(zygote: Zygote, execution: Any, shard: int, view: DestinationView,
                          source: dict[str, bytes], delays: list[float], tally: Tally,
                          previous: dict[str, bytes] | None = None, *,
                          until_started: Callable[[Any], bool] | None = None,
                          after_kill: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Run ``shard`` and kill it ``delays[i]`` seconds into attempt *i*, retrying the same shard each time;
    after every kill check that nothing partial sits at a final name; then retry it to the end, run
    FINALIZE + VERIFYING + the report and check the destination converged. ``previous``: what the
    destination held before (an update over an earlier sync). ``until_started(child)``: the delay counts
    from when it first holds (polled while the attempt runs); ``after_kill(child)`` runs after each kill.
    Returns the report."""
    last_kill = None
    tally.executions += 1
    for delay in delays:
        child = zygote.run("transfer", execution, shard)
        tally.attempts += 1
        rc = None
        while until_started is not None and rc is None and not until_started(child):
            rc = zygote.wait(child, 0.01)
        if rc is None:
            rc = zygote.wait(child, delay)
        if rc is None:
            rc, killed_at = zygote.kill(child)
        if rc != -signal.SIGKILL:  # this retry finished the shard before its kill point
            assert rc == 0, f"attempt {tally.attempts} failed on its own: {child.output()}"
            tally.finished_before_kill += 1
            break
        last_kill = killed_at
        tally.kills += 1
        if after_kill is not None:
            after_kill(child)
        tally.add(check_after_kill(view, source, previous))
        tally.most_leftovers_after_a_kill = max(tally.most_leftovers_after_a_kill,
                                                len(view.temporaries()) + len(view.unfinished_uploads()))
    else:
        zygote.run_to_end("transfer", execution, shard)
        tally.attempts += 1
    summary = finish_execution(execution)
    tally.statuses.append(summary["Status"])
    tally.add(check_converged(view, source))
    if last_kill is not None:
        tally.converge_s.append(time.monotonic() - last_kill)
    return summary


# -- source trees -----------------------------------------------------------------------------------------
def mixed_tree(root: Path, rng: random.Random, *, small: int = 80, mid_mib: tuple[int, ...] = (2, 6),
               big_mib: int = 12) -> dict[str, bytes]:
    """Write a tree of many small files in a few directories, a few files of several MiB (a kill lands
    mid-write) and a big one (several multipart parts on S3); returns relative path → bytes."""
    files: dict[str, bytes] = {}
    for i in range(small):
        files[f"d{i % 4}/sub{i % 3}/s{i:03d}.txt"] = rng.randbytes(rng.randrange(0, 16 << 10))
    for i, mib in enumerate(mid_mib):
        files[f"mid/m{i}.bin"] = rng.randbytes(mib << 20)
    if big_mib:
        files["big.bin"] = rng.randbytes(big_mib << 20)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def changed_tree(root: Path, files: dict[str, bytes], rng: random.Random) -> dict[str, bytes]:
    """New bytes of the same size in every file of a MiB or more and in half of the small ones, with a later
    mtime (TransferMode CHANGED copies them again over the old ones); returns the tree's new contents."""
    changed = dict(files)
    for rel, data in files.items():
        if len(data) >= 1 << 20 or rng.random() < 0.5:
            path = root / rel
            mtime_ns = path.stat().st_mtime_ns
            changed[rel] = rng.randbytes(len(data))
            path.write_bytes(changed[rel])
            os.utime(path, ns=(mtime_ns + 2_000_000_000, mtime_ns + 2_000_000_000))
    return changed


if __name__ == "__main__":
    serve()
