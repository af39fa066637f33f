"""Amazon S3 and S3-compatible object stores (``s3://bucket/prefix``), one concern per module:
:mod:`.uri` (what a URI says), :mod:`.settings` (a connection's endpoint, credentials and clients),
:mod:`.headers` (our metadata in ``x-amz-meta-*``), :mod:`.location` (the :class:`S3Location` backend),
:mod:`.multipart`, :mod:`.sigv4` (the signed-HTTP client) and :mod:`.botocore_patches`."""

from airflow_datasync.locations.s3.location import S3Location
from airflow_datasync.locations.s3.settings import S3Settings, settings_for
from airflow_datasync.locations.s3.uri import COPY_PART_SIZE, MULTIPART_THRESHOLD, PART_SIZE, parse_s3_uri

__all__ = ["COPY_PART_SIZE", "MULTIPART_THRESHOLD", "PART_SIZE", "S3Location", "S3Settings", "parse_s3_uri",
           "settings_for"]
