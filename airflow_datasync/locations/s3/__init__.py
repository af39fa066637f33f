"""Amazon S3 and S3-compatible object stores (``s3://bucket/prefix``), one concern per module:
:mod:`.uri` (what a URI says), :mod:`.settings` (a connection's endpoint, credentials and transport),
:mod:`.transport` (the S3 operations, through :mod:`.sigv4`, our signed-HTTP client, or
:mod:`.boto_transport` where only boto3 reaches the store), :mod:`.errors` (S3's answers in the error
vocabulary), :mod:`.headers` (our metadata in ``x-amz-meta-*``), :mod:`.multipart`, :mod:`.location`
(the :class:`S3Location` backend) and :mod:`.filesystem` (the manifest store's view of S3)."""

from airflow_datasync.locations.s3.filesystem import store_filesystem
from airflow_datasync.locations.s3.location import S3Location
from airflow_datasync.locations.s3.settings import S3Settings, settings_for
from airflow_datasync.locations.s3.uri import (
           COPY_PART_SIZE,
           MULTIPART_THRESHOLD,
           PART_SIZE,
           parse_s3_uri,
)

__all__ = ["COPY_PART_SIZE", "MULTIPART_THRESHOLD", "PART_SIZE", "S3Location", "S3Settings", "parse_s3_uri",
           "settings_for", "store_filesystem"]
