"""The phases of one task execution, free of Airflow: LAUNCHING → PREPARING → TRANSFERRING → VERIFYING → report.

Each phase reads what the previous ones wrote in the execution directory and writes its own files, so
the phases can run in different processes (Airflow tasks on different workers) or in one Python call
(:func:`run_execution`, used by the CLI and by tests).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_datasync.options import OptionsError, TaskOptions
from airflow_datasync.phases.finalize import finalize
from airflow_datasync.phases.launch import DEFAULT_STORE, LocationSpec, launch
from airflow_datasync.phases.prepare import prepare, prepare_partition
from airflow_datasync.phases.report import report
from airflow_datasync.phases.transfer import transfer
from airflow_datasync.phases.verify import verify

log = logging.getLogger("airflow_datasync")


def run_execution(source: LocationSpec | str, destination: LocationSpec | str, options: TaskOptions | dict | None = None,
                  *, task_name: str = "datasync", store: str | None = None, store_conn_id: str | None = None,
                  resume: str | None = None) -> dict[str, Any]:
    """Run a whole execution in this process, shard after shard; return the report summary.

    A shard with failed entries does not stop the execution: FINALIZE and VERIFYING run once PREPARING
    succeeded (see docs/reliability.md#when-some-files-fail), and the report's status is then ERROR.

    With ``dry_run`` in the options: LAUNCHING and PREPARING only, then the report of what a run would do.
    ``resume`` (an execution id of ``task_name``, or ``"latest"``): carry that execution on instead, from its
    stored plan and journals (phases/resume.py)."""
    source = source if isinstance(source, LocationSpec) else LocationSpec(source)
    destination = destination if isinstance(destination, LocationSpec) else LocationSpec(destination)
    execution = launch(source, destination, options, task_name=task_name, store=store, store_conn_id=store_conn_id,
                       resume=resume)
    try:
        shards = prepare(execution)  # lists every partition in turn, here in this process
        for shard in shards:
            try:
                transfer(execution, shard["shard"])
            except Exception as exc:  # per-file failures are in the shard's results; the other shards go on
                log.error("%s", exc)
        # Whatever the shards did: FINALIZE skips the deletions if any copy failed (and says why) but still
        # applies directory metadata, and VERIFYING checks everything that did transfer.
        try:
            finalize(execution)
        finally:
            verify(execution)
    finally:
        summary = report(execution)
    return summary


__all__ = ["DEFAULT_STORE", "LocationSpec", "OptionsError", "launch", "prepare_partition", "prepare", "transfer", "finalize", "verify", "report", "run_execution"]
