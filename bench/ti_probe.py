"""`airflow dags test` in this process, with what each task instance costs: bench only.

    python -m bench.ti_probe --out ti.jsonl -- dags test bench_datasync_e2e --conf '{...}'

`dags test` runs every task instance in its one process, one after the other, so the process's rusage (all
threads) read around each task instance and around its ``execute()`` splits the CPU between Airflow's part
of a task and the operator's. Three more lines: the CLI's start (imports, DAG parse, DB) before the first
task instance, the process when ``dags test`` returns (with the CPU of each thread still alive: the
in-process execution API's event loop is Airflow's server side, the Cadwyn warm-up included), and the
remainder, interpreter shutdown, is what GNU time reports beyond that. One JSON object a line to ``--out``.

It wraps ``airflow.sdk.definitions.dag._run_task`` and ``airflow.sdk.execution_time.task_runner._execute_task``,
Airflow 3.3's private helpers: a probe for measuring, never imported by the package.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread, by name (from /proc: rusage has no per-thread split)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[thread.name] = round((int(fields[11]) + int(fields[12])) / tick, 3)
    return out


class Probe:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.start = (_cpu(), time.monotonic())
        self.first_ti_seen = False

    def record(self, what: str, cpu: float, wall: float, **extra: Any) -> None:
        with self.out.open("a") as f:
            f.write(json.dumps({"what": what, "cpu": round(cpu, 3), "wall": round(wall, 3), **extra}) + "\n")

    def since_start(self, what: str, **extra: Any) -> None:
        self.record(what, _cpu() - self.start[0], time.monotonic() - self.start[1], **extra)

    def install(self) -> None:
        import airflow.sdk.definitions.dag as dag_module
        import airflow.sdk.execution_time.task_runner as task_runner

        run_task, execute_task = dag_module._run_task, task_runner._execute_task

        def probed_run_task(*, ti, task, run_triggerer=False):
            if not self.first_ti_seen:
                self.first_ti_seen = True
                self.since_start("before the first task instance")
            cpu, wall = _cpu(), time.monotonic()
            try:
                return run_task(ti=ti, task=task, run_triggerer=run_triggerer)
            finally:
                self.record("task instance", _cpu() - cpu, time.monotonic() - wall, task=ti.task_id,
                            map_index=ti.map_index)

        def probed_execute_task(context, ti, log):
            cpu, wall = _cpu(), time.monotonic()
            try:
                return execute_task(context, ti, log)
            finally:
                self.record("execute", _cpu() - cpu, time.monotonic() - wall, task=ti.task_id)

        dag_module._run_task = probed_run_task
        task_runner._execute_task = probed_execute_task


def summary(lines: list[dict[str, Any]]) -> str:
    """The probe's lines as a table: each task instance's CPU and wall, and its execute()'s."""
    executes: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line["what"] == "execute":
            executes.setdefault(line["task"], []).append(line)
    rows = ["| part | CPU s | wall s | its execute() CPU s |", "|---|---|---|---|"]
    for line in lines:
        if line["what"] == "execute":
            continue
        name = line["what"]
        execute = ""
        if name == "task instance":
            name = line["task"] + (f" [{line['map_index']}]" if line.get("map_index", -1) >= 0 else "")
            done = executes.get(line["task"]) or []
            execute = f"{done.pop(0)['cpu']:.2f}" if done else "–"
        elif line.get("threads"):
            execute = "threads: " + ", ".join(f"{k} {v:.2f}" for k, v in line["threads"].items() if v >= 0.01)
        rows.append(f"| {name} | {line['cpu']:.2f} | {line['wall']:.2f} | {execute} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    parser.add_argument("airflow_args", nargs=argparse.REMAINDER, help="-- then the airflow CLI's arguments")
    args = parser.parse_args()
    airflow_args = args.airflow_args[1:] if args.airflow_args[:1] == ["--"] else args.airflow_args
    probe = Probe(args.out)
    probe.install()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *airflow_args]
    try:
        airflow_main()
    finally:
        probe.since_start("when dags test returned", threads=_thread_cpu())


if __name__ == "__main__":
    main()
