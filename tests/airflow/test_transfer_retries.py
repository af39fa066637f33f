"""The transfer's retries as sync_task_group wires them: backoff passed through, and the retry policy's
decisions for the error vocabulary (a real scheduler exercises them in tests/faults/test_airflow_faults.py)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, RetryAction

from airflow_datasync.errors import ConnectionLostError, PermissionDeniedError, TransientError
from airflow_datasync.operators import sync_task_group
from airflow_datasync.operators.group import TRANSFER_RETRY_POLICY
from airflow_datasync.phases.transfer import PermanentShardError, ShardFailedError


def test_backoff_reaches_the_mapped_transfer(tmp_path):
    with DAG("retries_wiring", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        sync_task_group("sync", source=str(tmp_path / "a"), destination=str(tmp_path / "b"), transfer_retries=4,
                        transfer_retry_delay=timedelta(seconds=10), transfer_retry_exponential_backoff=2.0)
    transfer = dag.get_task("sync.transfer")
    assert transfer.partial_kwargs["retry_exponential_backoff"] == 2.0
    assert transfer.partial_kwargs["retries"] == 4
    assert transfer.partial_kwargs["retry_delay"] == timedelta(seconds=10)


def test_the_policy_fails_fast_on_permission_errors_and_leaves_network_errors_to_the_retries():
    decide = lambda exc: TRANSFER_RETRY_POLICY.evaluate(exc, try_number=1, max_tries=3).action  # noqa: E731
    assert decide(PermissionDeniedError("s3://b/k: the secret key is wrong")) == RetryAction.FAIL
    assert decide(PermanentShardError("shard 0: 1 of 1 entry failed")) == RetryAction.FAIL
    assert decide(ShardFailedError("shard 0: 1 of 1 entry failed")) == RetryAction.DEFAULT
    assert decide(ConnectionLostError("s3://b/k: connection refused")) == RetryAction.DEFAULT
    assert decide(TransientError("s3://b/k: SlowDown")) == RetryAction.DEFAULT
