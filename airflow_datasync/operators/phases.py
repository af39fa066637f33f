"""One thin operator per phase. Each calls the engine and passes only small dicts through XCom:
``{"execution": <execution dir>, ...}`` from LAUNCHING, shard descriptors from PREPARING, the report
summary at the end. Manifests stay in the manifest store."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, BaseOperator, ExceptionRetryPolicy, RetryAction, RetryRule, conf
from airflow.sdk.bases.xcom import BaseXCom
from airflow.sdk.definitions.xcom_arg import PlainXComArg
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from airflow_datasync.assets import EMIT_ON, asset_event_extra, destination_asset, should_emit
from airflow_datasync.errors import LocationError
from airflow_datasync.operators.links import SyncExecutionLink, SyncShardLink
from airflow_datasync.options import OptionsError, TaskOptions
from airflow_datasync.params import options_from_params
from airflow_datasync.rendered import parse_rendered
from airflow_datasync.report_text import format_bytes, format_summary, render
from airflow_datasync.units import counted

# The engine (pyarrow, numpy, the manifest store) is imported by the execute() that runs it, not here:
# every parse of a DAG file that uses these operators (the DAG processor's, each task's) would pay it.
if TYPE_CHECKING:
    from airflow_datasync.manifest import ExecutionDir

log = logging.getLogger("airflow_datasync")
XCOM_RETURN_KEY = BaseXCom.XCOM_RETURN_KEY
#: XCom key under which LAUNCHING leaves the reason it refused an execution (the report task shows it).
LAUNCH_ERROR_KEY = "launch_error"


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def parse_options(value: Any) -> TaskOptions:
    """Options as a dict, a TaskOptions, or the JSON/Python-literal string a template renders to."""
    return TaskOptions.from_dict(options_dict(value))


def options_dict(value: Any) -> dict[str, Any]:
    """:func:`parse_options`' input as a dict of option names, not yet validated."""
    if isinstance(value, TaskOptions):
        return value.to_dict()
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = parse_rendered(value)
        except ValueError:
            raise OptionsError(f"options must be a dict (or its JSON), got {value!r}") from None
    if not isinstance(value, dict):
        raise OptionsError(f"options must be a dict of DataSync option names, got {type(value).__name__}")
    return dict(value)


def _execution(value: Any) -> ExecutionDir:
    conn_id = None
    if isinstance(value, dict):
        value, conn_id = value.get("execution"), value.get("store_conn_id")
    if not isinstance(value, str) or not value:
        raise AirflowException(f"expected the LAUNCHING task's output (an execution reference), got {value!r}")
    from airflow_datasync.manifest import ExecutionDir

    return ExecutionDir(value, conn_id)


#: LAUNCHING fails at once on what a retry cannot fix: a bad option or location (raised as
#: AirflowFailException anyway), and a template that does not render (an undefined variable, bad syntax).
LAUNCH_RETRY_POLICY = ExceptionRetryPolicy(rules=[
    RetryRule(exception=[OptionsError, LocationError], action=RetryAction.FAIL,
              reason="a bad option or location: retrying cannot help"),
    RetryRule(exception=["jinja2.exceptions.UndefinedError", "jinja2.exceptions.TemplateSyntaxError"],
              action=RetryAction.FAIL, reason="a template that does not render: retrying cannot help"),
])


