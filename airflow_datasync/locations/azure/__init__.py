"""Azure Blob Storage as a location: ``azure://container/prefix``; see :mod:`.location`."""

from airflow_datasync.locations.azure.location import AzureLocation
from airflow_datasync.locations.azure.metadata import AZURE_METADATA

__all__ = ["AZURE_METADATA", "AzureLocation"]
