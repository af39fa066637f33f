"""Amazon S3 and S3-compatible object stores (MinIO, SeaweedFS, Ceph, …): ``s3://bucket/prefix``.

Credentials, region, endpoint, addressing style and TLS settings come from an Airflow AWS connection
(the Amazon provider's hook reads them), or from the environment boto3 honours when no connection id is
given. Bytes move with the client that measured fastest here: obstore (Rust ``object_store``) lists and
PUTs small objects and streams GETs; boto3 does what obstore cannot do safely or at all: multipart
uploads that are always completed or aborted, HEAD with checksums and user metadata, server-side copies.

POSIX metadata lives in user metadata (``x-amz-meta-*``) so an S3 → file system round trip restores it:
``ds-mtime-ns``, ``ds-atime-ns``, ``ds-mode`` (octal), ``ds-uid``, ``ds-gid``; ``ds-type: symlink`` with
``ds-link-target`` (percent-encoded) marks a symlink; ``mtime`` (seconds, as rclone writes it) is added
for other tools. Directories are empty ``key/`` objects, as DataSync writes them.
"""

from __future__ import annotations

import datetime
import io
import itertools
import logging
import os
import re
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Callable, Iterator

import pyarrow as pa

from airflow_datasync import checksum
from airflow_datasync.locations import s3_lite
from airflow_datasync.locations.base import (
    DIR,
    ChangedSinceListingError,
    ScanHints,
    FILE,
    LISTING_SCHEMA,
    SYMLINK,
    Location,
    LocationError,
    Metadata,
    StatResult,
    UnsafePathError,
    safe_relpath,
)

log = logging.getLogger("airflow_datasync")

META_PREFIX = "ds-"
#: Default part size: objects up to this size go in one PUT; larger ones use multipart with parts of
#: this size (a location's ``?part_size=`` overrides it).
PART_SIZE = 16 * 1024 * 1024
MULTIPART_THRESHOLD = PART_SIZE
PART_CONCURRENCY = 4
HEAD_CONCURRENCY = 32
#: Server-side copies above this size go part by part (S3's CopyObject limit is 5 GiB).
COPY_PART_SIZE = 5 * 1024**3
MAX_KEY_BYTES = 1024


#: DataSync's S3StorageClass values → S3's x-amz-storage-class.
STORAGE_CLASSES = {"STANDARD": "STANDARD", "STANDARD_IA": "STANDARD_IA", "ONEZONE_IA": "ONEZONE_IA",
                   "INTELLIGENT_TIERING": "INTELLIGENT_TIERING", "GLACIER": "GLACIER", "DEEP_ARCHIVE": "DEEP_ARCHIVE",
                   "OUTPOSTS": "OUTPOSTS", "GLACIER_INSTANT_RETRIEVAL": "GLACIER_IR", "GLACIER_IR": "GLACIER_IR"}
_MIB = 1024 * 1024


def _size(uri: str, name: str, value: str) -> int:
    text = value.strip().upper()
    for suffix, factor in (("GIB", 1024**3), ("MIB", _MIB), ("KIB", 1024), ("B", 1)):
        if text.endswith(suffix):
            text, mult = text[: -len(suffix)], factor
            break
    else:
        mult = 1
    try:
        return int(float(text) * mult)
    except ValueError:
        raise LocationError(f"{uri}: {name}={value!r} is not a size (e.g. 64MiB)") from None


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
            size = _size(uri, name, value)
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


def _meta_to_headers(meta: Metadata, kind: str = FILE, link_target: str | None = None) -> dict[str, str]:
    out: dict[str, str] = dict(meta.user_metadata or {})
    if meta.mtime_ns is not None:
        out[META_PREFIX + "mtime-ns"] = str(meta.mtime_ns)
        out["mtime"] = f"{meta.mtime_ns / 1e9:.9f}"
    if meta.atime_ns is not None:
        out[META_PREFIX + "atime-ns"] = str(meta.atime_ns)
    if meta.mode is not None:
        out[META_PREFIX + "mode"] = f"{meta.mode:o}"
    if meta.uid is not None:
        out[META_PREFIX + "uid"] = str(meta.uid)
    if meta.gid is not None:
        out[META_PREFIX + "gid"] = str(meta.gid)
    # Owner names (Uid/Gid NAME or BOTH), quoted: S3 user metadata travels in ASCII HTTP headers.
    if meta.user_name is not None:
        out[META_PREFIX + "user"] = urllib.parse.quote(meta.user_name, safe="")
    if meta.group_name is not None:
        out[META_PREFIX + "group"] = urllib.parse.quote(meta.group_name, safe="")
    if kind == SYMLINK:
        out[META_PREFIX + "type"] = "symlink"
        out[META_PREFIX + "link-target"] = urllib.parse.quote(link_target or "", safe="/")
    return out


