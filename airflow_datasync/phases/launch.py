"""LAUNCHING: validate both locations and the options, allocate an execution directory, write its record.

:func:`opened` reads that record back for every later phase, with both locations open until it is done.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airflow_datasync.locations import Location, LocationError, open_location
from airflow_datasync.manifest import ExecutionDir, check_store, create_execution_dir, utcnow
from airflow_datasync.options import TaskOptions
from airflow_datasync.phases import resume as resuming
from airflow_datasync.phases.key_space import partition_key_space, previous_entries
from airflow_datasync.uri import redact_uri

log = logging.getLogger("airflow_datasync")

DEFAULT_STORE = os.environ.get("AIRFLOW_DATASYNC_MANIFEST_STORE") or os.path.join(
    os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "datasync", "executions"
)


@dataclass(frozen=True)
class LocationSpec:
    """A URI plus an optional Airflow connection id (credentials never live in the URI)."""

    uri: str
    conn_id: str | None = None

    def __post_init__(self) -> None:
        if redact_uri(self.uri) != self.uri and ":" in self.uri.split("://", 1)[1].split("@", 1)[0]:
            raise LocationError(f"{redact_uri(self.uri)}: put credentials in an Airflow connection (conn_id), "
                                "not in the URI; a password in a URI would end up in logs and records.")

    def open(self) -> Location:
        return open_location(self.uri, self.conn_id)

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "conn_id": self.conn_id}  # __post_init__ refused any password in it


@contextlib.contextmanager
def opened(execution: ExecutionDir) -> Iterator[tuple[dict[str, Any], Location, Location, TaskOptions]]:
    """An execution's launch record, its two locations opened, and its options: what every later phase starts
    from. The phase that opens the locations closes them, when its ``with`` block ends."""
    record = execution.read_json(execution.launch)
    if record is None:
        raise FileNotFoundError(f"{execution.uri}: no launch.json; is this an execution directory?")
    options = TaskOptions.from_dict(record["options_dict"])
    with LocationSpec(record["source"]["uri"], record["source"]["conn_id"]).open() as src, \
            LocationSpec(record["destination"]["uri"], record["destination"]["conn_id"]).open() as dst:
        yield record, src, dst, options


def launch(source: LocationSpec, destination: LocationSpec, options: TaskOptions | dict | None = None, *,
           task_name: str = "datasync", store: str | None = None, store_conn_id: str | None = None,
           airflow: dict[str, Any] | None = None, resume: str | None = None,
           max_partitions: int | None = None) -> ExecutionDir:
    """Validate both locations and the options, allocate an execution and write its record.

    ``airflow`` names the task instance that launched it (``dag_id``, ``run_id``, ``task_id``, ``group_id``,
    ``map_index``, ``try_number``): the UI shows an execution only to users who may read that DAG.

    A dry run (``options.dry_run``) checks the destination without writing to it: no missing folder is
    created and no probe written; a missing folder a real run would create counts as an empty one.

    The manifest store is checked as a location is (it exists, lists, takes a probe), after the source
    and before the destination, so that a store that cannot hold the execution's record fails before
    anything is created at the destination.
    The default store is created with its parents; a store given here only under an existing parent.

    Last, the key space is partitioned for PREPARING (``partitions.json``, see phases/key_space.py), in at
    most ``max_partitions`` (Airflow's ``[core] max_map_length``: the PREPARING tasks are mapped).

    ``resume`` (an execution id of ``task_name``, or ``"latest"``): check both locations as for a new
    execution, then hand out that execution instead, to carry on from its plan and journals without
    listing again (phases/resume.py); its own recorded options and partitions apply."""
    if not isinstance(options, TaskOptions):
        options = TaskOptions.from_dict(options)
    with source.open() as src, destination.open() as dst:
        src.check(writable=False)
        # Before dst.check(), which may create a missing destination folder (it must never appear inside the source).
        if src.contains(dst) or dst.contains(src):
            raise LocationError(
                f"source {redact_uri(source.uri)} and destination {redact_uri(destination.uri)} overlap "
                "(one lies inside the other); a sync between them would copy into itself or delete its own input."
            )
        # The store after the source (a bad source creates no store directory), before dst.check() (a store
        # that cannot take the record creates no destination folder either).
        check_store(store or DEFAULT_STORE, store_conn_id, create_parents=store is None)
        resumed = None if resuming.wanted(resume) is None else resuming.resumable_execution(
            store or DEFAULT_STORE, store_conn_id, task_name, resuming.wanted(resume), source.to_dict(),
            destination.to_dict())
        destination_exists = dst.check(writable=True, dry_run=options.dry_run)
        if resumed is not None:
            return resuming.record_resume(resumed, airflow)
        execution = create_execution_dir(store or DEFAULT_STORE, task_name, store_conn_id)
        record = {
            "execution_id": execution.execution_id, "task_name": task_name, "status": "LAUNCHING",
            "launched_at": utcnow(),
            "source": source.to_dict(), "destination": destination.to_dict(), "options_dict": _options_for_record(options),
            # False only for a dry run towards a missing folder that a real run would create.
            "airflow": airflow, "destination_exists": destination_exists is not False,
        }
        execution.write_json(execution.launch, record)
        # After launch.json: the partitions of "auto" follow the last execution with the same record.
        previous = previous_entries(execution, record) if options.prepare_partitions == "auto" else None
        partition_key_space(execution, src, dst, options, record["destination_exists"], previous, max_partitions)
        log.info("LAUNCHING %s: %s → %s%s", execution.execution_id, redact_uri(source.uri), redact_uri(destination.uri),
                 " (dry run: nothing is written at the destination)" if options.dry_run else "")
        return execution


def _options_for_record(options: TaskOptions) -> dict[str, Any]:
    data = options.to_dict()
    data["TaskReportConfig"] = dict(data["TaskReportConfig"])
    return data
