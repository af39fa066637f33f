"""Run one command as a child process and measure it the same way for every tool.

Wall time is ``time.perf_counter`` around fork → reap. CPU (user + sys) and peak RSS come from the
``rusage`` of the child, which includes every descendant the child itself waited for (``airflow dags
test`` task processes, ``sh -c "a && b"``). Peak RSS is the largest single process of that tree (Linux
``ru_maxrss``), not a sum.

Linux keeps a process's RSS high-water mark across ``exec``: a child forked from this (large) Python
process would report at least the harness's own RSS (~90 MiB) even for ``cp``. So the command runs under
GNU ``/usr/bin/time`` (a 30 KB program) and the rusage is the one *it* reads for its child, which was
forked from a small process. Without GNU time, ``os.wait4`` of the direct child is used and RSS figures
carry that floor (``rss_method`` says which).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measurement:
    wall: float
    cpu: float  # user + sys, seconds
    user: float
    sys: float
    max_rss: int  # bytes
    returncode: int
    log: str
    load1: float = 0.0  # 1-minute load average when the run started (other work on the machine)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else shutil.which("gtime")
RSS_METHOD = "GNU time (rusage of a child forked from a small process)" if GNU_TIME else "os.wait4 (includes harness RSS floor)"
_MARK = "BENCH-RUSAGE"


def measure(cmd: list[str], env: dict[str, str], log: Path, timeout: float = 1800.0, cwd: str | None = None) -> Measurement:
    """Run ``cmd`` (stdout+stderr to ``log``), kill its process group after ``timeout`` seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    usage_file = log.with_suffix(".rusage")
    usage_file.unlink(missing_ok=True)
    run_cmd = [GNU_TIME, "-q", "-f", f"{_MARK} %U %S %M", "-o", str(usage_file), "--", *cmd] if GNU_TIME else cmd
    load1 = os.getloadavg()[0]
    with open(log, "wb") as fh:
        fh.write(("$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(run_cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _pid, status, ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: keep Popen from waiting again
    rc = proc.returncode if not timed_out.is_set() else -9
    if timed_out.is_set():
        with open(log, "a") as fh:
            fh.write(f"\n[bench] killed after {timeout:.0f} s timeout\n")
    user, system, max_rss = ru.ru_utime, ru.ru_stime, ru.ru_maxrss * 1024
    if GNU_TIME and usage_file.exists():
        for line in usage_file.read_text(errors="replace").splitlines():
            if line.startswith(_MARK):
                _, u, s, m = line.split()
                user, system, max_rss = float(u), float(s), int(m) * 1024
    return Measurement(wall, user + system, user, system, max_rss, rc, str(log), load1)
