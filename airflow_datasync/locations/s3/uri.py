"""What an ``s3://bucket/prefix?…`` URI says: the bucket, the key prefix and the write tuning parameters."""

from __future__ import annotations

import urllib.parse
from typing import Any

from airflow_datasync.errors import LocationError
from airflow_datasync.uri import parse_size

#: Default part size: objects up to this size go in one PUT; larger ones use multipart with parts of
#: this size (a location's ``?part_size=`` overrides it).
PART_SIZE = 16 * 1024 * 1024
MULTIPART_THRESHOLD = PART_SIZE
PART_CONCURRENCY = 4
#: Server-side copies above this size go part by part (S3's CopyObject limit is 5 GiB).
COPY_PART_SIZE = 5 * 1024**3
MAX_KEY_BYTES = 1024


#: DataSync's S3StorageClass values → S3's x-amz-storage-class.
STORAGE_CLASSES = {"STANDARD": "STANDARD", "STANDARD_IA": "STANDARD_IA", "ONEZONE_IA": "ONEZONE_IA",
                   "INTELLIGENT_TIERING": "INTELLIGENT_TIERING", "GLACIER": "GLACIER", "DEEP_ARCHIVE": "DEEP_ARCHIVE",
                   "OUTPOSTS": "OUTPOSTS", "GLACIER_INSTANT_RETRIEVAL": "GLACIER_IR", "GLACIER_IR": "GLACIER_IR"}
_MIB = 1024 * 1024


def parse_s3_uri(uri: str) -> tuple[str, str, dict[str, Any]]:
    """``s3://bucket/prefix?storage_class=STANDARD_IA&part_size=64MiB&part_concurrency=8``.

    Parameters after ``?`` tune how this location writes: ``storage_class`` (DataSync's S3StorageClass
    values), ``part_size`` (multipart part size, 5 MiB to 5 GiB; also the single-PUT limit) and
    ``part_concurrency`` (parts of one file in flight).
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise LocationError(f"{uri}: an S3 location is s3://bucket[/prefix]")
    settings: dict[str, Any] = {"storage_class": None, "part_size": PART_SIZE, "part_concurrency": PART_CONCURRENCY}
    for name, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True, strict_parsing=False):
        if name == "storage_class":
            if value.upper() not in STORAGE_CLASSES:
                raise LocationError(f"{uri}: storage_class={value!r} is invalid; use one of {', '.join(STORAGE_CLASSES)}")
            settings["storage_class"] = STORAGE_CLASSES[value.upper()]
        elif name == "part_size":
            size = parse_size(uri, name, value)
            if not 5 * _MIB <= size <= 5 * 1024**3:
                raise LocationError(f"{uri}: part_size must be between 5MiB and 5GiB (S3's limits), got {value!r}")
            settings["part_size"] = size
        elif name == "part_concurrency":
            if not value.isdigit() or not 1 <= int(value) <= 64:
                raise LocationError(f"{uri}: part_concurrency must be an integer from 1 to 64, got {value!r}")
            settings["part_concurrency"] = int(value)
        else:
            raise LocationError(f"{uri}: unknown parameter {name!r}; use storage_class, part_size, part_concurrency")
    prefix = parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if "//" in prefix or any(p in (".", "..") for p in prefix.split("/")[:-1]):
        raise LocationError(f"{uri}: the prefix has empty, '.' or '..' segments")
    return parsed.netloc, prefix, settings