class SyncLaunchOperator(BaseOperator):
    """LAUNCHING: validate source, destination and options; create the execution record.

    A bad option or location fails the task at once, without retries, naming the option and the values
    it accepts (whether it came from the DAG file, a template, the trigger form or a REST API conf).

    :param source: URI of the source location (``/abs/path`` or ``file:///abs/path``). Templated.
        With ``options_from_params`` and no source given, the run's ``source`` param.
    :param destination: URI of the destination location. Templated. As ``source``.
    :param options: DataSync ``Options`` (plus Includes, Excludes, TaskReportConfig and engine settings). Templated.
    :param source_conn_id: Airflow connection for the source (remote stores); none for local paths.
    :param destination_conn_id: Airflow connection for the destination.
    :param sync_task_name: names the execution folder in the manifest store (defaults to ``<dag_id>.<task_id>``).
    :param manifest_store: where execution records and manifests live: a local directory (default
        ``$AIRFLOW_DATASYNC_MANIFEST_STORE``) or an ``s3://bucket/prefix`` that every worker can reach.
    :param manifest_store_conn_id: the AWS connection for an S3 manifest store.
    :param options_from_params: take the options from the run's params (the fields of
        :func:`airflow_datasync.params.datasync_params`), over ``options``; also the locations and their
        connection ids when they are not given here.
    :param dry_run: force a dry run (LAUNCHING and PREPARING only; nothing is written at the destination),
        whatever the options say.
    :param resume_execution: carry on an execution of this task instead of starting one: its id, or
        ``"latest"`` (the newest that completed PREPARING). Both locations are checked again, nothing is
        listed, finished entries are skipped (docs/reliability.md#resuming-an-execution). Templated; with
        ``options_from_params``, the run's ``resume_execution`` param when this is not given.
    Returns ``{"execution": <dir or s3 URI>, "store_conn_id": ..., "execution_id": ..., "task_name": ...}``.
    """

    template_fields: Sequence[str] = ("source", "destination", "options", "manifest_store", "sync_task_name",
                                      "resume_execution")
    template_fields_renderers = {"options": "json"}
    ui_color = "#d6eaf8"
    operator_extra_links = (SyncExecutionLink(),)

    def __init__(self, *, source: str | None = None, destination: str | None = None, options: dict | str | None = None,
                 source_conn_id: str | None = None, destination_conn_id: str | None = None,
                 sync_task_name: str | None = None, manifest_store: str | None = None,
                 manifest_store_conn_id: str | None = None, options_from_params: bool = False,
                 dry_run: bool = False, resume_execution: str | None = None, **kwargs) -> None:
        kwargs.setdefault("retry_policy", LAUNCH_RETRY_POLICY)
        super().__init__(**kwargs)
        self.source, self.destination, self.options = source, destination, options
        self.source_conn_id, self.destination_conn_id = source_conn_id, destination_conn_id
        self.sync_task_name, self.manifest_store = sync_task_name, manifest_store
        self.manifest_store_conn_id = manifest_store_conn_id
        self.options_from_params, self.dry_run = options_from_params, dry_run
        self.resume_execution = resume_execution
        if not options_from_params and (source is None or destination is None):
            raise OptionsError(f"{self.task_id}: give source and destination, or options_from_params=True "
                               "to take them from the run's params")
        if not _is_templated(options) and isinstance(options, (dict, TaskOptions, type(None))):
            parse_options(options)  # fail when the DAG is parsed, naming the bad option

    def execute(self, context) -> dict[str, Any]:
        from airflow_datasync import engine

        name = self.sync_task_name or f"{self.dag_id}.{self.task_id.rsplit('.', 1)[0]}".replace("/", "_")
        try:
            locations = self._locations(context)
            execution = engine.launch(
                engine.LocationSpec(locations["source"], locations["source_conn_id"]),
                engine.LocationSpec(locations["destination"], locations["destination_conn_id"]),
                self._options(context), task_name=name, store=self.manifest_store,
                store_conn_id=self.manifest_store_conn_id, airflow=_launched_by(context, self),
                resume=self._resume(context), max_partitions=conf.getint("core", "max_map_length", fallback=1024),
            )
        except (LocationError, OptionsError) as exc:
            context["ti"].xcom_push(key=LAUNCH_ERROR_KEY, value=str(exc))  # the report task repeats it
            raise AirflowFailException(f"LAUNCHING failed: {exc}") from exc  # bad input: retrying will not help
        return {**execution.ref(), "execution_id": execution.execution_id, "task_name": name}

    def _locations(self, context) -> dict[str, str | None]:
        """Source, destination and their connection ids: the arguments, else (options_from_params) the params."""
        given = {"source": self.source, "destination": self.destination,
                 "source_conn_id": self.source_conn_id, "destination_conn_id": self.destination_conn_id}
        params = (context.get("params") or {}) if self.options_from_params else {}
        found = {name: value if value is not None else params.get(name) for name, value in given.items()}
        for name in ("source", "destination"):
            if not isinstance(found[name], str) or not found[name]:
                raise OptionsError(f"{name} is missing: pass {name}= to the task group or set the {name!r} param "
                                   f"(got {found[name]!r})")
        return {name: value or None for name, value in found.items()}

    def _resume(self, context) -> str | None:
        """The execution to resume: the argument, else (options_from_params) the run's param; None: a new one."""
        if self.resume_execution is not None or not self.options_from_params:
            return self.resume_execution
        return (context.get("params") or {}).get("resume_execution")

    def _options(self, context) -> TaskOptions:
        """The options argument, with the run's params over it (options_from_params), and dry_run forced."""
        options = options_dict(self.options)
        if self.options_from_params:
            from_params = options_from_params(context.get("params") or {})
            overridden = sorted(k for k, v in from_params.items() if k in options and options[k] != v)
            if overridden:
                log.warning("the run's params override options %s given to the task", ", ".join(overridden))
            options.update(from_params)
        if self.dry_run:
            options["dry_run"] = True
        return TaskOptions.from_dict(options)


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


