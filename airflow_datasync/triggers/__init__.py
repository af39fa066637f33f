"""Triggers the triggerer runs for this package's deferrable sensors (importable: ``dag.test()`` and the
triggerer rebuild them from their classpath and JSON kwargs, which carry connection ids, never secrets)."""

from airflow_datasync.triggers.execution import SyncExecutionTrigger
from airflow_datasync.triggers.location_quiet import LocationQuietTrigger

__all__ = ["LocationQuietTrigger", "SyncExecutionTrigger"]
