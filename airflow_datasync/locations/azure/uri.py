"""``azure://container/prefix`` (and ``az://``, as fsspec and obstore users write it): what a URI names.

The storage account is not part of the URI: it comes from the connection (its account name, account URL
or connection string), as Azure users expect from ``wasb`` connections and from tools that take a
container and a path. Parameters after ``?`` tune how the location writes.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from airflow_datasync.errors import LocationError
from airflow_datasync.uri import parse_size, redact_uri

SCHEMES = ("azure", "az")
_MIB = 1024 * 1024
#: Blobs up to this size go in one Put Blob (the service then keeps their Content-MD5); larger ones are
#: staged as blocks of this size and committed with one Put Block List.
BLOCK_SIZE = 16 * _MIB
BLOCK_CONCURRENCY = 4
#: The service's limits: a Put Block of at most 4000 MiB, at most 50,000 blocks per blob.
MAX_BLOCK_SIZE = 4000 * _MIB
#: Azure's rules for container names: 3-63 characters, lower-case letters, digits and single hyphens,
#: starting and ending with a letter or digit.
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
#: Access tiers of block blobs (DataSync's AccessTier values, and Azure's own Cold).
ACCESS_TIERS = {"HOT": "Hot", "COOL": "Cool", "COLD": "Cold", "ARCHIVE": "Archive"}


@dataclass(frozen=True)
class AzureUri:
    """A parsed ``azure://`` URI: container, key prefix (empty or ending in ``/``) and write settings."""

    container: str
    prefix: str
    block_size: int = BLOCK_SIZE
    block_concurrency: int = BLOCK_CONCURRENCY
    access_tier: str | None = None


def parse_azure_uri(uri: str) -> AzureUri:
    """``azure://container/prefix?block_size=64MiB&block_concurrency=8&access_tier=COOL``.

    ``block_size`` is the Put Blob limit and the size of staged blocks (1 MiB to 4000 MiB),
    ``block_concurrency`` the blocks of one file in flight (1-64), ``access_tier`` the tier written blobs
    get (HOT, COOL, COLD, ARCHIVE; default: the account's).
    """
    shown = redact_uri(uri)  # a key someone put in the URI never reaches a message
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in SCHEMES or not parsed.netloc:
        raise LocationError(f"{shown}: an Azure Blob location is azure://container[/prefix] (the account comes "
                            "from the connection)")
    container = parsed.netloc
    if "@" in container:
        raise LocationError(f"{shown}: put the account and its key in the connection, not in the URI "
                            "(azure://container/prefix)")
    if not _CONTAINER.match(container):
        raise LocationError(f"{shown}: {container!r} is not a valid container name (3-63 lower-case letters, digits "
                            "and single hyphens)")
    settings: dict[str, object] = {}
    for name, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
        if name == "block_size":
            size = parse_size(shown, name, value)
            if not _MIB <= size <= MAX_BLOCK_SIZE:
                raise LocationError(f"{shown}: block_size must be between 1MiB and 4000MiB (Azure's limit), got {value!r}")
            settings["block_size"] = size
        elif name == "block_concurrency":
            if not value.isdigit() or not 1 <= int(value) <= 64:
                raise LocationError(f"{shown}: block_concurrency must be an integer from 1 to 64, got {value!r}")
            settings["block_concurrency"] = int(value)
        elif name == "access_tier":
            if value.upper() not in ACCESS_TIERS:
                raise LocationError(f"{shown}: access_tier={value!r} is invalid; use one of {', '.join(ACCESS_TIERS)}")
            settings["access_tier"] = ACCESS_TIERS[value.upper()]
        else:
            raise LocationError(f"{shown}: unknown parameter {name!r}; use block_size, block_concurrency, access_tier")
    prefix = parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if "//" in prefix or any(part in (".", "..") for part in prefix.split("/")[:-1]) or "\\" in prefix:
        raise LocationError(f"{shown}: the prefix has empty, '.' or '..' segments or a backslash")
    return AzureUri(container, prefix, **settings)  # type: ignore[arg-type]
