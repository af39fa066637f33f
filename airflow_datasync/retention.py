"""Retention of a manifest store: remove old executions per task name, never a running one
(``airflow-datasync prune``)."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from typing import Any

from airflow_datasync.catalog import (
    Execution,
    StoreRef,
    as_time,
    forget,
    is_running,
    iter_executions,
    launch_time,
    newest_change,
    store_refs,
)
from airflow_datasync.manifest import ExecutionDir


def parse_age(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` → a timedelta (the CLI's ``--older-than``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not match:
        raise ValueError(f"age {text!r}: use a number and a unit s, m, h, d or w, e.g. 30d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return dt.timedelta(**{unit: float(match.group(1))})


def prune(store: StoreRef | str, *, keep_last: int | None = None, older_than: dt.timedelta | str | None = None,
          task_name: str | None = None, dry_run: bool = False, now: dt.datetime | None = None
          ) -> list[dict[str, Any]]:
    """Remove old executions of a store, per task name; return what was (or with ``dry_run`` would be) removed.

    ``keep_last=N`` keeps the newest N executions of each task name; ``older_than=D`` removes those launched
    more than D ago. Given both, an execution goes only when both say so (beyond the newest N *and* older
    than D). A running execution (see :func:`airflow_datasync.catalog.is_running`) is never removed."""
    if keep_last is None and older_than is None:
        raise ValueError("prune needs keep_last and/or older_than")
    if keep_last is not None and keep_last < 0:
        raise ValueError("keep_last must be 0 or more")
    if isinstance(older_than, str):
        older_than = parse_age(older_than)
    store = store_refs(store)[0]
    now = now or dt.datetime.now(dt.UTC)
    by_task: dict[str, list[Execution]] = {}
    for execution in iter_executions(store, task_name=task_name):
        by_task.setdefault(execution.dir.task_name, []).append(execution)
    removed = []
    for task, executions in sorted(by_task.items()):
        for rank, execution in enumerate(executions):  # newest first
            ex = execution.dir
            launched = launch_time(ex.execution_id)
            if launched is None:
                launched = as_time((ex.read_json(ex.launch) or {}).get("launched_at")) or newest_change(ex) or now
            beyond = keep_last is None or rank >= keep_last
            old = older_than is None or now - launched > older_than
            if not (beyond and old) or is_running(ex, now=now):
                continue
            removed.append({"execution_id": ex.execution_id, "task_name": task, "store": store.display,
                            "launched_at": launched.isoformat(timespec="milliseconds"),
                            "path": ex.uri, "dry_run": dry_run})
            if not dry_run:
                _remove(ex)
    return removed


def _remove(ex: ExecutionDir) -> None:
    forget(ex)
    if ex.store.local:
        shutil.rmtree(ex.root)
    else:
        ex.store.fs.delete_dir(ex.root)
