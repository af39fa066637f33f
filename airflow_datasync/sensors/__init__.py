"""Deferrable sensors: wait for an execution of this engine to reach a phase, or for a location to settle.

Names start with ``Sync``/``Location`` so they are never confused with the Amazon provider's DataSync
classes, which drive the AWS service."""

from airflow_datasync.sensors.execution import SyncExecutionSensor
from airflow_datasync.sensors.location_quiet import LocationQuietSensor

__all__ = ["LocationQuietSensor", "SyncExecutionSensor"]
