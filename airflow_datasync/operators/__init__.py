"""Airflow operators for the phases of a sync execution, and the TaskGroup that wires them.

Names start with ``Sync``/``sync_`` so they are never confused with the Amazon provider's
``DataSyncOperator`` and ``DataSyncHook``, which drive the AWS DataSync service.

Each name is imported from its module on first use, so that a DAG file using ``sync_task_group`` loads
neither botocore nor the Amazon provider's links, which only the AWS DataSync service operators need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Exported name → the module that defines it.
_MODULE_OF = {
    "AwsSyncReportOperator": "aws_datasync",
    "AwsSyncStartExecutionOperator": "aws_datasync",
    "aws_datasync_task_group": "aws_datasync",
    "SyncFinalizeOperator": "phases",
    "SyncLaunchOperator": "phases",
    "SyncPartitionsOperator": "phases",
    "SyncPrepareOperator": "phases",
    "SyncPreparePartitionOperator": "phases",
    "SyncReportOperator": "phases",
    "SyncTransferOperator": "phases",
    "SyncVerifyOperator": "phases",
    "sync_task_group": "group",
}

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

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain global
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