class _AfterShardsOperator(_ExecutionOperator):
    """A phase that runs whatever happened upstream (``trigger_rule="all_done"``), so it reads the launch
    task's output itself: given ``launch.output``, Airflow would resolve it before ``execute`` and fail
    with "XCom not found" when LAUNCHING failed, ahead of the operator's own handling.

    :param execution: the LAUNCHING task's output.
    :param launch_task_id: the LAUNCHING task to pull the execution reference from (instead of ``execution``).
    """

    def __init__(self, *, execution: Any = None, launch_task_id: str | None = None, **kwargs) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        launch_op = None
        if isinstance(execution, PlainXComArg) and execution.key == XCOM_RETURN_KEY and launch_task_id is None:
            launch_task_id, launch_op, execution = execution.operator.task_id, execution.operator, None
        super().__init__(execution=execution, **kwargs)
        if launch_op is not None:
            self.set_upstream(launch_op)  # the edge the XComArg in a template field would have made
        if execution is None and launch_task_id is None:
            raise ValueError(f"{self.task_id}: give execution= (the launch task's output) or launch_task_id=")
        self.launch_task_id = launch_task_id

    def _pull(self, context, key: str) -> Any:
        ti = context["ti"]
        if ti.map_index is not None and ti.map_index >= 0:  # in a mapped group: the launch of the same index
            return ti.xcom_pull(task_ids=self.launch_task_id, key=key, map_indexes=ti.map_index)
        return ti.xcom_pull(task_ids=self.launch_task_id, key=key)  # all map indexes: None, no error, when absent

    def _launched(self, context) -> Any:
        """The execution reference, or None when LAUNCHING created none."""
        execution = self.execution if self.launch_task_id is None else self._pull(context, XCOM_RETURN_KEY)
        return None if execution is None or execution == "None" or execution == [] else execution

    def _prepared(self, context, phase: str) -> ExecutionDir:
        """The execution, once PREPARING completed; else the task is skipped (nothing was planned)."""
        execution = self._launched(context)
        if execution is None:
            raise AirflowSkipException(f"{phase}: LAUNCHING created no execution; the report says why")
        execution = _execution(execution)
        if execution.read_json(execution.prepare) is None:
            raise AirflowSkipException(f"{phase}: PREPARING did not complete, so nothing was planned; the report says why")
        return execution


class SyncPartitionsOperator(_ExecutionOperator):
    """The partitions LAUNCHING made, as the list the PREPARING tasks are mapped over (Airflow maps only
    over a task's return value, and LAUNCHING's is the execution reference): one small descriptor
    ``{"execution", "store_conn_id", "partition", "partitions"}`` per partition, their names staying in
    the store. Reads one small file; touches no location.

    An execution in ONE partition (a small tree, or one that cannot be partitioned) gets an empty list:
    the mapped ``prepare_partition`` task is then skipped, as Airflow skips a mapping over nothing, and
    ``prepare`` lists both trees itself, as the engine does outside Airflow. One listing either way; a
    task process (and its scheduling) fewer on the run's critical path."""

    ui_color = "#d6eaf8"

    def execute(self, context) -> list[dict[str, Any]]:
        from airflow_datasync.phases.key_space import partitions_file

        execution = _execution(self.execution)
        record = execution.read_json(partitions_file(execution)) or {}
        count = record.get("count", 1)
        if not record.get("partitions"):
            log.info("one partition (%s): the prepare task lists both trees; prepare_partition is skipped",
                     record.get("reason") or "a small tree")
            return []
        return [{**execution.ref(), "partition": i, "partitions": count} for i in range(count)]


