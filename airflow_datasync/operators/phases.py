"""One thin operator per phase. Each calls the engine and passes only small dicts through XCom:
``{"execution": <execution dir>, ...}`` from LAUNCHING, shard descriptors from PREPARING, the report
summary at the end. Manifests stay in the manifest store."""

from __future__ import annotations

import ast
import json
import logging
from typing import Any, Sequence

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_datasync import engine
from airflow_datasync.locations import LocationError
from airflow_datasync.manifest import ExecutionDir
from airflow_datasync.operators.links import SyncExecutionLink, SyncShardLink
from airflow_datasync.options import OptionsError, TaskOptions
from airflow_datasync.report import format_summary, render

log = logging.getLogger("airflow_datasync")


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def parse_options(value: Any) -> TaskOptions:
    """Options as a dict, a TaskOptions, or the JSON/Python-literal string a template renders to."""
    if isinstance(value, TaskOptions):
        return value
    if value is None or value == "":
        return TaskOptions()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise OptionsError(f"options must be a dict (or its JSON), got {value!r}") from None
    if not isinstance(value, dict):
        raise OptionsError(f"options must be a dict of DataSync option names, got {type(value).__name__}")
    return TaskOptions.from_dict(value)


def _execution(value: Any) -> ExecutionDir:
    conn_id = None
    if isinstance(value, dict):
        value, conn_id = value.get("execution"), value.get("store_conn_id")
    if not isinstance(value, str) or not value:
        raise AirflowException(f"expected the LAUNCHING task's output (an execution reference), got {value!r}")
    return ExecutionDir(value, conn_id)


class SyncLaunchOperator(BaseOperator):
    """LAUNCHING: validate source, destination and options; create the execution record.

    :param source: URI of the source location (``/abs/path`` or ``file:///abs/path``). Templated.
    :param destination: URI of the destination location. Templated.
    :param options: DataSync ``Options`` (plus Includes, Excludes, TaskReportConfig and engine settings). Templated.
    :param source_conn_id: Airflow connection for the source (remote stores); none for local paths.
    :param destination_conn_id: Airflow connection for the destination.
    :param sync_task_name: names the execution folder in the manifest store (defaults to ``<dag_id>.<task_id>``).
    :param manifest_store: where execution records and manifests live: a local directory (default
        ``$AIRFLOW_DATASYNC_MANIFEST_STORE``) or an ``s3://bucket/prefix`` that every worker can reach.
    :param manifest_store_conn_id: the AWS connection for an S3 manifest store.
    Returns ``{"execution": <dir or s3 URI>, "store_conn_id": ..., "execution_id": ..., "task_name": ...}``.
    """

    template_fields: Sequence[str] = ("source", "destination", "options", "manifest_store", "sync_task_name")
    template_fields_renderers = {"options": "json"}
    ui_color = "#d6eaf8"
    operator_extra_links = (SyncExecutionLink(),)

    def __init__(self, *, source: str, destination: str, options: dict | str | None = None,
                 source_conn_id: str | None = None, destination_conn_id: str | None = None,
                 sync_task_name: str | None = None, manifest_store: str | None = None,
                 manifest_store_conn_id: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source, self.destination, self.options = source, destination, options
        self.source_conn_id, self.destination_conn_id = source_conn_id, destination_conn_id
        self.sync_task_name, self.manifest_store = sync_task_name, manifest_store
        self.manifest_store_conn_id = manifest_store_conn_id
        if not _is_templated(options) and isinstance(options, (dict, TaskOptions, type(None))):
            parse_options(options)  # fail when the DAG is parsed, naming the bad option

    def execute(self, context) -> dict[str, Any]:
        options = parse_options(self.options)
        name = self.sync_task_name or f"{self.dag_id}.{self.task_id.rsplit('.', 1)[0]}".replace("/", "_")
        try:
            execution = engine.launch(
                engine.LocationSpec(self.source, self.source_conn_id),
                engine.LocationSpec(self.destination, self.destination_conn_id),
                options, task_name=name, store=self.manifest_store, store_conn_id=self.manifest_store_conn_id,
                airflow=_launched_by(context, self),
            )
        except (LocationError, OptionsError) as exc:
            raise AirflowFailException(str(exc)) from exc  # bad input: retrying will not help
        return {**execution.ref(), "execution_id": execution.execution_id, "task_name": name}


def _launched_by(context, operator: BaseOperator) -> dict[str, Any]:
    """Which task instance launched an execution, for launch.json (the UI filters executions by DAG)."""
    ti = context["ti"]
    group = operator.task_group
    return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id,
            "group_id": group.group_id if group is not None and not group.is_root else None,
            "map_index": ti.map_index, "try_number": ti.try_number}