def _int(value: str | None, base: int = 10) -> int | None:
    try:
        return int(value, base) if value is not None else None
    except ValueError:
        return None


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (obstore's streaming GET): each read returns the
    next chunk, whatever ``size`` asks (the copy loop only needs chunks)."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        for chunk in self._chunks:
            data = bytes(chunk)
            if data:
                return data
        return b""


class S3Location(Location):
    scheme = "s3"
    owner_names = "metadata"  #: Uid/Gid NAME/BOTH: ds-user/ds-group stored beside ds-uid/ds-gid
    default_concurrency = 64
    uses_scan_hints = True
    keeps_directory_metadata = False
    directory_times_follow_children = False
    listing_is_snapshot = True

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        super().__init__(uri, conn_id)
        self.bucket, self.prefix, tuning = parse_s3_uri(uri)
        self.storage_class: str | None = tuning["storage_class"]
        self.part_size: int = tuning["part_size"]
        self.part_concurrency: int = tuning["part_concurrency"]
        self._settings: S3Settings | None = None
        #: path → ETag of each object this location wrote (recorded so later executions can skip HEADs).
        self.written_etags: dict[str, str] = {}

    # -- clients ----------------------------------------------------------------------------------
    def _resolve(self) -> "S3Settings":
        """The connection's settings and clients, shared by every location of this worker process."""
        if self._settings is None:
            try:
                self._settings = _clients_for(self.conn_id)
            except LocationError as exc:  # about the connection: say which location needed it
                raise LocationError(f"{self.uri}: {exc}") from None
        return self._settings

    @property
    def client(self):
        """One boto3 S3 client per connection and process (thread-safe; creating one costs ~0.3 s)."""
        return self._resolve().client

    @property
    def store(self):
        """One obstore S3Store per bucket (thread-safe; its connection pool is shared by all copy threads)."""
        settings = self._resolve()
        with _CACHE_LOCK:
            store = settings.stores.get(self.bucket)
            if store is None:
                from obstore.store import S3Store

                store = settings.stores[self.bucket] = S3Store(
                    self.bucket, config=settings.obstore_config, client_options=settings.obstore_client_options)
        return store

    def same_endpoint(self, other: Location) -> bool:
        """True when a server-side copy from ``other`` is possible (same endpoint and credentials)."""
        if not isinstance(other, S3Location):
            return False
        a, b = self._resolve(), other._resolve()
        return a.endpoint_url == b.endpoint_url and a.access_key == b.access_key

    def key(self, path: str) -> str:
        key = self.prefix + safe_relpath(path)
        if len(key.encode()) > MAX_KEY_BYTES:
            raise LocationError(f"{self.uri}: key for {path!r} is longer than S3's 1024 bytes")
        return key

    # -- checks -----------------------------------------------------------------------------------
    def _lite(self) -> Any:
        """The signed-HTTP fast path (:mod:`.s3_lite`), or None where only boto3 will do."""
        lite = self._resolve().lite
        return None if lite is None or lite.broken else lite

    def check(self, *, writable: bool, dry_run: bool = False) -> bool:
        # A prefix always "exists"; a dry run lists it (read permission) but writes no probe object.
        writable = writable and not dry_run
        probe = f"{self.prefix}.~ds-probe-{os.getpid()}-{threading.get_ident()}"
        lite = self._lite()
        if lite is not None:
            try:
                lite.list_page(self.bucket, self.prefix, max_keys=1)
                if writable:
                    lite.put(self.bucket, probe)
                    lite.delete(self.bucket, probe)
                return True
            except s3_lite.LiteUnavailable as exc:
                log.debug("s3://%s: the fast path could not check (%s); boto3 checks", self.bucket, exc)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
            if writable:
                self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"")
                self.client.delete_object(Bucket=self.bucket, Key=probe)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            hint = {"NoSuchBucket": "the bucket does not exist", "AccessDenied": "the credentials lack permission",
                    "InvalidAccessKeyId": "the access key is unknown", "SignatureDoesNotMatch": "the secret key is wrong"}
            raise LocationError(f"{self.uri}: {hint.get(code, code or str(exc))} "
                                f"(connection {self.conn_id or 'from the environment'})") from None
        except BotoCoreError as exc:
            raise LocationError(f"{self.uri}: cannot reach S3 ({type(exc).__name__}: {exc})") from None
        return True

    def _pages(self, prefix: str) -> Iterator[list[dict[str, Any]]]:
        """Every ListObjectsV2 page under ``prefix`` (its ``Contents``, keys decoded): through the fast path,
        and from the first page it cannot handle on, through boto3 (which raises the errors that count)."""
        lite, token = self._lite(), None
        if lite is not None:
            while True:
                try:
                    contents, next_token = lite.list_page(self.bucket, prefix, token)
                except s3_lite.LiteUnavailable as exc:
                    log.debug("s3://%s: listing goes on through boto3 (%s)", self.bucket, exc)
                    break
                yield contents
                if next_token is None:
                    return
                token = next_token
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if token is not None:
            kwargs["ContinuationToken"] = token
        while True:
            page = self.client.list_objects_v2(**kwargs)
            yield page.get("Contents") or []
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def contains(self, other: Location) -> bool:
        if not isinstance(other, S3Location) or other.bucket != self.bucket:
            return False
        if self._resolve().endpoint_url != other._resolve().endpoint_url:
            return False
        return other.prefix.startswith(self.prefix)

    # -- reading ----------------------------------------------------------------------------------
    def scan(self, batch_size: int = 10_000, hints: ScanHints | None = None,
             needs_metadata: Callable[[str, int], bool] | None = None) -> Iterator[pa.RecordBatch]:
        # ListObjectsV2: keys exactly as stored (``dir/`` markers keep their slash, control characters
        # arrive URL-encoded and decoded), a page of 1,000 at a time, straight into Arrow.
        # POSIX metadata lives in user metadata, which only HEAD returns: objects whose ETag matches what
        # an earlier execution saw take it from ``hints`` instead, so a re-run costs LISTs, not HEADs.
        with ThreadPoolExecutor(max_workers=HEAD_CONCURRENCY, thread_name_prefix="s3head") as pool:
            for contents in self._pages(self.prefix):
                if contents:
                    yield self._listing(contents, pool, hints, needs_metadata)

    def _listing(self, contents: list[dict[str, Any]], pool: ThreadPoolExecutor,
                 hints: ScanHints | None = None, needs_metadata: Callable[[str, int], bool] | None = None
                 ) -> pa.RecordBatch:
        keys = [c["Key"] for c in contents]
        sizes = [c["Size"] for c in contents]
        etags = [c.get("ETag") for c in contents]
        modified = [int(c["LastModified"].timestamp() * 1_000_000_000) for c in contents]
        rows: list[dict[str, Any]] = []
        heads: list[tuple[int, str]] = []
        plen = len(self.prefix)
        for key, size, mtime, etag in zip(keys, sizes, modified, etags):
            rel = key[plen:]
            if not rel or rel.startswith(".~ds-"):
                continue
            is_dir = rel.endswith("/")
            rel = rel[:-1] if is_dir else rel
            row = {"path": rel, "type": DIR if is_dir else FILE, "size": 0 if is_dir else size, "mtime_ns": mtime,
                   "atime_ns": None, "mode": None, "uid": None, "gid": None, "link_target": None, "error": None,
                   "etag": etag}
            try:
                safe_relpath(rel)
                rel.encode("utf-8")
            except (UnsafePathError, UnicodeEncodeError) as exc:
                row.update(path=_printable(rel), error=f"unsafe object key {key!r} refused: {exc}")
                rows.append(row)
                continue
            known = hints.get(rel, etag) if hints is not None and etag else None
            if known is not None and (known["type"] == DIR) == is_dir:
                row.update({k: v for k, v in known.items() if v is not None})
                if row["type"] != FILE:
                    row["size"] = 0
            elif needs_metadata is not None and not is_dir and size > 0 and not needs_metadata(rel, size):
                # Nothing to compare it with (new, or a different size): metadata comes with the GET.
                row["meta_known"] = False
            else:
                heads.append((len(rows), key))
            rows.append(row)
        for index, head in zip([i for i, _ in heads], pool.map(self._head_meta, [k for _, k in heads])):
            if head is None:
                continue  # deleted between list and head: keep what the listing said
            head.pop("user_metadata", None)
            rows[index].update(head)
        return pa.RecordBatch.from_pylist(rows, schema=LISTING_SCHEMA)

    def _head(self, key: str) -> dict[str, Any] | None:
        lite = self._lite()
        if lite is not None:
            try:
                return lite.head(self.bucket, key)
            except s3_lite.LiteUnavailable as exc:
                log.debug("s3://%s/%s: HEAD through boto3 (%s)", self.bucket, key, exc)
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _head_meta(self, key: str) -> dict[str, Any] | None:
        head = self._head(key)
        return None if head is None else self._meta_from_head(head, key.endswith("/"))

    @staticmethod
    def _meta_from_head(head: dict[str, Any], is_dir: bool) -> dict[str, Any]:
        m = head.get("Metadata") or {}
        out: dict[str, Any] = {}
        theirs = {k: v for k, v in m.items() if not k.startswith(META_PREFIX) and k != "mtime"}
        if theirs:
            out["user_metadata"] = theirs
        mtime = _int(m.get(META_PREFIX + "mtime-ns"))
        if mtime is not None:
            out["mtime_ns"] = mtime
        for field, name, base in (("atime_ns", "atime-ns", 10), ("mode", "mode", 8), ("uid", "uid", 10), ("gid", "gid", 10)):
            value = _int(m.get(META_PREFIX + name), base)
            if value is not None:
                out[field] = value
        for field, name in (("user_name", "user"), ("group_name", "group")):
            if m.get(META_PREFIX + name):
                out[field] = urllib.parse.unquote(m[META_PREFIX + name])
        if not is_dir and m.get(META_PREFIX + "type") == "symlink":
            out.update(type=SYMLINK, size=0, link_target=urllib.parse.unquote(m.get(META_PREFIX + "link-target", "")))
        return out

    def stat(self, path: str) -> StatResult | None:
        key = self.key(path)
        head = self._head(key)
        is_dir = False
        if head is None:
            head = self._head(key + "/")
            is_dir = head is not None
        if head is None:
            return None
        return self._stat_from_head(head, is_dir)

    @classmethod
    def _stat_from_head(cls, head: dict[str, Any], is_dir: bool = False) -> StatResult:
        """A HEAD (or GET) response as a StatResult: our ds-* metadata where present, else S3's own."""
        meta = cls._meta_from_head(head, is_dir)
        mtime = meta.get("mtime_ns", int(head["LastModified"].timestamp() * 1_000_000_000))
        kind = meta.get("type", DIR if is_dir else FILE)
        return StatResult(kind, 0 if kind != FILE else head["ContentLength"], mtime, meta.get("atime_ns"),
                          meta.get("mode"), meta.get("uid"), meta.get("gid"), meta.get("link_target"),
                          etag=head.get("ETag"), user_metadata=meta.get("user_metadata"),
                          user_name=meta.get("user_name"), group_name=meta.get("group_name"))

    def _written(self, key: str, etag: str | None) -> None:
        if etag:
            self.written_etags[key[len(self.prefix):].rstrip("/")] = etag if etag.startswith('"') else f'"{etag}"'

    def etag_is_md5(self, size: int) -> bool:
        # A single PUT (no multipart) without SSE-KMS/SSE-C: S3 and the S3-compatible stores return the MD5.
        # Where a bucket encrypts with KMS the ETags differ and VERIFYING falls back to HEAD: slower, never wrong.
        return size <= self.part_size

    def list_etags(self) -> dict[str, str]:
        etags: dict[str, str] = {}
        plen = len(self.prefix)
        for contents in self._pages(self.prefix):
            for obj in contents:
                etags[obj["Key"][plen:]] = obj["ETag"].strip('"')
        return etags

    def get_tags(self, path: str) -> dict[str, str]:
        """The object's tags (ObjectTags=PRESERVE carries them to an S3 destination)."""
        resp = self.client.get_object_tagging(Bucket=self.bucket, Key=self.key(path))
        return {t["Key"]: t["Value"] for t in resp.get("TagSet", [])}

    def native_checksum(self, path: str) -> str | None:
        """The object's full-object CRC64NVME as S3 reports it (hex), without downloading it."""
        head = self._head(self.key(path))
        if head is None:
            raise FileNotFoundError(path)
        return _full_object_crc(head)

    def open_read(self, path: str) -> IO[bytes]:
        import obstore

        key = self.key(path)
        if not _obstore_safe(key):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return _ChunkReader(body.iter_chunks(checksum.CHUNK))
        return _ChunkReader(iter(obstore.get(self.store, key).stream(min_chunk_size=checksum.CHUNK)))

    def open_version(self, path: str, etag: str) -> IO[bytes]:
        """GET with If-Match: the object as listed, or ChangedSinceListingError (one request, no HEAD)."""
        import obstore
        from botocore.exceptions import ClientError

        key = self.key(path)
        changed = ChangedSinceListingError(f"{path}: changed at the source since PREPARING (ETag {etag} no longer "
                                           "matches); not copied, the next execution copies the new version")
        try:
            if not _obstore_safe(key):
                resp = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=etag)
                reader = _ChunkReader(resp["Body"].iter_chunks(checksum.CHUNK))
                reader.stat = self._stat_from_head(resp)
                return reader
            result = obstore.get(self.store, key, options={"if_match": etag})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise changed from None
            raise
        except Exception as exc:  # obstore's PreconditionError / NotFoundError
            if type(exc).__name__ == "PreconditionError":
                raise changed from None
            if type(exc).__name__ == "NotFoundError" or isinstance(exc, FileNotFoundError):
                raise FileNotFoundError(f"{path}: vanished from the source after PREPARING") from None
            raise
        reader = _ChunkReader(iter(result.stream(min_chunk_size=checksum.CHUNK)))
        # The GET carries the version's metadata: what the copy applies, even where PREPARING skipped the HEAD.
        info = result.meta
        user = {k: v for k, v in result.attributes.items() if k not in _STANDARD_ATTRIBUTES}
        reader.stat = self._stat_from_head({"Metadata": user, "LastModified": info["last_modified"],
                                            "ContentLength": info["size"], "ETag": info.get("e_tag") or etag})
        return reader

    # -- writing ----------------------------------------------------------------------------------
    def write(self, path: str, chunks: Iterator[bytes], meta: Metadata, *, tag: str,
              before_commit: Callable[[int], None] | None = None, overwrite: bool = True,
              kind: str = FILE, link_target: str | None = None) -> int:
        """Small objects: buffered, then one PUT. Large ones: a multipart upload completed only when whole.

        Either way nothing is visible at the key until ``before_commit`` has passed; S3 computes and checks
        the CRC64NVME of the body, so a corrupted transfer is rejected by the server.
        """
        key = self.key(path)
        headers = _meta_to_headers(meta, kind, link_target)
        if_none_match = not overwrite  # OverwriteMode=NEVER: a conditional write, never a clobber
        buffer = bytearray()
        iterator = iter(chunks)
        for chunk in iterator:
            buffer += chunk
            if len(buffer) > self.part_size:
                return self._multipart(key, buffer, iterator, headers, before_commit, if_none_match, meta.tags)
        if before_commit is not None:
            before_commit(len(buffer))
        self._put(key, bytes(buffer), headers, if_none_match, meta.tags)
        return len(buffer)

    def _object_args(self, tags: dict[str, str] | None) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        if tags:
            args["Tagging"] = urllib.parse.urlencode(tags)
        return args

    def _put(self, key: str, body: bytes, headers: dict[str, str], if_none_match: bool,
             tags: dict[str, str] | None = None) -> None:
        import obstore

        lite = self._lite()
        if key.endswith("/") and not body and not tags and not self.storage_class and lite is not None:
            # A directory marker: one signed PUT, no boto3 client needed for it.
            try:
                self._written(key, lite.put(self.bucket, key, b"", headers, if_none_match))
                return
            except s3_lite.LiteUnavailable as exc:
                log.debug("s3://%s/%s: PUT through boto3 (%s)", self.bucket, key, exc)
        if not _obstore_safe(key) or self.storage_class:
            # boto3 for what obstore cannot express: odd keys, directory markers, a storage class.
            extra = {"IfNoneMatch": "*"} if if_none_match else {}
            resp = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=headers,
                                          ChecksumAlgorithm="CRC64NVME", **self._object_args(tags), **extra)
            self._written(key, resp.get("ETag"))
            return
        try:
            result = obstore.put(self.store, key, body, attributes=headers, use_multipart=False, tags=tags or None,
                                 mode="create" if if_none_match else None)
            self._written(key, result.get("e_tag"))
        except Exception as exc:  # obstore raises its own types: turn them into clear, path-naming errors
            if type(exc).__name__ == "AlreadyExistsError":
                raise FileExistsError(f"{key} already exists (OverwriteMode=NEVER)") from None
            raise OSError(f"PUT s3://{self.bucket}/{key} failed: {exc}") from None

    def _multipart(self, key: str, first: bytearray, rest: Iterator[bytes], headers: dict[str, str],
                   before_commit: Callable[[int], None] | None, if_none_match: bool,
                   tags: dict[str, str] | None = None) -> int:
        part_size, in_flight = self.part_size, self.part_concurrency
        api = self._multipart_api(key, headers, tags)
        total = 0
        try:
            with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="s3part") as pool:
                futures = []
                # Chunks are gathered in a list and joined once per part: one copy of the bytes, not four
                # (bytearray growth, slice, bytes(), and shifting the rest down).
                pending: list[bytes | memoryview] = [bytes(first)] if first else []
                held, number = len(first), 0
                for chunk in itertools.chain(rest, (None,)):
                    if chunk is not None:
                        pending.append(chunk)
                        held += len(chunk)
                    while held >= part_size or (chunk is None and (held or number == 0)):
                        joined = b"".join(pending)
                        body, tail = joined[:part_size], joined[part_size:]
                        pending, held = ([tail] if tail else []), len(tail)
                        number += 1
                        total += len(body)
                        # Bound memory: at most in_flight parts in flight.
                        while sum(1 for f in futures if not f.done()) >= in_flight:
                            next(f for f in futures if not f.done()).result()
                        futures.append(pool.submit(api.send, number, body))
                        if chunk is None and not held:
                            break
                sent = [f.result() for f in futures]
            # The whole object's CRC64NVME from the parts' (no second pass over the bytes).
            whole = checksum.new_hasher()
            for _part, crc, n in sent:
                whole.value = checksum.combine(whole.value, crc, n)
            if before_commit is not None:
                before_commit(total)
            self._written(key, api.complete([part for part, _crc, _n in sent], whole.base64(), if_none_match))
        except BaseException:
            try:
                api.abort()
            except Exception:  # noqa: BLE001 - the original error matters more; lifecycle rules catch leftovers
                log.warning("could not abort multipart upload of s3://%s/%s", self.bucket, key)
            raise
        return total

    def _multipart_api(self, key: str, headers: dict[str, str], tags: dict[str, str] | None) -> "_Multipart":
        """A started multipart upload: through the signed-HTTP fast path where it can start one, else boto3."""
        lite = self._lite()
        if lite is not None:
            extra = {}
            if self.storage_class:
                extra["x-amz-storage-class"] = self.storage_class
            if tags:
                extra["x-amz-tagging"] = urllib.parse.urlencode(tags)
            try:
                return _LiteMultipart(lite, self.bucket, key, lite.create_multipart(self.bucket, key, headers, extra))
            except s3_lite.LiteUnavailable as exc:
                log.debug("s3://%s/%s: multipart upload through boto3 (%s)", self.bucket, key, exc)
        client = self.client
        upload = client.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=headers,
                                                ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT",
                                                **self._object_args(tags))
        return _BotoMultipart(client, self.bucket, key, upload["UploadId"])

    def copy_from(self, source: "S3Location", path: str, meta_for: Callable[[StatResult], Metadata], *,
                  expect_etag: str | None, if_none_match: bool = False, keep_tags: bool = True
                  ) -> tuple[int, str | None]:
        """Server-side copy (multipart copy above ``COPY_PART_SIZE``); returns (bytes, the source's CRC64NVME
        hex or None).

        User metadata of the source object is kept (ours is refreshed); tags are copied with
        ObjectTags=PRESERVE and dropped with NONE.
        """
        src_key, key = source.key(path), self.key(path)
        head = source._head(src_key)
        if head is None or (expect_etag and head.get("ETag") != expect_etag):
            raise FileNotFoundError(f"{path}: changed or vanished at the source before the copy")
        size = head["ContentLength"]
        if if_none_match and self._head(key) is not None:
            raise FileExistsError(f"{key} already exists (OverwriteMode=NEVER)")
        # The source object's own user metadata travels with it; ours (ds-*) is written from its HEAD.
        meta = meta_for(self._stat_from_head(head))
        theirs = self._meta_from_head(head, False).get("user_metadata") or {}
        headers = {**theirs, **_meta_to_headers(meta)}
        lite = self._lite() if size <= COPY_PART_SIZE else None
        if lite is not None:
            try:
                self._written(key, lite.copy_object(self.bucket, key, source.bucket, src_key, headers, head["ETag"],
                                                    keep_tags, self.storage_class))
                return size, _full_object_crc(head)
            except s3_lite.LiteUnavailable as exc:
                log.debug("s3://%s/%s: CopyObject through boto3 (%s)", self.bucket, key, exc)
        client = self.client
        copy_source = {"Bucket": source.bucket, "Key": src_key}
        if size <= COPY_PART_SIZE:
            tagging = {"TaggingDirective": "COPY"} if keep_tags else {"TaggingDirective": "REPLACE", "Tagging": ""}
            storage = {"StorageClass": self.storage_class} if self.storage_class else {}
            resp = client.copy_object(Bucket=self.bucket, Key=key, CopySource=copy_source, Metadata=headers,
                                      MetadataDirective="REPLACE", ChecksumAlgorithm="CRC64NVME",
                                      CopySourceIfMatch=head["ETag"], **tagging, **storage)
            self._written(key, (resp.get("CopyObjectResult") or {}).get("ETag"))
        else:
            tags = source.get_tags(path) if keep_tags else None
            upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=headers,
                                                       ChecksumAlgorithm="CRC64NVME",
                                                       **self._object_args(tags))["UploadId"]
            try:
                parts, offset, number = [], 0, 0
                while offset < size:
                    number += 1
                    end = min(offset + COPY_PART_SIZE, size) - 1
                    r = client.upload_part_copy(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                                CopySource=copy_source, CopySourceRange=f"bytes={offset}-{end}",
                                                CopySourceIfMatch=head["ETag"])
                    parts.append({"PartNumber": number, "ETag": r["CopyPartResult"]["ETag"]})
                    offset = end + 1
                done = client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                        MultipartUpload={"Parts": parts})
                self._written(key, done.get("ETag"))
            except BaseException:
                client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                raise
        # The source's own checksum, if S3 keeps one: VERIFYING compares it with the copy's. If the source
        # has none (written without one), VERIFYING reads the source to compute it.
        return size, _full_object_crc(head)

    def symlink(self, path: str, target: str, meta: Metadata, *, tag: str) -> None:
        self.write(path, iter(()), meta, tag=tag, kind=SYMLINK, link_target=target)

    def mkdir(self, path: str, meta: Metadata | None = None) -> None:
        # PREPARING found no marker here: one PUT, with the directory's metadata (a marker does not change
        # when objects are written below it, so FINALIZE has nothing left to do for it).
        self._put(self.key(path) + "/", b"", _meta_to_headers(meta, DIR) if meta is not None else {}, False)

    def set_metadata(self, path: str, meta: Metadata, *, is_dir: bool = False) -> list[str]:
        key = self.key(path) + ("/" if is_dir else "")
        head = self._head(key)
        if head is None:
            if is_dir:
                return []  # an implied directory (no marker object) has no metadata to set
            raise FileNotFoundError(path)
        current = head.get("Metadata") or {}
        wanted = {**current, **_meta_to_headers(meta)}
        if wanted == current:
            return []
        if is_dir:
            self._put(key, b"", wanted, False)
        else:
            self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                                    Metadata=wanted, MetadataDirective="REPLACE", CopySourceIfMatch=head["ETag"],
                                    ChecksumAlgorithm="CRC64NVME")
        return []

    def delete(self, path: str, *, is_dir: bool) -> None:
        key = self.key(path) + ("/" if is_dir else "")
        self.client.delete_object(Bucket=self.bucket, Key=key)


