"""Airflow operators for the phases of a sync execution, and the TaskGroup that wires them.

Names start with ``Sync``/``sync_`` so they are never confused with the Amazon provider's
``DataSyncOperator`` and ``DataSyncHook``, which drive the AWS DataSync service.
"""

from airflow_datasync.operators.aws_datasync import (
    AwsSyncReportOperator,
    AwsSyncStartExecutionOperator,
    aws_datasync_task_group,
)
from airflow_datasync.operators.group import sync_task_group
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

__all__ = [
    "AwsSyncReportOperator",
    "AwsSyncStartExecutionOperator",
    "aws_datasync_task_group",
    "SyncFinalizeOperator",
    "SyncLaunchOperator",
    "SyncPartitionsOperator",
    "SyncPrepareOperator",
    "SyncPreparePartitionOperator",
    "SyncReportOperator",
    "SyncTransferOperator",
    "SyncVerifyOperator",
    "sync_task_group",
]
