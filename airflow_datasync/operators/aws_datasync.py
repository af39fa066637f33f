"""AWS DataSync service executions as a TaskGroup: start → one sensor per phase → report.

    start → launching → preparing → transferring → verifying → report

``AwsSyncStartExecutionOperator`` starts an execution of a DataSync task defined in AWS, idempotently:
a retried or cleared start task reattaches to the execution it started (kept in Airflow 3.3's
``task_state_store``, which survives retries and clears) instead of starting another. The phase sensors
(:mod:`airflow_datasync.sensors.aws_datasync`) wait deferrably; ``AwsSyncReportOperator`` turns
DescribeTaskExecution into the same report the native engine writes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from airflow.providers.amazon.aws.links.datasync import DataSyncTaskExecutionLink
from airflow.sdk import BaseOperator, TaskGroup, chain
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_datasync.aws.client import AwsSyncApiError, AwsSyncClient
from airflow_datasync.aws.request import start_request
from airflow_datasync.aws.status import PHASES, RUNNING_STATUSES, execution_id
from airflow_datasync.aws.summary import execution_summary
from airflow_datasync.options import OptionsError
from airflow_datasync.report_text import format_summary, render
from airflow_datasync.sensors.aws_datasync import AwsSyncPhaseSensor

log = logging.getLogger("airflow_datasync")

#: task_state_store key of the execution a start task started: {"TaskExecutionArn", "TaskArn"}.
EXECUTION_KEY = "aws_datasync_execution"
#: Written just before StartTaskExecution and removed once its ARN is stored: if a try dies in between
#: (the answer lost on the way back), the next try adopts the task's CurrentTaskExecutionArn.
STARTING_KEY = "aws_datasync_starting"
#: An execution that started this long before our StartTaskExecution attempt is someone else's.
_CLOCK_SKEW = dt.timedelta(minutes=5)


def _is_templated(value: Any) -> bool:
    """Whether Jinja will still change ``value`` (Airflow renders strings nested in dicts and lists too)."""
    if isinstance(value, dict):
        return any(_is_templated(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_is_templated(v) for v in value)
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class AwsSyncStartExecutionOperator(BaseOperator):
    """Start (or reattach to) an execution of an AWS DataSync task; returns its TaskExecutionArn.

    :param task_arn: the DataSync task (``arn:aws:datasync:…:task/task-…``). Templated.
    :param options: ``OverrideOptions`` under DataSync's names; checked with our TaskOptions where the names
        overlap (a bad VerifyMode fails at once, without retries). Templated.
    :param includes: ``Includes``: ``"/a|/b*"`` or ``[{"FilterType": "SIMPLE_PATTERN", "Value": ...}]``. Templated.
    :param excludes: ``Excludes``, same forms. Templated.
    :param manifest_config: ``ManifestConfig`` as DataSync takes it. Templated.
    :param task_report_config: ``TaskReportConfig`` as DataSync takes it. Templated.
    :param tags: ``Tags`` for the execution, ``[{"Key": ..., "Value": ...}]``. Templated.
    :param aws_conn_id: the Airflow AWS connection (used through the Amazon provider's DataSyncHook).
    :param region_name: overrides the connection's region.
    :param cancel_on_kill: cancel the execution if this task is killed after starting it.

    Reattaching, in order: (1) the execution stored by an earlier try of this task instance is reused
    while it runs or if it succeeded (one successful execution per task instance; a new DAG run starts
    a new one); if it ended in ERROR, a new execution is started, because a retry exists to try again
    and reusing the failure would fail every retry the same way. (2) If an earlier try died between
    StartTaskExecution and storing its answer, the task's CurrentTaskExecutionArn is adopted, unless it
    started well before that try (then it belongs to someone else and ours queues behind it).
    """

    template_fields: Sequence[str] = ("task_arn", "options", "includes", "excludes", "manifest_config",
                                      "task_report_config", "tags")
    template_fields_renderers = {"options": "json", "manifest_config": "json", "task_report_config": "json",
                                 "tags": "json"}
    operator_extra_links = (DataSyncTaskExecutionLink(),)
    ui_color = "#d6eaf8"

    def __init__(self, *, task_arn: str, options: dict | str | None = None, includes: Any = None,
                 excludes: Any = None, manifest_config: dict | str | None = None,
                 task_report_config: dict | str | None = None, tags: list | str | None = None,
                 aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 cancel_on_kill: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.task_arn, self.options, self.includes, self.excludes = task_arn, options, includes, excludes
        self.manifest_config, self.task_report_config, self.tags = manifest_config, task_report_config, tags
        self.aws_conn_id, self.region_name, self.cancel_on_kill = aws_conn_id, region_name, cancel_on_kill
        self._started_arn: str | None = None
        if not any(_is_templated(value) for value in (task_arn, options, includes, excludes, manifest_config,
                                                       task_report_config, tags)):
            self._build_request()  # fail when the DAG is parsed, naming the bad option (OptionsError)

    def _build_request(self) -> dict[str, Any]:
        return start_request(self.task_arn, options=self.options, includes=self.includes, excludes=self.excludes,
                             manifest_config=self.manifest_config, task_report_config=self.task_report_config,
                             tags=self.tags)

    def _request(self) -> dict[str, Any]:
        try:
            return self._build_request()
        except OptionsError as exc:
            raise AirflowFailException(str(exc)) from exc  # bad input: retrying will not help

    def execute(self, context) -> str:
        request = self._request()
        client = AwsSyncClient(self.aws_conn_id, self.region_name)
        store = context["task_state_store"]
        try:
            arn = self._reattach(store, client, request["TaskArn"])
            if arn is None:
                store.set(STARTING_KEY, {"TaskArn": request["TaskArn"],
                                         "since": dt.datetime.now(dt.UTC).isoformat()})
                try:
                    arn = client.start(request)
                except AwsSyncApiError as exc:
                    if not exc.transient:
                        store.delete(STARTING_KEY)  # AWS refused it: no execution exists to adopt later
                    raise
                # Stored before anything else can fail, so that every later try finds it.
                store.set(EXECUTION_KEY, {"TaskExecutionArn": arn, "TaskArn": request["TaskArn"]})
                store.delete(STARTING_KEY)
                self.log.info("started AWS DataSync execution %s", arn)
            self._started_arn = arn
            client.persist_console_link(context, self, arn)
            status = client.describe_execution(arn).get("Status")
        except AwsSyncApiError as exc:
            if exc.transient:
                raise AirflowException(str(exc)) from exc  # the retry reattaches
            raise AirflowFailException(str(exc)) from exc
        self.log.info("execution %s is %s", execution_id(arn), status)
        return arn

    def _reattach(self, store, client: AwsSyncClient, task_arn: str) -> str | None:
        saved = store.get(EXECUTION_KEY)
        if isinstance(saved, dict) and saved.get("TaskArn") == task_arn and saved.get("TaskExecutionArn"):
            arn = saved["TaskExecutionArn"]
            try:
                description = client.describe_execution(arn)
            except AwsSyncApiError as exc:
                if exc.transient:
                    raise
                self.log.warning("the execution an earlier try started, %s, cannot be read (%s); starting a new one",
                                 arn, exc)
                description = None
            if description is not None:
                status = description.get("Status")
                if status in RUNNING_STATUSES or status == "SUCCESS":
                    self.log.info("reattaching to %s (%s), started by an earlier try of this task", arn, status)
                    return arn
                result = description.get("Result") or {}
                self.log.warning("the execution an earlier try started, %s, ended in %s (%s: %s); starting a new one",
                                 arn, status, result.get("ErrorCode"), result.get("ErrorDetail"))
        pending = store.get(STARTING_KEY)
        if isinstance(pending, dict) and pending.get("TaskArn") == task_arn:
            current = client.describe_task(task_arn).get("CurrentTaskExecutionArn")
            if current:
                started = client.describe_execution(current).get("StartTime")
                since = dt.datetime.fromisoformat(pending["since"])
                if started is None or started >= since - _CLOCK_SKEW:
                    self.log.info("adopting %s: an earlier try started it but did not live to store its ARN", current)
                    store.set(EXECUTION_KEY, {"TaskExecutionArn": current, "TaskArn": task_arn})
                    store.delete(STARTING_KEY)
                    return current
                self.log.info("the task's current execution %s started at %s, before our attempt: not ours",
                              current, started)
        return None

    def on_kill(self) -> None:
        if self.cancel_on_kill and self._started_arn:
            AwsSyncClient(self.aws_conn_id, self.region_name).cancel(self._started_arn)


class AwsSyncReportOperator(BaseOperator):
    """The execution's report: DescribeTaskExecution under the native report's names, to XCom.

    Runs whatever happened upstream (``trigger_rule="all_done"``) and, with ``fail_on_error``, fails
    unless the execution ended in SUCCESS, so the DAG run's state matches the execution's.
    The summary is both the return value and the ``summary`` XCom (as the native report task's).
    """

    template_fields: Sequence[str] = ("task_execution_arn",)
    ui_color = "#fadbd8"

    def __init__(self, *, task_execution_arn: Any, aws_conn_id: str | None = "aws_default",
                 region_name: str | None = None, fail_on_error: bool = True, **kwargs) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.task_execution_arn, self.aws_conn_id, self.region_name = task_execution_arn, aws_conn_id, region_name
        self.fail_on_error = fail_on_error

    def execute(self, context) -> dict[str, Any]:
        arn = self.task_execution_arn
        if not isinstance(arn, str) or "/execution/" not in arn:
            raise AirflowFailException("no AWS DataSync execution was started (see the start task's log)")
        client = AwsSyncClient(self.aws_conn_id, self.region_name)
        try:
            description = client.describe_execution(arn)
            task = client.describe_task(arn.split("/execution/")[0])
        except AwsSyncApiError as exc:
            raise (AirflowException if exc.transient else AirflowFailException)(str(exc)) from exc
        summary = execution_summary(description, task)
        self.log.info("execution report\n%s", render(summary))
        context["ti"].xcom_push(key="summary", value=summary)
        if self.fail_on_error and summary["Status"] != "SUCCESS":
            still = " (still running: a phase sensor stopped waiting)" if summary["Status"] in RUNNING_STATUSES else ""
            raise AirflowFailException(f"execution {summary['TaskExecutionId']} ended in {summary['Status']}{still}: "
                                       f"{format_summary(summary)}")
        return summary


def aws_datasync_task_group(
    group_id: str,
    *,
    task_arn: str,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    options: dict | str | None = None,
    includes: Any = None,
    excludes: Any = None,
    manifest_config: dict | str | None = None,
    task_report_config: dict | str | None = None,
    tags: list | str | None = None,
    poll_interval: float = 30,
    phase_timeout: dt.timedelta | None = None,
    deferrable: bool = True,
    sensor_mode: str = "poke",
    start_retries: int = 3,
    start_retry_delay: dt.timedelta = dt.timedelta(seconds=30),
    cancel_on_kill: bool = True,
    fail_on_error: bool = True,
    **group_kwargs: Any,
) -> TaskGroup:
    """Build ``start → launching → preparing → transferring → verifying → report`` for one AWS DataSync
    task and return the TaskGroup (its report task is ``group.report``, its start task ``group.start``).

    ``start_retries`` are safe: a retry reattaches instead of starting a second execution.
    ``phase_timeout`` bounds each phase sensor's wait (default: Airflow's sensor timeout). With
    ``deferrable=False`` the sensors poke on a worker; ``sensor_mode="reschedule"`` frees the slot between pokes.
    """
    with TaskGroup(group_id, **group_kwargs) as group:
        start = AwsSyncStartExecutionOperator(
            task_id="start", task_arn=task_arn, options=options, includes=includes, excludes=excludes,
            manifest_config=manifest_config, task_report_config=task_report_config, tags=tags,
            aws_conn_id=aws_conn_id, region_name=region_name, cancel_on_kill=cancel_on_kill,
            retries=start_retries, retry_delay=start_retry_delay,
        )
        timeout = {"timeout": phase_timeout.total_seconds()} if phase_timeout is not None else {}
        sensors = [
            AwsSyncPhaseSensor(task_id=phase.lower(), phase=phase, task_execution_arn=start.output,
                               aws_conn_id=aws_conn_id, region_name=region_name, poll_interval=poll_interval,
                               deferrable=deferrable, mode=sensor_mode, cancel_on_kill=cancel_on_kill, **timeout)
            for phase in PHASES
        ]
        report = AwsSyncReportOperator(task_id="report", task_execution_arn=start.output, aws_conn_id=aws_conn_id,
                                       region_name=region_name, fail_on_error=fail_on_error)
        chain(start, *sensors, report)
    group.start = start  # type: ignore[attr-defined]
    group.report = report  # type: ignore[attr-defined]
    return group
