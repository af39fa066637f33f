"""Roots on each backend's real server, seen from the outside: the hostile-name and fault cases seed a
source and inspect a destination with each store's own client (os, boto3, the Azure SDK, smbd's disk),
never through the location code under test, so a name the engine mangled or dropped cannot hide.

A :class:`Side` is one root: ``put`` writes a file there by the store's own means, ``files`` lists what
the store holds below the root (relative name → bytes), ``outside`` lists what appeared next to the root
(it must stay empty: nothing may escape a destination root).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: The backends of the pair matrix, by the names the figures use.
BACKENDS = ("local", "s3", "smb", "azure")


@dataclass
class Side:
    """One root on one backend."""

    backend: str
    uri: str
    conn_id: str | None
    put: Callable[[str, bytes], None]
    files: Callable[[], dict[str, bytes]]
    outside: Callable[[], list[str]]
    #: Names written by ``put`` (the store may refuse some: see :meth:`seed`).
    seeded: dict[str, bytes] = field(default_factory=dict)

    def seed(self, names: dict[str, bytes]) -> dict[str, str]:
        """Write every name the store accepts; returns name → why the store does not hold it, for the
        others. Afterwards :attr:`seeded` is what the store really holds (a store that rewrote a name, as
        SeaweedFS folds '\\' and '//', holds the rewritten one, which the engine then rightly copies)."""
        refused = {}
        for name, data in names.items():
            try:
                self.put(name, data)
            except Exception as exc:  # the store's own client refused the name: this source cannot hold it
                refused[name] = f"{type(exc).__name__}: {exc}"[:200]
        self.seeded = self.files()
        for name, data in names.items():
            if name not in refused and self.seeded.get(name) != data:
                refused[name] = "the store keeps it under another name"
        return refused


def _on_disk(root: Path, name: str) -> Path:
    """Where a file system would keep ``name`` below ``root``; a name that is no file system name (absolute,
    with a ``..`` segment) is refused, as the store itself would not hold it below the root."""
    if name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"{name!r} is not a name a file system holds below a root")
    return root / name


def _tree_bytes(root: Path) -> dict[str, bytes]:
    """Regular files below ``root`` → their bytes, walked by directory descriptors: a tree deeper than
    PATH_MAX (a 4,096-byte relative path) is read too."""
    out: dict[str, bytes] = {}

    def walk(dir_fd: int, rel: str) -> None:
        for entry in os.scandir(dir_fd):
            name = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                fd = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                try:
                    walk(fd, name)
                finally:
                    os.close(fd)
            elif entry.is_file(follow_symlinks=False):
                fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
                with os.fdopen(fd, "rb") as fh:
                    out[name] = fh.read()

    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        walk(top, "")
    finally:
        os.close(top)
    return out


def _local(request: pytest.FixtureRequest, label: str) -> Side:
    box = request.getfixturevalue("tmp_path") / f"box-{label}"
    root = box / "root"
    root.mkdir(parents=True)

    def put(name: str, data: bytes) -> None:
        path = _on_disk(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return Side("local", str(root), None, put, lambda: _tree_bytes(root), lambda: sorted(set(os.listdir(box)) - {"root"}))


def _s3(request: pytest.FixtureRequest, label: str) -> Side:
    from tests.fixtures_servers import S3_CONN_ID

    client = request.getfixturevalue("s3")
    bucket = request.getfixturevalue("bucket")
    prefix = f"{label}/root"

    def put(name: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=data)

    def keys() -> list[str]:
        return [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", [])]

    def files() -> dict[str, bytes]:
        return {k[len(prefix) + 1:]: client.get_object(Bucket=bucket, Key=k)["Body"].read()
                for k in keys() if k.startswith(prefix + "/") and not k.endswith("/")}

    def outside() -> list[str]:
        return [k for k in keys() if not k.startswith(f"{label}/root/") and k.split("/", 1)[0] in (label, "")
                or k.startswith("/") or k.startswith("..")]

    return Side("s3", f"s3://{bucket}/{prefix}", S3_CONN_ID, put, files, outside)


def _smb(request: pytest.FixtureRequest, label: str) -> Side:
    from airflow_datasync.locations.base import Metadata
    from airflow_datasync.locations.smb import SmbLocation

    folder = request.getfixturevalue("smb_folder")()
    disk: Path = folder.disk
    root = disk / "root"
    root.mkdir()
    share = disk.parent
    uri = folder.uri + "/root"

    def put(name: str, data: bytes) -> None:
        # Through the protocol, so that the share's name rules apply (on smbd's disk any name would do).
        with SmbLocation(uri, folder.conn_id) as loc:
            if "/" in name:
                loc.mkdir(name.rsplit("/", 1)[0])
            loc.write(name, iter([data]), Metadata(), tag="seed")

    before = set(os.listdir(share))

    def outside() -> list[str]:
        # Other tests' folders come and go on the shared share: only names that look escaped count.
        return sorted(set(os.listdir(disk)) - {"root"}) + sorted(
            n for n in set(os.listdir(share)) - before if not n.startswith("t-"))

    return Side("smb", uri, folder.conn_id, put, lambda: _tree_bytes(root), outside)


def _azure(request: pytest.FixtureRequest, label: str) -> Side:
    container = request.getfixturevalue("azure_container")
    client = container.client
    prefix = f"{label}/root"

    def put(name: str, data: bytes) -> None:
        if "\x00" in name:  # Azurite stores it, then answers every listing of the container with a 500
            raise ValueError("Azurite cannot list a container holding a NUL name")
        client.upload_blob(f"{prefix}/{name}", data, overwrite=True)

    def files() -> dict[str, bytes]:
        from azure.core.exceptions import HttpResponseError

        out = {}
        for b in client.list_blobs():
            if b.name.startswith(prefix + "/") and not b.name.endswith("/"):
                try:
                    out[b.name[len(prefix) + 1:]] = client.download_blob(b.name).readall()
                except HttpResponseError:  # Azurite lists some names it cannot serve back (NUL): not held
                    continue
        return out

    def outside() -> list[str]:
        return [b.name for b in client.list_blobs() if not b.name.startswith(prefix + "/")
                and b.name.split("/", 1)[0] in (label, "", "..")]

    return Side("azure", container.uri(prefix), container.conn_id, put, files, outside)


def _s3_as_aws(request: pytest.FixtureRequest, label: str) -> Side:
    """moto's S3: it keeps keys SeaweedFS refuses (``../x``, NUL, a leading '/'), as AWS does: the source
    of names no other store here holds."""
    from tests.fixtures_servers import PERMISSIVE_S3_CONN_ID

    client = request.getfixturevalue("permissive_s3").client()
    bucket = f"names-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    prefix = f"{label}/root"

    def put(name: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=data)

    def keys() -> list[str]:
        return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]

    def files() -> dict[str, bytes]:
        return {k[len(prefix) + 1:]: client.get_object(Bucket=bucket, Key=k)["Body"].read()
                for k in keys() if k.startswith(prefix + "/") and not k.endswith("/")}

    return Side("s3aws", f"s3://{bucket}/{prefix}", PERMISSIVE_S3_CONN_ID, put, files,
                lambda: [k for k in keys() if not k.startswith(prefix + "/")])


_FACTORIES = {"local": _local, "s3": _s3, "smb": _smb, "azure": _azure, "s3aws": _s3_as_aws}


def make_side(request: pytest.FixtureRequest, backend: str, label: str | None = None) -> Side:
    """A fresh root on ``backend`` (label: a name of its own, so a source and a destination of one kind differ)."""
    return _FACTORIES[backend](request, label or f"{backend}-{uuid.uuid4().hex[:6]}")