class _ExecutionOperator(BaseOperator):
    template_fields: Sequence[str] = ("execution",)
    operator_extra_links = (SyncExecutionLink(),)

    def __init__(self, *, execution: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.execution = execution


class SyncPrepareOperator(_ExecutionOperator):
    """PREPARING: scan both sides, write the Parquet manifest, cut it into shards.

    Returns a list of shard descriptors ``{"execution", "shard", "files", "bytes"}`` to map TRANSFERRING over.
    The number of shards never exceeds Airflow's ``[core] max_map_length``.
    """

    ui_color = "#d1f2eb"

    def execute(self, context) -> list[dict[str, Any]]:
        max_shards = conf.getint("core", "max_map_length", fallback=1024)
        return engine.prepare(_execution(self.execution), max_shards=max_shards)


class SyncTransferOperator(BaseOperator):
    """TRANSFERRING: copy one shard (map it with ``.expand(shard=prepare.output)``).

    Safe to retry and to clear: finished entries are found in the shard's journal and skipped.
    The per-shard BytesPerSecond budget is the task's BytesPerSecond divided by ``parallel_shards``.
    """

    template_fields: Sequence[str] = ("shard",)
    ui_color = "#fcf3cf"
    operator_extra_links = (SyncExecutionLink(), SyncShardLink())

    def __init__(self, *, shard: dict[str, Any], parallel_shards: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.shard = shard
        self.parallel_shards = max(1, int(parallel_shards))

    def execute(self, context) -> dict[str, Any]:
        shard = self.shard
        context["shard_label"] = f"shard {shard['shard']} · {shard.get('files', '?')} entries · {shard.get('bytes', 0):,} B"
        execution = _execution(shard)
        limit = None
        record = execution.read_json(execution.launch) or {}
        bps = (record.get("options_dict") or {}).get("BytesPerSecond", -1)
        if bps and bps > 0:
            limit = max(1, bps // self.parallel_shards)
        return engine.transfer(execution, int(shard["shard"]), bytes_per_second=limit)


class SyncFinalizeOperator(_ExecutionOperator):
    """End of TRANSFERRING: deletions (PreserveDeletedFiles=REMOVE) and directory metadata, after all shards."""

    ui_color = "#fcf3cf"

    def execute(self, context) -> dict[str, Any]:
        return engine.finalize(_execution(self.execution))


class SyncVerifyOperator(_ExecutionOperator):
    """VERIFYING: compare checksum manifests of source and destination as VerifyMode says."""

    ui_color = "#e8daef"

    def execute(self, context) -> dict[str, Any]:
        summary = engine.verify(_execution(self.execution))
        if summary["failed"]:
            log.error("VERIFYING found %d mismatches, e.g. %s", summary["failed"], summary["examples"][:3])
        return summary


class SyncReportOperator(_ExecutionOperator):
    """Write the execution report (JSON summary + per-file Parquet) and push the summary to XCom.

    Runs whatever happened upstream (``trigger_rule="all_done"``) and fails when the status is ERROR, so
    the DAG run's state matches the execution's.
    """

    ui_color = "#fadbd8"

    def __init__(self, *, fail_on_error: bool = True, **kwargs) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.fail_on_error = fail_on_error

    def execute(self, context) -> dict[str, Any]:
        if self.execution is None or self.execution == "None":
            raise AirflowFailException("LAUNCHING failed: no execution was created (see the launch task's log)")
        summary = engine.report(_execution(self.execution))
        log.info("execution report\n%s", render(summary))
        context["ti"].xcom_push(key="summary", value=summary)
        if summary["Status"] != "SUCCESS" and self.fail_on_error:
            raise AirflowFailException(f"execution {summary['TaskExecutionId']} ended in ERROR: {format_summary(summary)}")
        return summary
