"""Issue 16's rows on a mounted file system: local → mount and mount → local, ours against rclone and cp.

There is no kernel NFS or CIFS client here, so the mount is :mod:`bench.delayed_fs`, a FUSE passthrough
that adds a fixed delay (``DELAY_MS``) before every operation, as a network file system's round trip
would; operations from concurrent callers overlap, so a tool that keeps several files in flight gains what
it would on NFS. Besides wall and CPU of the tool, every run records the mount's operations (counted by the
file system) and the CPU its server used, both independent of the machine's load.

The FUSE server needs libfuse 3 (Debian ``fuse3``) and ``mfusepy`` (PyPI) in a venv of its own
(``bench/work/fuse-venv``); ``make bench`` installs both. Without them the rows are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import datasets as ds
from bench.measure import measure

SCENARIOS = ("local-mount", "mount-local")
TOOLS = ("ours", "ours-nosync", "rclone", "rclone-tuned", "cp")
#: The added round trip per operation: a LAN NFS server's order of magnitude.
DELAY_MS = 1.0
REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "bench" / "delayed_fs.py"


def fuse_python(work: Path) -> str | None:
    """The interpreter that runs the FUSE server, or None when the mount cannot be made here."""
    python = work / "fuse-venv" / "bin" / "python"
    if not (python.exists() and shutil.which("fusermount3") and os.path.exists("/dev/fuse")):
        return None
    return str(python)


class DelayedMount:
    """The FUSE server over ``backing``, mounted at ``mountpoint`` while the context is open."""

    def __init__(self, python: str, backing: Path, mountpoint: Path, delay_ms: float, log: Path) -> None:
        self.python, self.backing, self.mountpoint, self.delay_ms, self.log = python, backing, mountpoint, delay_ms, log
        self.counts_file = log.with_suffix(".counts.json")
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> DelayedMount:
        for d in (self.backing, self.mountpoint):
            d.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(
                [self.python, str(SERVER), str(self.backing), str(self.mountpoint), "--delay-ms", str(self.delay_ms),
                 "--counts", str(self.counts_file)], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"the FUSE mount did not come up: see {self.log}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["fusermount3", "-u", str(self.mountpoint)], capture_output=True, check=False)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True, check=False)

    def snapshot(self) -> tuple[dict[str, int], float]:
        """(operation counts so far, CPU seconds of the server so far); waits for the counts to settle."""
        time.sleep(0.6)  # the server rewrites its counts file every quarter second
        try:
            counts = json.loads(self.counts_file.read_text())
        except (OSError, ValueError):
            counts = {}
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return counts, (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def mount_scenarios(h, dataset: ds.Dataset, scenarios: list[str], tools: list[str], runs: int,
                    delay_ms: float = DELAY_MS) -> None:
    """Run the ``scenarios`` of :data:`SCENARIOS` on ``dataset`` with ``tools`` (those of :data:`TOOLS`)."""
    from bench.run import Loc, Row, redact_cmd, variant_of

    python = fuse_python(h.work)
    if python is None:
        h.skipped["mount"] = ("no FUSE mount here: needs /dev/fuse, fusermount3 (Debian fuse3) and mfusepy in "
                              "bench/work/fuse-venv (make bench installs them)")
        print(f"mount scenarios skipped: {h.skipped['mount']}", flush=True)
        return
    tools = [t for t in tools if t in TOOLS]
    backing, mountpoint = h.work / "mount-backing", h.work / "mnt"
    shutil.rmtree(backing, ignore_errors=True)
    with DelayedMount(python, backing, mountpoint, delay_ms, h.logs / "delayed-fs.log") as mount:
        staged = backing / f"src-{dataset.name}"
        if "mount-local" in scenarios:
            shutil.copytree(dataset.path, staged, symlinks=True)  # untimed, straight onto the backing disk
        for scenario in scenarios:
            src = (Loc("local", mountpoint / staged.name) if scenario == "mount-local" else h.source("local", dataset))
            rows = {}
            for t in tools:
                probe = h.command(t, src, Loc("local", path=Path("/x")))
                if probe is not None:
                    rows[t] = Row(scenario, dataset.name, t, variant_of(t), dataset.files, dataset.bytes,
                                  command=redact_cmd(probe[0], h.work))
                    rows[t].notes.append(f"mount: FUSE passthrough, {delay_ms:g} ms added per operation")
            print(f"  {scenario} · {dataset.name} · {runs} run(s) · {', '.join(rows)} · {delay_ms:g} ms/op", flush=True)
            names = list(rows)
            for i in range(runs):
                for t in names[i % len(names):] + names[:i % len(names)]:
                    h._counter += 1
                    name = f"dst-{h._counter:04d}-{scenario}-{t}"
                    on_disk = (backing if scenario == "local-mount" else h.scratch) / name
                    dst = Loc("local", (mountpoint if scenario == "local-mount" else h.scratch) / name)
                    cmd, env = h.command(t, src, dst)
                    ops_before, cpu_before = mount.snapshot()
                    m = measure(cmd, env, h._log(scenario, dataset.name, t, str(i)), timeout=h.args.timeout)
                    ops_after, cpu_after = mount.snapshot()
                    ops = {k: v - ops_before.get(k, 0) for k, v in ops_after.items() if v - ops_before.get(k, 0)}
                    extra = {"mount_ops": sum(ops.values()), "mount_ops_by_kind": ops,
                             "mount_server_cpu": round(cpu_after - cpu_before, 3)}
                    if t.startswith("ours") and m.ok and (status := h._ours_check(m)) != "SUCCESS":
                        rows[t].notes.append(f"run {i}: report status {status}")
                        m.returncode = 1
                    if i == 0:
                        files, size = h.count(Loc("local", on_disk))
                        extra.update(dest_files=files, dest_bytes=size)
                        if (files, size) != (dataset.files, dataset.bytes):
                            rows[t].notes.append(f"destination holds {files} files / {size} bytes, "
                                                 f"source {dataset.files} / {dataset.bytes}")
                    h._record(rows[t], m, extra)
                    print(f"      mount: {extra['mount_ops']} operations "
                          f"({extra['mount_ops'] / max(dataset.files, 1):.1f}/file), "
                          f"server CPU {extra['mount_server_cpu']:.2f} s", flush=True)
                    shutil.rmtree(on_disk, ignore_errors=True)  # on the backing disk: no delay, untimed
            h.rows.extend(rows.values())
    shutil.rmtree(backing, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover - `python -m bench.mounts` is `bench.run` with these rows only
    from bench.run import main

    sys.exit(main(["--scenarios", ",".join(SCENARIOS), *sys.argv[1:]]))
