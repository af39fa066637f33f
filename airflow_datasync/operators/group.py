"""``sync_task_group``: one line wires a whole execution as a TaskGroup.

    launch → partitions → prepare_partition (mapped, one instance per partition of the key space)
           → prepare → transfer (mapped, one instance per shard) → finalize → verify → report

An execution in one partition maps ``prepare_partition`` over nothing (skipped) and ``prepare`` lists both
trees; one with nothing to copy maps ``transfer`` over nothing, and the phases after it still run.

finalize, verify and report run whatever the shards did (``all_done``): one file that cannot be copied
fails its shard, but what did transfer is still verified, and the report says why deletions were skipped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule, TaskGroup

from airflow_datasync.assets import default_alias_name, report_outlets
from airflow_datasync.operators.phases import (
    SyncFinalizeOperator,
    SyncLaunchOperator,
    SyncPartitionsOperator,
    SyncPrepareOperator,
    SyncPreparePartitionOperator,
    SyncReportOperator,
    SyncTransferOperator,
    SyncVerifyOperator,
)

#: A shard whose failures a retry cannot fix fails at once; so does a permission error outside any one
#: file (credentials rotated since LAUNCHING, at a location or the manifest store). Other failures (a file
#: that changed during the copy, a network error, an I/O error on a mount) use the task's retries, each of
#: which resumes from the shard's journal.
TRANSFER_RETRY_POLICY = ExceptionRetryPolicy(rules=[
    RetryRule(exception="airflow_datasync.errors.PermanentShardError", action=RetryAction.FAIL,
              reason="permission denied, a directory in the way or a file gone: retrying cannot help"),
    RetryRule(exception="airflow_datasync.errors.PermissionDeniedError", action=RetryAction.FAIL,
              reason="the credentials were refused (wrong or rotated secret, no permission): retrying cannot help"),
])


#: Rendered by Airflow before execute() from the expanded shard (so a running shard shows it) and again after.
TRANSFER_LABEL = "{{ task.shard_label }}"
PARTITION_LABEL = "{{ task.partition_label }}"


def sync_task_group(
    group_id: str,
    *,
    source: str | None = None,
    destination: str | None = None,
    options: dict | str | None = None,
    options_from_params: bool = False,
    dry_run: bool = False,
    resume_execution: str | None = None,
    source_conn_id: str | None = None,
    destination_conn_id: str | None = None,
    sync_task_name: str | None = None,
    manifest_store: str | None = None,
    manifest_store_conn_id: str | None = None,
    parallel_shards: int = 4,
    transfer_retries: int = 2,
    transfer_retry_delay: timedelta = timedelta(seconds=30),
    transfer_retry_exponential_backoff: float = 0,
    fail_on_error: bool = True,
    emit_asset_on: str | None = "SUCCESS",
    asset_alias: str | None = None,
    **group_kwargs: Any,
) -> TaskGroup:
    """Build the tasks of one sync execution inside a TaskGroup and return it.

    ``parallel_shards`` caps how many shards of this execution copy at once (``max_active_tis_per_dagrun``)
    and splits BytesPerSecond between them. ``transfer_retries`` retries a failed shard after
    ``transfer_retry_delay`` (multiplied by ``transfer_retry_exponential_backoff`` to the power of the try
    number, as Airflow's ``retry_exponential_backoff``, when it is above 1: a network outage is met with
    growing waits); a retry resumes from the shard's journal. Permanent failures and permission errors
    do not retry (``TRANSFER_RETRY_POLICY``).
    The group's report task is ``group.report`` (its XCom holds the DataSync-style summary).

    The report task emits an asset event for the destination when the execution ends in SUCCESS
    (``emit_asset_on="ANY"``: any final status; ``None``: no asset; never for a dry run). A destination
    known at parse time is declared as ``destination_asset(destination)``; a templated one (or one from
    the params) through the ``AssetAlias`` ``asset_alias`` (default ``datasync:<dag_id>.<group_id>``).
    See docs/sensors.md#asset-events.

    ``options_from_params=True`` takes the options from the run's params (the trigger form of
    :func:`airflow_datasync.params.datasync_params`) over ``options``, and source, destination and their
    connection ids from there too unless given here. ``dry_run=True`` makes every run a dry run: LAUNCHING
    and PREPARING only, the transfer tasks skipped, a report of what a run would do, nothing written at
    the destination (``dry_run`` in the options or params does the same per run).

    ``resume_execution`` (templated: an execution id of this group, or ``"latest"``) makes a run carry on
    that execution from its stored plan and shard journals instead of starting one: nothing is listed
    again and finished entries are skipped (docs/reliability.md#resuming-an-execution). With
    ``options_from_params=True`` the run's ``resume_execution`` param does the same.
    """
    with TaskGroup(group_id, **group_kwargs) as group:
        launch = SyncLaunchOperator(
            task_id="launch", source=source, destination=destination, options=options,
            source_conn_id=source_conn_id, destination_conn_id=destination_conn_id,
            sync_task_name=sync_task_name, manifest_store=manifest_store, manifest_store_conn_id=manifest_store_conn_id,
            options_from_params=options_from_params, dry_run=dry_run, resume_execution=resume_execution,
        )
        # One PREPARING task per partition LAUNCHING made (none for one partition: prepare lists it); the
        # DAG's shape stays static.
        partitions = SyncPartitionsOperator(task_id="partitions", execution=launch.output)
        prepare_partitions = SyncPreparePartitionOperator.partial(
            task_id="prepare_partition", map_index_template=PARTITION_LABEL,
        ).expand(partition=partitions.output)
        prepare = SyncPrepareOperator(task_id="prepare", execution=launch.output)
        transfer = SyncTransferOperator.partial(
            task_id="transfer", parallel_shards=parallel_shards, max_active_tis_per_dagrun=parallel_shards,
            retries=transfer_retries, retry_delay=transfer_retry_delay,
            retry_exponential_backoff=transfer_retry_exponential_backoff, retry_policy=TRANSFER_RETRY_POLICY,
            map_index_template=TRANSFER_LABEL,
        ).expand(shard=prepare.output)
        # Whatever the shards did (all_done): a failed copy skips the deletions, never the metadata or VERIFYING.
        finalize = SyncFinalizeOperator(task_id="finalize", execution=launch.output)
        verify = SyncVerifyOperator(task_id="verify", execution=launch.output)
        outlets = report_outlets(
            destination, emit_on=emit_asset_on, alias_name=asset_alias or default_alias_name(group.dag.dag_id if group.dag else "dag", group.group_id),
        )
        report = SyncReportOperator(task_id="report", execution=launch.output, fail_on_error=fail_on_error,
                                    emit_asset_on=emit_asset_on or "SUCCESS", outlets=outlets)
        launch >> partitions >> prepare_partitions >> prepare >> transfer >> finalize >> verify >> report
    group.report = report  # type: ignore[attr-defined]
    return group