class SyncPreparePartitionOperator(BaseOperator):
    """PREPARING of one partition (map it with ``.expand(partition=partitions.output)``): list
    the partition's top-level names on both sides and plan them; for an execution in one partition, list
    both whole trees. Safe to retry: it lists its partition again. Returns a small summary.
    """

    template_fields: Sequence[str] = ("partition",)
    ui_color = "#d1f2eb"
    operator_extra_links = (SyncExecutionLink(),)

    def __init__(self, *, partition: dict[str, Any], **kwargs) -> None:
        super().__init__(**kwargs)
        self.partition = partition

    @property
    def partition_label(self) -> str:
        """``partition 2 of 8``: the mapped instance's label (its map_index_template)."""
        part = self.partition if isinstance(self.partition, dict) else {}
        return f"partition {part.get('partition', '?')} of {part.get('partitions', '?')}"

    def execute(self, context) -> dict[str, Any]:
        part = self.partition
        from airflow_datasync import engine

        return engine.prepare_partition(_execution(part), int(part["partition"]))


class SyncPrepareOperator(_ExecutionOperator):
    """PREPARING: plan what the partition tasks listed into the Parquet manifest, cut it into shards.

    Returns a list of shard descriptors ``{"execution", "shard", "files", "bytes"}`` to map TRANSFERRING over.
    The number of shards never exceeds Airflow's ``[core] max_map_length`` (shards of all partitions are
    cut together). A plan the deletion cap refuses fails the task at once, without retries (the report
    names the counts and the option). Lists what no partition task listed (used without them, or after a
    ``prepare_partition`` skipped for an execution in one partition: everything), so it runs when its
    upstream succeeded or was skipped (``trigger_rule="none_failed"``); a failed partition task stops it.
    """

    ui_color = "#d1f2eb"

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)

    def execute(self, context) -> list[dict[str, Any]]:
        from airflow_datasync import engine
        from airflow_datasync.phases.deletion_cap import DeletionCapError

        max_shards = conf.getint("core", "max_map_length", fallback=1024)
        try:
            return engine.prepare(_execution(self.execution), max_shards=max_shards)
        except DeletionCapError as exc:  # the same source gives the same plan: retrying cannot help
            raise AirflowFailException(f"PREPARING refused the execution: {exc}") from exc


@contextmanager
def _host_heap_frozen() -> Iterator[None]:
    """The task process's heap as it was (Airflow, the parsed DAG) left out of garbage collections while a
    shard copies: the copy's small allocations otherwise set off full collections that walk all of it.
    Unfrozen after, so nothing that was garbage before is kept. A heap frozen already (a parent's
    copy-on-write arrangement before a fork) is left as it is: unfreezing it would undo theirs."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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

    @property
    def shard_label(self) -> str:
        """``shard 3 · 1,000 entries · 104.2 MB``: the mapped instance's label. Its map_index_template
        ``{{ task.shard_label }}`` reads it from the expanded shard descriptor, which Airflow has before
        execute(), so the label shows while the shard runs, not only after it ends."""
        shard = self.shard if isinstance(self.shard, dict) else {}
        stripe = shard.get("stripe")
        if isinstance(stripe, dict):  # one range of a striped file (phases/stripes.py)
            return (f"shard {shard.get('shard', '?')} · {stripe.get('path')} @ {format_bytes(stripe.get('offset') or 0)} · "
                    f"{format_bytes(shard.get('bytes') or 0)}")
        files = shard.get("files")
        entries = counted(int(files), "entry", "entries") if isinstance(files, int) else "? entries"
        return f"shard {shard.get('shard', '?')} · {entries} · {format_bytes(shard.get('bytes') or 0)}"

    def execute(self, context) -> dict[str, Any]:
        from airflow_datasync import engine

        shard = self.shard
        context["shard_label"] = self.shard_label  # for templates written as "{{ shard_label }}"
        execution = _execution(shard)
        limit = None
        record = execution.read_json(execution.launch) or {}
        bps = (record.get("options_dict") or {}).get("BytesPerSecond", -1)
        if bps and bps > 0:
            limit = max(1, bps // self.parallel_shards)
        with _host_heap_frozen():
            return engine.transfer(execution, int(shard["shard"]), bytes_per_second=limit,
                                   try_number=context["ti"].try_number)


class SyncFinalizeOperator(_AfterShardsOperator):
    """End of TRANSFERRING: deletions (PreserveDeletedFiles=REMOVE) and directory metadata, after all shards.

    Runs whatever the shards did (``trigger_rule="all_done"``): when any entry failed, it skips every
    deletion (and says why) but still applies directory metadata. Skipped when PREPARING did not complete."""

    ui_color = "#fcf3cf"

    def execute(self, context) -> dict[str, Any]:
        from airflow_datasync import engine

        return engine.finalize(self._prepared(context, "FINALIZE"))  # a dry run's: nothing done, says so


class SyncVerifyOperator(_AfterShardsOperator):
    """VERIFYING: compare checksum manifests of source and destination as VerifyMode says.

    Runs whatever the shards and FINALIZE did (``trigger_rule="all_done"``) and checks what transferred;
    entries whose copy failed are the report's transfer failures. Skipped when PREPARING did not complete."""

    ui_color = "#e8daef"

    def execute(self, context) -> dict[str, Any]:
        from airflow_datasync import engine

        summary = engine.verify(self._prepared(context, "VERIFYING"))  # a dry run's: nothing verified, says so
        if summary.get("failed"):
            log.error("VERIFYING found %s, e.g. %s", counted(summary["failed"], "mismatch", "mismatches"), summary["examples"][:3])
        return summary


