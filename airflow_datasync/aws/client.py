"""The few DataSync API calls we make, through the Amazon provider's ``DataSyncHook`` (so credentials,
role assumption and endpoint come from an Airflow AWS connection), with errors mapped by type.

Blocking (boto3): triggers call these through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import logging
from functools import cached_property
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

log = logging.getLogger("airflow_datasync")

#: Error codes that say the request itself is wrong or the resource is gone: retrying cannot help.
_PERMANENT_CODES = frozenset({"InvalidRequestException", "ValidationException", "ResourceNotFoundException",
                              "AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId",
                              "ExpiredTokenException"})
#: Throttling codes (sent with HTTP 400): wait and ask again.
_THROTTLING_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})


class AwsSyncApiError(RuntimeError):
    """A DataSync API call failed; ``code`` is AWS's error code and ``transient`` says whether a later
    attempt may succeed (throttling, a 5xx, a dropped connection)."""

    def __init__(self, operation: str, code: str, message: str, transient: bool) -> None:
        super().__init__(f"AWS DataSync {operation} failed: {code}: {message}")
        self.operation, self.code, self.transient = operation, code, transient


class AwsSyncClient:
    """DataSync calls for one AWS connection and region. Client creation is lazy and cached."""

    def __init__(self, aws_conn_id: str | None = "aws_default", region_name: str | None = None) -> None:
        self.aws_conn_id, self.region_name = aws_conn_id, region_name

    @cached_property
    def hook(self):
        from airflow.providers.amazon.aws.hooks.datasync import DataSyncHook

        return DataSyncHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    @cached_property
    def _client(self):
        return self.hook.conn

    @cached_property
    def _start_client(self):
        # StartTaskExecution has no client token: a retried call whose first answer was lost would start a
        # second execution. One attempt only; our own retry then reattaches (see AwsSyncStartExecutionOperator).
        return self.hook.get_client_type(config=self.hook.config.merge(Config(retries={"total_max_attempts": 1})))

    def _call(self, operation: str, fn, **kwargs) -> dict[str, Any]:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "Unknown")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            transient = code not in _PERMANENT_CODES and (status >= 500 or status == 429 or code in _THROTTLING_CODES)
            raise AwsSyncApiError(operation, code, error.get("Message", ""), transient) from exc
        except BotoConnectionError as exc:
            raise AwsSyncApiError(operation, type(exc).__name__, str(exc), True) from exc
        except BotoCoreError as exc:  # parameter validation, missing credentials, ...
            raise AwsSyncApiError(operation, type(exc).__name__, str(exc), False) from exc

    def start(self, request: dict[str, Any]) -> str:
        return self._call("StartTaskExecution", self._start_client.start_task_execution, **request)["TaskExecutionArn"]

    def describe_execution(self, task_execution_arn: str) -> dict[str, Any]:
        return self._call("DescribeTaskExecution", self._client.describe_task_execution,
                          TaskExecutionArn=task_execution_arn)

    def describe_task(self, task_arn: str) -> dict[str, Any]:
        return self._call("DescribeTask", self._client.describe_task, TaskArn=task_arn)

    def persist_console_link(self, context, operator, task_execution_arn: str) -> None:
        """The Amazon provider's "DataSync Task Execution" button (AWS console) for ``operator``'s task
        instance; pushed before a sensor defers, so it shows while the task waits."""
        from airflow.providers.amazon.aws.links.datasync import DataSyncTaskExecutionLink

        task_part, _, execution = task_execution_arn.partition("/execution/")
        try:
            region, partition = self.hook.conn_region_name, self.hook.conn_partition
        except Exception as exc:  # a missing button must never fail the task: the link is decoration
            log.warning("no AWS console link for %s: %s", task_execution_arn, exc)
            return
        DataSyncTaskExecutionLink.persist(context=context, operator=operator, region_name=region,
                                          aws_partition=partition, task_id=task_part.rsplit("/", 1)[-1],
                                          task_execution_id=execution)

    def cancel(self, task_execution_arn: str) -> bool:
        """Cancel a running execution; False (not an error) when it already finished or is unknown."""
        try:
            self._call("CancelTaskExecution", self._client.cancel_task_execution, TaskExecutionArn=task_execution_arn)
        except AwsSyncApiError as exc:
            if exc.code == "InvalidRequestException":
                log.info("execution %s was not cancelled: %s", task_execution_arn, exc)
                return False
            raise
        log.warning("cancelled AWS DataSync execution %s", task_execution_arn)
        return True


def jsonable(value: Any) -> Any:
    """A DescribeTaskExecution answer as JSON (datetimes as ISO 8601), minus boto's ResponseMetadata."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