class _Multipart:
    """One multipart upload in progress: ``send`` a part (returns the part's entry for the completion, its
    CRC64NVME as an int and its length), ``complete`` with the whole object's CRC64NVME, or ``abort``."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str) -> None:
        self.client, self.bucket, self.key, self.upload_id = client, bucket, key, upload_id

    def send(self, number: int, body: bytes) -> tuple[Any, int, int]:
        part_hash = checksum.new_hasher()
        part_hash.update(body)
        return self._upload(number, body, part_hash.base64()), part_hash.value, len(body)

    def _upload(self, number: int, body: bytes, crc64: str) -> Any:
        """Upload one part with its CRC64NVME (base64); return its entry for the completion."""
        raise NotImplementedError

    def complete(self, parts: list[Any], crc64: str, if_none_match: bool) -> str | None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class _LiteMultipart(_Multipart):
    def _upload(self, number: int, body: bytes, crc64: str) -> Any:
        return number, self.client.upload_part(self.bucket, self.key, self.upload_id, number, body, crc64), crc64

    def complete(self, parts: list[Any], crc64: str, if_none_match: bool) -> str | None:
        return self.client.complete_multipart(self.bucket, self.key, self.upload_id, parts, crc64, if_none_match)

    def abort(self) -> None:
        self.client.abort_multipart(self.bucket, self.key, self.upload_id)


class _BotoMultipart(_Multipart):
    def _upload(self, number: int, body: bytes, crc64: str) -> Any:
        resp = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number,
                                       Body=body, ChecksumCRC64NVME=crc64)
        return {"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC64NVME": resp.get("ChecksumCRC64NVME", crc64)}

    def complete(self, parts: list[Any], crc64: str, if_none_match: bool) -> str | None:
        from botocore.exceptions import ClientError

        extra = {"IfNoneMatch": "*"} if if_none_match else {}
        try:
            done = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts},
                ChecksumCRC64NVME=crc64, ChecksumType="FULL_OBJECT", **extra)
        except ClientError as exc:
            if if_none_match and exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise FileExistsError(f"{self.key} already exists (OverwriteMode=NEVER)") from None
            raise
        return done.get("ETag")

    def abort(self) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)


#: obstore's GET attributes that are HTTP headers, not user metadata.
_STANDARD_ATTRIBUTES = {"Content-Disposition", "Content-Encoding", "Content-Language", "Content-Type",
                        "Cache-Control", "Storage-Class"}


def _full_object_crc(head: dict[str, Any]) -> str | None:
    value = head.get("ChecksumCRC64NVME")
    if not value or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    return checksum.from_s3_base64(value)


def _obstore_safe(key: str) -> bool:
    """object_store refuses keys with control characters, escapes '%' and drops a trailing '/' (a
    directory marker would become a file): boto3 takes those keys."""
    return key.isprintable() and "%" not in key and not key.endswith("/")


_CACHE_LOCK = threading.Lock()
_CACHE: dict[str | None, tuple[float, "S3Settings"]] = {}
#: Credentials from a connection may be temporary (an assumed role): re-read them after this long.
CLIENT_TTL_SECONDS = 600.0


class S3Settings:
    """One connection's endpoint, credentials and clients, shared by every location of a worker process.

    ``lite`` (the signed-HTTP fast path, see :mod:`.s3_lite`) and obstore's config are
    ready at once; the boto3 client is built on first use, so a run that only lists (a re-run with
    nothing to copy, given credentials in the environment) never imports boto3.
    """

    def __init__(self, *, endpoint_url: str | None, region: str, credentials: Callable[[], tuple[str, str, str | None]],
                 verify: Any, s3_conf: dict[str, Any], botocore_config: Any = None, session: Any = None,
                 has_proxies: bool = False, conn_id: str | None = None) -> None:
        """``credentials`` returns (access key, secret key, session token or None), fresh at each call."""
        access_key, secret_key, token = credentials()
        self.endpoint_url, self.region, self.access_key, self.verify = endpoint_url, region, access_key, verify
        self.conn_id = conn_id
        self._session, self._botocore_config, self._credentials = session, botocore_config, credentials
        self._client: Any = None
        self._lock = threading.Lock()
        self.stores: dict[str, Any] = {}
        self.lite = (s3_lite.S3Lite(endpoint_url, region, credentials, verify, s3_conf.get("addressing_style"))
                     if access_key and s3_lite.usable(s3_conf, has_proxies) else None)
        ob_config: dict[str, Any] = {"region": region, "checksum_algorithm": "CRC64NVME"}
        if access_key:
            ob_config.update(access_key_id=access_key, secret_access_key=secret_key)
        if token:
            ob_config["session_token"] = token
        ob_client: dict[str, Any] = {"pool_max_idle_per_host": "64"}
        if endpoint_url:
            ob_config["endpoint"] = endpoint_url
            ob_config["virtual_hosted_style_request"] = s3_conf.get("addressing_style") == "virtual"
            if endpoint_url.startswith("http://"):
                ob_client["allow_http"] = True
        if verify is False:
            ob_client["allow_invalid_certificates"] = True
        elif isinstance(verify, str):  # a CA bundle path, as boto3 takes it: obstore trusts the same roots
            try:
                with open(verify, "rb") as fh:
                    ob_client["root_certificate"] = fh.read()
            except OSError as exc:
                raise LocationError(f"connection {conn_id!r}: cannot read the CA bundle {verify!r}: {exc.strerror}") from None
        self.obstore_config, self.obstore_client_options = ob_config, ob_client

    @property
    def client(self) -> Any:
        """The boto3 S3 client (thread-safe), built on first use: importing boto3 and building a client
        costs ~0.35 s."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        from botocore.config import Config

        session, explicit = self._session, {}
        if session is None:  # credentials read without boto3 (environment, a simple connection): hand them over
            import boto3

            session = boto3.Session()
            key, secret, token = self._credentials()
            explicit = {"aws_access_key_id": key, "aws_secret_access_key": secret, "aws_session_token": token}
        cfg = Config(max_pool_connections=64, retries={"max_attempts": 5, "mode": "standard"},
                     request_checksum_calculation="when_required", response_checksum_validation="when_required")
        if isinstance(self._botocore_config, dict):  # a connection's config_kwargs, as the hook reads them
            cfg = Config(**self._botocore_config).merge(cfg)
        elif self._botocore_config is not None:
            cfg = self._botocore_config.merge(cfg)
        _use_fast_timestamps(session)
        client = session.client("s3", endpoint_url=self.endpoint_url, region_name=self.region, verify=self.verify,
                                config=cfg, **explicit)
        _lighter_listings(client)
        return client


