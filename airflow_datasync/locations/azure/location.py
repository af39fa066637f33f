"""Azure Blob Storage: ``azure://container/prefix`` (or ``az://``), the account from a ``wasb`` connection.

Listings bring each blob's metadata, so a scan costs one request per 5,000 blobs and no HEADs; a copy
reads the version PREPARING listed (If-Match on its ETag); writes are block blobs committed whole
(:mod:`.upload`). POSIX metadata lives in blob metadata (:mod:`.metadata`); directories are ``dir/``
marker blobs, as on S3. Every SDK call goes through :func:`.errors.azure_call`: one error table, one
retry helper.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync.locations.azure import connection
from airflow_datasync.locations.azure.errors import azure_call, to_location_error
from airflow_datasync.locations.azure.metadata import (
    AZURE_METADATA,
    is_ours,
    stat_from_properties,
    to_blob_metadata,
)
from airflow_datasync.locations.azure.upload import discard_uncommitted, upload_blob
from airflow_datasync.locations.azure.uri import parse_azure_uri
from airflow_datasync.locations.base import (
    DIR,
    FILE,
    SYMLINK,
    TEMP_PREFIX,
    UPLOAD,
    Capabilities,
    ChangedSinceListingError,
    Cleanup,
    DirectoryNotEmptyError,
    Leftover,
    Location,
    LocationError,
    Metadata,
    NotFoundError,
    ScanHints,
    StatResult,
    UnsafePathError,
    Written,
    listing_batch,
    safe_relpath,
)

#: Azure's limit on blob names, in characters.
MAX_NAME_CHARS = 1024
#: Paths the service may store under another name (see :meth:`AzureLocation.name_problem`): a cheap filter.
_MAYBE_RENAMED = r"\\|\.(/|$)"
#: Blobs per List Blobs page (the service's maximum).
LIST_PAGE = 5000

CAPABILITIES = Capabilities(
    concurrency=32,
    owner_names="metadata",
    # Markers are blobs like any other: created with their metadata, which the service keeps and nothing
    # written below them changes.
    keeps_directory_metadata=True,
    directory_times_follow_children=False,
    versioned_reads=True,
    listed_md5s=True,
    extras_read=frozenset({AZURE_METADATA}),
    extras_write=frozenset({AZURE_METADATA}),
)


class _BlobReader(io.RawIOBase):
    """A read-only stream over a download's chunks, its errors mapped like every other call's: ``read(n)``
    returns at most ``n`` bytes (the next chunk, or what is left of it), ``read()`` everything left."""

    def __init__(self, chunks: Iterator[bytes], where: str, precondition: type[LocationError]) -> None:
        self._chunks, self._where, self._precondition = chunks, where, precondition
        self._left = b""

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        from azure.core.exceptions import AzureError

        try:
            for chunk in self._chunks:
                if chunk:
                    return bytes(chunk)
        except AzureError as exc:
            raise to_location_error(exc, self._where, precondition=self._precondition) from None
        return b""

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._left]
            while chunk := self._next_chunk():
                parts.append(chunk)
            self._left = b""
            return b"".join(parts)
        data = self._left or self._next_chunk()
        self._left = data[size:]
        return data[:size]

    def readall(self) -> bytes:
        return self.read(-1)


class AzureLocation(Location):
    scheme = "azure"
    capabilities = CAPABILITIES

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        super().__init__(uri, conn_id)
        parsed = parse_azure_uri(uri)
        self.container_name, self.prefix = parsed.container, parsed.prefix
        self.block_size, self.block_concurrency, self.access_tier = (
            parsed.block_size, parsed.block_concurrency, parsed.access_tier)
        self._container: Any = None

    # -- clients ----------------------------------------------------------------------------------
    @property
    def container(self) -> Any:
        """The SDK's ``ContainerClient``, built on first use from the process's client for the connection."""
        if self._container is None:
            try:
                service = connection.shared_client(self.conn_id)
            except LocationError as exc:  # about the connection: say which location needed it
                raise LocationError(f"{self.uri}: {exc}") from None
            self._container = service.get_container_client(self.container_name)
        return self._container

    @property
    def account(self) -> str:
        """The account's blob endpoint without its query (a SAS): what tells two accounts apart."""
        return self.container.primary_endpoint.split("?", 1)[0].rstrip("/").rsplit("/", 1)[0]

    def key(self, path: str) -> str:
        """The blob name of ``path``; refuses names Azure cannot hold as they are."""
        key = self.prefix + safe_relpath(path)
        if len(key) > MAX_NAME_CHARS:
            raise UnsafePathError(f"{self.uri}: the blob name of {path!r} is longer than Azure's 1024 characters")
        problem = self.name_problem(path)
        if problem is not None:
            raise UnsafePathError(f"{self.uri}: {path!r} {problem}")
        return key

    def name_problem(self, path: str) -> str | None:
        """Names the service would store under another name: it drops a trailing dot of each URL path
        segment (``a./b`` would be stored as ``a/b``) and takes a backslash for ``/``."""
        if "\\" in path:
            return "holds a backslash, which Azure Blob Storage takes for '/' (it would become another name)"
        if any(part.endswith(".") for part in path.split("/")):
            return "has a name ending in '.', which Azure Blob Storage cannot hold (it strips the dot)"
        return None

    def name_problems(self, paths: pa.ChunkedArray | pa.Array) -> pa.Array | None:
        maybe = pc.match_substring_regex(paths, _MAYBE_RENAMED)
        if not pc.any(maybe).as_py():
            return None
        problems = {p: self.name_problem(p) for p in paths.filter(maybe).to_pylist()}
        return pc.take(pa.array(list(problems.values()), pa.string()),
                       pc.index_in(paths, value_set=pa.array(list(problems), pa.string())))

    def _where(self, path: str = "") -> str:
        """``azure://container/prefix/path`` for messages (the URI's query left out)."""
        return f"azure://{self.container_name}/{self.prefix}{path}"

    # -- checks -----------------------------------------------------------------------------------
    def check(self, *, writable: bool, dry_run: bool = False) -> bool:
        try:
            azure_call(self.container.get_container_properties, self.uri)
        except NotFoundError:
            raise NotFoundError(f"{self.uri}: container {self.container_name!r} does not exist in "
                                f"{self.account} (connection {self.conn_id or 'from the environment'})") from None
        except LocationError as exc:
            raise type(exc)(f"{exc} (connection {self.conn_id or 'from the environment'})") from None
        if writable and not dry_run:
            probe = self.container.get_blob_client(
                f"{self.prefix}{TEMP_PREFIX}probe-{os.getpid()}-{threading.get_ident()}")
            azure_call(lambda: probe.upload_blob(b"", overwrite=True), self.uri)
            azure_call(probe.delete_blob, self.uri)
        return True

    def contains(self, other: Location) -> bool:
        if not isinstance(other, AzureLocation) or other.container_name != self.container_name:
            return False
        return other.account == self.account and other.prefix.startswith(self.prefix)

    # -- reading ----------------------------------------------------------------------------------
    def _pages(self, prefix: str) -> Iterator[list[Any]]:
        """Every List Blobs page under ``prefix``, with each blob's metadata; each page's request retried
        (the SDK's page iterator asks for the same continuation token again after a failure)."""
        pages = self.container.list_blobs(name_starts_with=prefix, include=["metadata"],
                                          results_per_page=LIST_PAGE).by_page()

        def next_page() -> list[Any] | None:
            page = next(pages, None)
            return None if page is None else list(page)

        where = self._where(prefix[len(self.prefix):])
        while (page := azure_call(next_page, where)) is not None:
            yield page

    def scan(self, batch_size: int = 10_000, hints: ScanHints | None = None,
             needs_metadata: Callable[[str, int], bool] | None = None) -> Iterator[pa.RecordBatch]:
        # A listing carries every blob's metadata: nothing to skip, no hints needed.
        columns: dict[str, list] = {name: [] for name in ("path", "type", "size", "mtime_ns", "atime_ns", "mode",
                                                          "uid", "gid", "link_target", "error", "etag")}
        plen = len(self.prefix)
        for page in self._pages(self.prefix):
            for blob in page:
                rel = blob.name[plen:]
                is_dir = rel.endswith("/")
                rel = rel[:-1] if is_dir else rel
                if not rel or rel.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
                    continue
                try:
                    safe_relpath(rel)
                except UnsafePathError as exc:
                    stat, error = StatResult(DIR if is_dir else FILE, 0, 0), f"unsafe blob name {blob.name!r} refused: {exc}"
                    rel = rel.replace("\x00", "\\x00")
                else:
                    stat, error = stat_from_properties(blob, is_dir), None
                for name, value in (("path", rel), ("type", stat.type), ("size", stat.size),
                                    ("mtime_ns", stat.mtime_ns), ("atime_ns", stat.atime_ns), ("mode", stat.mode),
                                    ("uid", stat.uid), ("gid", stat.gid), ("link_target", stat.link_target),
                                    ("error", error), ("etag", stat.etag)):
                    columns[name].append(value)
                if len(columns["path"]) >= batch_size:
                    yield listing_batch(columns)
                    columns = {name: [] for name in columns}
        if columns["path"]:
            yield listing_batch(columns)

    def _properties(self, key: str) -> Any | None:
        try:
            return azure_call(self.container.get_blob_client(key).get_blob_properties, self._where(key[len(self.prefix):]))
        except NotFoundError:
            return None

    def stat(self, path: str) -> StatResult | None:
        key = self.key(path)
        props = self._properties(key)
        if props is not None:
            return stat_from_properties(props, is_dir=False)
        marker = self._properties(key + "/")
        return stat_from_properties(marker, is_dir=True) if marker is not None else None

    def _download(self, path: str, **conditions: Any) -> tuple[Any, type[LocationError]]:
        precondition = ChangedSinceListingError if conditions else LocationError
        blob = self.container.get_blob_client(self.key(path))
        return azure_call(lambda: blob.download_blob(**conditions), self._where(path),
                          precondition=precondition), precondition

    def open_read(self, path: str) -> IO[bytes]:
        download, precondition = self._download(path)
        return _BlobReader(download.chunks(), self._where(path), precondition)

    def open_version(self, path: str, etag: str) -> tuple[IO[bytes], StatResult]:
        """GET with If-Match on the listed ETag (the SDK pins every later range to it too): the blob as listed
        and its metadata, or ChangedSinceListingError."""
        from azure.core import MatchConditions

        try:
            download, precondition = self._download(path, etag=etag, match_condition=MatchConditions.IfNotModified)
        except ChangedSinceListingError:
            raise ChangedSinceListingError(f"{path}: changed at the source since PREPARING (ETag {etag} no longer "
                                           "matches); not copied, the next execution copies the new version") from None
        except NotFoundError:
            raise NotFoundError(f"{path}: vanished from the source after PREPARING") from None
        stat = stat_from_properties(download.properties, is_dir=False)
        return _BlobReader(download.chunks(), self._where(path), precondition), stat

    def stores_md5(self, size: int) -> bool:
        # One Put Blob (up to block_size): the service computes the Content-MD5 itself. A block list's
        # commit stores none, and a client-supplied one would prove nothing.
        return size <= self.block_size

    def list_md5s(self) -> dict[str, str]:
        plen = len(self.prefix)
        return {blob.name[plen:]: bytes(blob.content_settings.content_md5).hex()
                for page in self._pages(self.prefix) for blob in page
                if blob.content_settings.content_md5 and not blob.name.endswith("/")}

    # -- writing ----------------------------------------------------------------------------------
    def _upload(self, key: str, chunks: Iterator[bytes], metadata: dict[str, str], *,
                before_commit: Callable[[int], None] | None = None, overwrite: bool = True,
                tag: str | None = None) -> Written:
        path = key[len(self.prefix):]

        def track(event: str, block_prefix: str) -> None:  # staged blocks, so a killed writer's can be dropped
            self._log_upload(event, Leftover(UPLOAD, path, tag, upload_id=block_prefix))

        return upload_blob(self.container.get_blob_client(key), chunks, metadata=metadata, block_size=self.block_size,
                           concurrency=self.block_concurrency, before_commit=before_commit, overwrite=overwrite,
                           access_tier=self.access_tier, where=self._where(path), tag=tag, track=track)

    def write(self, path: str, chunks: Iterator[bytes], meta: Metadata, *, tag: str,
              before_commit: Callable[[int], None] | None = None, overwrite: bool = True) -> Written:
        """A block blob committed whole (:mod:`.upload`); no temporary name is used, ``tag`` starts the ids of
        the blocks staged for it."""
        return self._upload(self.key(path), chunks, to_blob_metadata(meta), before_commit=before_commit,
                            overwrite=overwrite, tag=tag)

    def remove_leftovers(self, leftovers: Iterable[Leftover], *, writers_gone: bool = False) -> Cleanup:
        """Drops the uncommitted blocks of the given uploads where the blob holds nothing committed
        (:func:`.upload.discard_uncommitted`); Azure writes no temporaries."""
        done = Cleanup()
        for upload in leftovers:
            if upload.kind != UPLOAD or not upload.upload_id:
                continue
            dropped = discard_uncommitted(self.container.get_blob_client(self.key(upload.path)), upload.upload_id,
                                          self._where(upload.path))
            if dropped:
                done.removed += 1
                done.bytes += dropped
        return done

    def symlink(self, path: str, target: str, meta: Metadata, *, tag: str) -> None:
        self._upload(self.key(path), iter(()), to_blob_metadata(meta, SYMLINK, target))

    def mkdir(self, path: str, meta: Metadata | None = None) -> None:
        # One marker with the directory's metadata: nothing written below it changes a blob, so FINALIZE
        # has nothing left to do for it.
        self._upload(self.key(path) + "/", iter(()), to_blob_metadata(meta, DIR))

    def set_metadata(self, path: str, meta: Metadata, *, is_dir: bool = False) -> list[str]:
        from azure.core import MatchConditions

        key = self.key(path) + ("/" if is_dir else "")
        props = self._properties(key)
        if props is None:
            if is_dir:
                return []  # an implied directory (no marker blob) has no metadata to set
            raise NotFoundError(f"{self._where(path)}: not found")
        current: dict[str, str] = dict(props.metadata or {})
        # Ours are updated; a blob's other metadata stays, unless the source's own (azure.metadata) replaces it.
        kept = {k: v for k, v in current.items() if is_ours(k) or AZURE_METADATA not in meta.extras}
        wanted = {**kept, **to_blob_metadata(meta)}
        if wanted == current:
            return []
        blob = self.container.get_blob_client(key)
        azure_call(lambda: blob.set_blob_metadata(wanted, etag=props.etag, match_condition=MatchConditions.IfNotModified),
                   self._where(path), precondition=ChangedSinceListingError)
        return []

    def delete(self, path: str, *, is_dir: bool) -> None:
        key = self.key(path) + ("/" if is_dir else "")
        if is_dir:
            inside = self.container.list_blobs(name_starts_with=key, results_per_page=2).by_page()
            names = azure_call(lambda: [blob.name for blob in next(inside, [])], self._where(path))
            if any(name != key for name in names):
                raise DirectoryNotEmptyError(f"{self._where(path)}: the directory is not empty; kept")
        try:
            azure_call(self.container.get_blob_client(key).delete_blob, self._where(path))
        except NotFoundError:
            pass  # already gone (or an implied directory): what a delete asks for

    def read_extras(self, path: str, wanted: Mapping[str, Any]) -> dict[str, Any]:
        return {}  # azure.metadata comes with every stat and listing: nothing costs a request of its own
