"""Resuming an execution: carry on from its stored plan and shard journals, never listing either side again.

Two ways in, both without a second PREPARING listing:

* an Airflow clear of a finished or failed execution's TRANSFERRING/VERIFYING tasks: the cleared shards
  read their journals and copy only what is left; PREPARING is not cleared, and a PREPARING task that is
  cleared too finds its plan stored (:func:`stored_shards`) and hands it out again instead of re-listing;
* a new run with ``resume_execution`` (an execution id, or ``"latest"``): LAUNCHING checks both locations
  again and hands out the existing execution instead of allocating one (:func:`resumed_execution`).

A plan is never made twice for one execution: its manifest is what the journals index into.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow.compute as pc

from airflow_datasync.locations import LocationError
from airflow_datasync.manifest import ExecutionDir, Store, check_name, utcnow
from airflow_datasync.units import counted
from airflow_datasync.uri import redact_uri

log = logging.getLogger("airflow_datasync")

#: ``resume_execution`` value that picks the newest execution of the task that completed PREPARING.
LATEST = "latest"
#: Resumes of an execution, one line each (who resumed it, when): launch.json is never rewritten.
RESUMES_FILE = "resumes.json"


def wanted(resume: str | None) -> str | None:
    """The execution to resume, None for a new one: a template that renders nothing gives ``""`` or ``"None"``."""
    if resume is None:
        return None
    resume = str(resume).strip()
    return None if resume in ("", "None", "none", "null") else resume


def resumable_execution(store: str, conn_id: str | None, task_name: str, resume: str,
                        source: dict[str, Any], destination: dict[str, Any]) -> ExecutionDir:
    """The execution ``resume`` names (an id, or :data:`LATEST`) under ``store``/``task_name``, checked to
    be one that can go on: planned (PREPARING completed), not a dry run, between the same two locations.
    Reads only (LAUNCHING asks before its destination check may create a missing folder).

    Raises :class:`LocationError` naming what is wrong and what to do instead."""
    check_name("task name", task_name)
    task_dir = f"{store.rstrip('/')}/{task_name}"
    if resume == LATEST:
        execution = _latest_prepared(task_dir, conn_id)
        if execution is None:
            raise LocationError(f"resume_execution={LATEST!r}: no execution of task {task_name!r} under "
                                f"{redact_uri(store)} completed PREPARING; run without resume_execution to start one")
    else:
        check_name("execution id", resume)
        execution = ExecutionDir(f"{task_dir}/{resume}", conn_id)
    record = execution.read_json(execution.launch)
    if record is None:
        raise LocationError(f"resume_execution={resume!r}: no execution {resume!r} of task {task_name!r} under "
                            f"{redact_uri(store)} (see `airflow-datasync list`)")
    prepared = execution.read_json(execution.prepare)
    if prepared is None:
        raise LocationError(f"resume_execution={resume!r}: execution {execution.execution_id} never completed "
                            "PREPARING, so there is no plan to resume; run without resume_execution")
    if (record.get("options_dict") or {}).get("dry_run"):
        raise LocationError(f"resume_execution={resume!r}: execution {execution.execution_id} is a dry run, "
                            "which plans nothing to transfer; run without resume_execution")
    for side, given in (("source", source), ("destination", destination)):
        if (record.get(side) or {}).get("uri") != given.get("uri"):
            raise LocationError(
                f"resume_execution={resume!r}: execution {execution.execution_id} copies "
                f"{redact_uri(record[side]['uri'])} as its {side}, not {redact_uri(given.get('uri') or '')}; "
                "a resumed execution keeps its two locations (and its options): give the same ones")
    return execution


def record_resume(execution: ExecutionDir, airflow: dict[str, Any] | None) -> ExecutionDir:
    """Note in ``resumes.json`` who resumed ``execution`` and when (launch.json stays as LAUNCHING wrote it)."""
    path = execution.file(RESUMES_FILE)
    resumes = (execution.read_json(path) or {}).get("resumes", [])
    execution.write_json(path, {"resumes": [*resumes, {"resumed_at": utcnow(), "airflow": airflow}]})
    prepared = execution.read_json(execution.prepare) or {}
    log.info("LAUNCHING: resuming execution %s (planned %s, %s): no listing; finished entries are skipped",
             execution.execution_id, prepared.get("ended_at"), counted(prepared.get("shard_count", 0), "shard"))
    return execution


def _latest_prepared(task_dir: str, conn_id: str | None) -> ExecutionDir | None:
    """The newest execution under ``task_dir`` that completed PREPARING, dry runs aside (ids sort by creation
    time)."""
    store = Store.for_uri(task_dir, conn_id)
    if not store.exists(Store.path_of(task_dir)):
        return None
    for name in sorted(store.listdir(Store.path_of(task_dir)), reverse=True):
        candidate = ExecutionDir(f"{task_dir}/{name}", conn_id)
        dry_run = ((candidate.read_json(candidate.launch) or {}).get("options_dict") or {}).get("dry_run")
        if not dry_run and candidate.store.exists(candidate.prepare):
            return candidate
    return None


def stored_shards(execution: ExecutionDir) -> list[dict[str, Any]] | None:
    """The shard descriptors of an execution PREPARING already planned (None if it has not): read from its
    manifest's ``shard``, ``action`` and ``size`` columns a row group at a time, never by listing.

    A dry run's plan hands out no shards, as its PREPARING did."""
    prepared = execution.read_json(execution.prepare)
    if prepared is None:
        return None
    record = execution.read_json(execution.launch) or {}
    if (record.get("options_dict") or {}).get("dry_run"):
        return []
    count = int(prepared.get("shard_count") or 0)
    files = np.zeros(count, dtype=np.int64)
    nbytes = np.zeros(count, dtype=np.int64)
    for batch in execution.iter_batches(execution.manifest, columns=["shard", "action", "size"]):
        shard = pc.fill_null(batch["shard"], -1).to_numpy(zero_copy_only=False)
        work = shard >= 0
        if not work.any():
            continue
        size = pc.if_else(pc.equal(batch["action"], "copy"), pc.fill_null(batch["size"], 0), 0)
        np.add.at(files, shard[work], 1)
        np.add.at(nbytes, shard[work], size.to_numpy(zero_copy_only=False)[work])
    log.info("PREPARING %s: planned already (%s); the stored plan's %s are handed out again, nothing is listed",
             execution.execution_id, prepared.get("ended_at"), counted(count, "shard"))
    return [{**execution.ref(), "shard": int(s), "files": int(files[s]), "bytes": int(nbytes[s])}
            for s in np.flatnonzero(files)]