def _environment_only() -> bool:
    """True when boto3's credential chain would stop at the environment variables and no profile or config
    file could change the region or endpoint: then nothing needs boto3 to read them."""
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        return False
    if os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE"):
        return False
    return not _aws_config_file_exists()


def _aws_config_file_exists() -> bool:
    """Whether boto3 would read an AWS config file (which may set a region, endpoint or profile)."""
    config = os.environ.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")
    return os.path.exists(config)


#: Extra keys of an AWS connection that :func:`_simple_connection` reads exactly as the Amazon provider does.
_SIMPLE_EXTRA = {"endpoint_url", "region_name", "verify", "aws_session_token", "config_kwargs"}


def _simple_connection(conn_id: str) -> S3Settings | None:
    """Settings for an AWS connection that holds a key pair and nothing boto3 must interpret (no role to
    assume, profile, per-service config or botocore options beyond the addressing style): read without the
    Amazon provider's hook, so a task that only lists, HEADs and PUTs through obstore never imports boto3
    (~0.35 s per task process). Any other connection returns None and goes through the hook."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - the hook raises the error users know for a missing connection
        return None
    extra = conn.extra_dejson or {}
    config_kwargs = extra.get("config_kwargs")
    if config_kwargs is not None and (not isinstance(config_kwargs, dict) or set(config_kwargs) - {"s3"}
                                      or set(config_kwargs.get("s3") or {}) - {"addressing_style"}):
        return None
    if conn.conn_type != "aws" or not (conn.login and conn.password) or set(extra) - _SIMPLE_EXTRA:
        return None
    env = os.environ
    region = extra.get("region_name") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region is None:
        if _aws_config_file_exists():
            return None  # a region from an AWS config file: boto3 knows where to look
        region = "us-east-1"
    key, secret, token = conn.login, conn.password, extra.get("aws_session_token") or None
    return S3Settings(endpoint_url=extra.get("endpoint_url") or None, region=region,
                      credentials=lambda: (key, secret, token), verify=extra.get("verify"), s3_conf=(config_kwargs or {}).get("s3") or {},
                      botocore_config=config_kwargs or None, conn_id=conn_id)


def _clients_for(conn_id: str | None) -> S3Settings:
    """Read an Airflow AWS connection (or the environment) once per process: endpoint, credentials, clients.

    Everything the Amazon provider's connection holds is honoured: credentials (or a role to assume),
    region, ``endpoint_url`` for S3-compatible stores, ``config_kwargs.s3.addressing_style``, ``verify``.
    """
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = _CACHE.get(conn_id)
        if hit is not None and now - hit[0] < CLIENT_TTL_SECONDS:
            return hit[1]
        if conn_id is None and _environment_only():
            # Credentials in the environment and no AWS config file: read them as boto3 would, without it.
            env = os.environ
            key, secret = env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
            token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
            settings = S3Settings(
                endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
                region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                credentials=lambda: (key, secret, token), verify=env.get("AWS_CA_BUNDLE") or None, s3_conf={})
            _CACHE[conn_id] = (now, settings)
            return settings
        if conn_id is None:
            # No connection: boto3's own chain (environment, profile, instance role). Importing Airflow is
            # not needed for that, which keeps the CLI quick to start.
            import boto3

            session = boto3.Session()
            verify = os.environ.get("AWS_CA_BUNDLE") or None  # what boto3 itself would trust
            botocore_config = None
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            region = session.region_name or "us-east-1"
        else:
            simple = _simple_connection(conn_id)
            if simple is not None:
                _CACHE[conn_id] = (now, simple)
                return simple
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

            hook = AwsBaseHook(aws_conn_id=conn_id, client_type="s3")
            session = hook.get_session()
            verify = hook.verify
            botocore_config = hook.conn_config.botocore_config
            endpoint = hook.conn_config.get_service_endpoint_url("s3")
            region = hook.conn_region_name or "us-east-1"
        found = session.get_credentials()
        if found is None:
            raise LocationError(
                f"no AWS credentials for connection {conn_id!r}: give the S3 location an Airflow AWS connection "
                "(conn_id) with login/password or a role, or set credentials in the environment boto3 reads")
        s3_conf = (getattr(botocore_config, "s3", None) or {}) if botocore_config else {}

        def fresh() -> tuple[str, str, str | None]:
            current = found.get_frozen_credentials()  # refreshed by botocore when temporary ones expire
            return current.access_key, current.secret_key, current.token

        settings = S3Settings(endpoint_url=endpoint, region=region, credentials=fresh, verify=verify,
                              s3_conf=s3_conf, botocore_config=botocore_config, session=session,
                              has_proxies=bool(getattr(botocore_config, "proxies", None)), conn_id=conn_id)
        _CACHE[conn_id] = (now, settings)
        return settings


def _fast_timestamp(value: Any) -> Any:
    """ISO 8601 timestamps (every ``LastModified`` of a listing) through the C parser of ``datetime``.

    botocore's default goes through ``dateutil``: ~170 µs per timestamp, most of a 5,000-object re-run's
    LIST time. HTTP-date headers (HEAD) and anything unusual still go to botocore's own parser.
    """
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        try:
            parsed = datetime.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    from botocore.parsers import DEFAULT_TIMESTAMP_PARSER  # the rare case: imported here, not per timestamp

    return DEFAULT_TIMESTAMP_PARSER(value)


def _use_fast_timestamps(session: Any) -> None:
    """Make clients of this boto3 session parse response timestamps with :func:`_fast_timestamp`."""
    core = getattr(session, "_session", session)  # boto3.Session wraps a botocore session
    try:
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_fast_timestamp)
    except Exception:  # noqa: BLE001 - an optimisation only: botocore's parser stays correct
        log.debug("could not install the fast timestamp parser", exc_info=True)


def _lighter_listings(client: Any) -> None:
    """Make this client's listings cheaper: no second XML parse of complete pages looking for an error,
    and the objects of each page parsed by :func:`_parse_listing_page`.

    S3 may answer 200 with an ``<Error>`` body, so botocore parses each response body once to look for one
    (a third of a 1,000-key page's CPU) before parsing it again for the result. A ListObjectsV2 body that
    starts with ``<ListBucketResult`` and ends with ``</ListBucketResult>`` is neither an error nor
    truncated; every other response (CopyObject, CompleteMultipartUpload, …) keeps botocore's check.
    """
    from botocore import handlers

    original = getattr(handlers, "_handle_200_error", None)
    if original is None:
        return

    def check(operation_model: Any, response_dict: Any, **kwargs: Any) -> None:
        if operation_model.name == "ListObjectsV2" and response_dict and response_dict.get("status_code") == 200:
            body = response_dict.get("body") or b""
            head = body[:256].lstrip()
            if head.startswith(b"<?xml"):
                head = head[head.find(b"?>") + 2:].lstrip()
            if head.startswith(b"<ListBucketResult") and body.rstrip().endswith(b"</ListBucketResult>"):
                return
        original(operation_model=operation_model, response_dict=response_dict, **kwargs)

    events = client.meta.events
    events.unregister("before-parse.s3.*", original)
    events.register_first("before-parse.s3.*", check)
    events.register("before-parse.s3.ListObjectsV2", _parse_listing_page)


_CONTENTS = re.compile(rb"<Contents>.*?</Contents>", re.S)


def _parse_listing_page(operation_model: Any, response_dict: Any, customized_response_dict: Any,
                        **kwargs: Any) -> None:
    """Parse a ListObjectsV2 page's ``Contents`` with ElementTree's C parser (~14 ms per 1,000 objects,
    against ~40 ms through botocore's generic shape walk): 20 s of CPU saved per million objects listed.

    The objects go to ``customized_response_dict`` (botocore merges it into the parsed page, before its
    own handlers URL-decode the keys) and leave the body, so botocore parses only the page's few other
    fields (continuation token, truncation). Each object carries ``Key``, ``Size``, ``ETag``,
    ``LastModified`` and ``StorageClass``. Anything unexpected is left to botocore untouched.
    """
    body = response_dict.get("body") if response_dict and response_dict.get("status_code") == 200 else None
    if not body or b"<Contents>" not in body:
        return
    document = s3_lite.xml_document(body)
    if document is None:
        return  # botocore's parser and 200-error check deal with it
    root, ns = document
    if root.tag != ns + "ListBucketResult":
        return
    contents = s3_lite.listing_contents(root, ns, _fast_timestamp)
    if contents is None:
        return
    customized_response_dict["Contents"] = contents
    response_dict["body"] = _CONTENTS.sub(b"", body)


def _printable(key: str) -> str:
    return key.replace("\x00", "\\x00")