class SyncReportOperator(_AfterShardsOperator):
    """Write the execution report (JSON summary + per-file Parquet) and push the summary to XCom.

    Runs whatever happened upstream (``trigger_rule="all_done"``) and fails when the status is ERROR, so
    the DAG run's state matches the execution's.

    :param execution: the LAUNCHING task's output. Given as ``launch.output`` (an XComArg), the report
        pulls it itself in ``execute``: Airflow resolves an XComArg before ``execute`` and logs an
        "XCom not found" error when LAUNCHING failed, ahead of the report's own message.
    :param launch_task_id: the LAUNCHING task to pull the execution reference from (instead of ``execution``).
    :param emit_asset_on: ``"SUCCESS"`` (default) or ``"ANY"`` final status. Asset events (see
        :mod:`airflow_datasync.assets`): for a declared outlet ``Asset``, the event Airflow emits on success
        carries the counters as its extra; for a declared ``AssetAlias``, the destination's asset is added
        to it, with that extra, when the status qualifies.
    """

    ui_color = "#fadbd8"

    def __init__(self, *, execution: Any = None, launch_task_id: str | None = None, fail_on_error: bool = True,
                 emit_asset_on: str = "SUCCESS", **kwargs) -> None:
        super().__init__(execution=execution, launch_task_id=launch_task_id, **kwargs)
        self.fail_on_error = fail_on_error
        if emit_asset_on not in EMIT_ON:
            raise ValueError(f"emit_asset_on must be one of {', '.join(EMIT_ON)}, got {emit_asset_on!r}")
        self.emit_asset_on = emit_asset_on

    def _emit_asset_events(self, context, summary: dict[str, Any]) -> None:
        """Attach the counters to the destination's event, or make sure there is none: Airflow emits an
        event for every declared Asset outlet of a task that succeeds, read from the task's outlets when it
        ends, so a report that must not emit (an ERROR with ``fail_on_error=False``, a dry run) drops them."""
        if not should_emit(summary["Status"], self.emit_asset_on) or summary.get("DryRun"):
            self.outlets = [o for o in self.outlets if not isinstance(o, Asset)]
            return
        extra = asset_event_extra(summary)
        for outlet in self.outlets:
            if isinstance(outlet, AssetAlias):
                context["outlet_events"][outlet].add(destination_asset(summary["DestinationLocation"]), extra=extra)
            elif isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = extra

    def execute(self, context) -> dict[str, Any]:
        execution = self._launched(context)
        if execution is None:
            reason = self._pull(context, LAUNCH_ERROR_KEY) if self.launch_task_id else None
            raise AirflowFailException(
                "LAUNCHING failed, so no execution was created and there is nothing to report: "
                + (reason or f"see the log of {self.launch_task_id or 'the launch task'} for why"))
        from airflow_datasync import engine

        summary = engine.report(_execution(execution))
        log.info("execution report\n%s", render(summary))
        context["ti"].xcom_push(key="summary", value=summary)
        self._emit_asset_events(context, summary)
        if summary["Status"] != "SUCCESS" and self.fail_on_error:
            raise AirflowFailException(f"execution {summary['TaskExecutionId']} ended in ERROR: {format_summary(summary)}")
        return summary
