"""Amazon S3 and S3-compatible object stores (MinIO, SeaweedFS, Ceph, …): ``s3://bucket/prefix``.

Credentials, region, endpoint, addressing style and TLS settings come from an Airflow AWS connection
or from the environment boto3 honours when no connection id is given (:mod:`.settings`). Every request
goes through the connection's one transport (:mod:`.transport`: our SigV4 client, or boto3 where that
client cannot reproduce the connection), which raises only the vocabulary of :mod:`airflow_datasync.errors`.

POSIX metadata lives in user metadata (``x-amz-meta-*``) so an S3 → file system round trip restores it:
``ds-mtime-ns``, ``ds-atime-ns``, ``ds-mode`` (octal), ``ds-uid``, ``ds-gid``; ``ds-type: symlink`` with
``ds-link-target`` (percent-encoded) marks a symlink; ``mtime`` (seconds, as rclone writes it) is added
for other tools. Directories are empty ``key/`` objects, as DataSync writes them.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync import checksum
from airflow_datasync.locations.base import (
    DIR,
    FILE,
    S3_TAGS,
    S3_USER_METADATA,
    SYMLINK,
    TEMP_PREFIX,
    UPLOAD,
    AlreadyExistsError,
    Capabilities,
    ChangedSinceListingError,
    Cleanup,
    ConnectionLostError,
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
from airflow_datasync.locations.s3 import key_ranges
from airflow_datasync.locations.s3.headers import (
    full_object_crc,
    meta_from_head,
    meta_to_headers,
)
from airflow_datasync.locations.s3.key_names import BACKSLASH_REASON, keeps_backslashes
from airflow_datasync.locations.s3.multipart import Multipart
from airflow_datasync.locations.s3.ranges import S3RangedWrites
from airflow_datasync.locations.s3.settings import S3Settings, settings_for
from airflow_datasync.locations.s3.transport import Part, S3Transport
from airflow_datasync.locations.s3.uri import COPY_PART_SIZE, MAX_KEY_BYTES, parse_s3_uri

log = logging.getLogger("airflow_datasync")

HEAD_CONCURRENCY = 32
#: The LISTING_SCHEMA columns a listing fills, in the order :meth:`S3Location._listing` builds its rows.
_LISTED = ("path", "type", "size", "mtime_ns", "atime_ns", "mode", "uid", "gid", "link_target", "error", "etag",
           "meta_known")
#: Where in such a row each of :attr:`ScanHints.FIELDS` goes.
_KNOWN_AT = tuple(_LISTED.index(name) for name in ScanHints.FIELDS)


#: What S3 keeps beside the data and a copy carries: the object's own user metadata (with every HEAD or GET)
#: and its tags (a request of their own).
S3_EXTRAS = frozenset({S3_USER_METADATA, S3_TAGS})


class S3Location(S3RangedWrites, Location):
    scheme = "s3"
    #: Per-request latency dominates: many copies in flight. Owner names (Uid/Gid NAME/BOTH) are stored as
    #: ds-user/ds-group beside ds-uid/ds-gid. Directory markers are objects that writes below them do not
    #: change, and S3-compatible stores that are file systems underneath (SeaweedFS) drop their metadata.
    capabilities = Capabilities(concurrency=64, owner_names="metadata", keeps_directory_metadata=False,
                                directory_times_follow_children=False, scan_hints=True, versioned_reads=True,
                                listed_md5s=True, native_checksums=True, server_side_copy=True, lists_uploads=True,
                                partial_scans=True, ranged_writes=True,
                                extras_read=S3_EXTRAS, extras_write=S3_EXTRAS, extras_on_request=frozenset({S3_TAGS}))

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        super().__init__(uri, conn_id)
        self.bucket, self.prefix, tuning = parse_s3_uri(uri)
        self.storage_class: str | None = tuning["storage_class"]
        self.part_size: int = tuning["part_size"]
        self.part_concurrency: int = tuning["part_concurrency"]
        self._settings: S3Settings | None = None

    # -- clients ----------------------------------------------------------------------------------
    def _resolve(self) -> S3Settings:
        """The connection's settings and clients, shared by every location of this worker process."""
        if self._settings is None:
            try:
                self._settings = settings_for(self.conn_id)
            except LocationError as exc:  # about the connection: say which location needed it
                raise LocationError(f"{self.uri}: {exc}") from None
        return self._settings

    @property
    def transport(self) -> S3Transport:
        """The connection's S3 operations, shared by every location of this worker process."""
        return self._resolve().transport

    def can_copy_from(self, source: Location) -> bool:
        """True when a server-side copy from ``source`` is possible (same endpoint and credentials)."""
        other = source
        if not isinstance(other, S3Location):
            return False
        a, b = self._resolve(), other._resolve()
        return a.endpoint_url == b.endpoint_url and a.access_key == b.access_key

    def key(self, path: str) -> str:
        key = self.prefix + safe_relpath(path)
        if len(key.encode()) > MAX_KEY_BYTES:
            raise LocationError(f"{self.uri}: key for {path!r} is longer than S3's 1024 bytes")
        return key

    def name_problem(self, path: str) -> str | None:
        if "\\" in path and not self._keeps_backslashes():
            return BACKSLASH_REASON
        return None

    def name_problems(self, paths: pa.ChunkedArray | pa.Array) -> pa.Array | None:
        # The server is asked (once) only when some name holds a backslash.
        has = pc.match_substring(paths, "\\")
        if not pc.any(has).as_py() or self._keeps_backslashes():
            return None
        return pc.if_else(has, pa.scalar(BACKSLASH_REASON), pa.scalar(None, pa.string()))

    def _keeps_backslashes(self) -> bool:
        return keeps_backslashes(self.transport, self._resolve().endpoint_url, self.bucket, self.prefix)

    def _writable_key(self, path: str) -> str:
        """The key of an entry to write: refused (the last guard behind PREPARING) where the server would
        store it under another name."""
        problem = self.name_problem(path)
        if problem is not None:
            raise UnsafePathError(f"{self.uri}: {path!r} cannot be written: {problem}")
        return self.key(path)

    # -- checks -----------------------------------------------------------------------------------
    def check(self, *, writable: bool, dry_run: bool = False) -> bool:
        # A prefix always "exists"; a dry run lists it (read permission) but writes no probe object.
        writable = writable and not dry_run
        probe = f"{self.prefix}.~ds-probe-{os.getpid()}-{threading.get_ident()}"
        transport = self.transport
        try:
            transport.list_page(self.bucket, self.prefix, max_keys=1)
            if writable:
                transport.put(self.bucket, probe, b"", {})
                transport.delete(self.bucket, probe)
        except ConnectionLostError as exc:
            raise LocationError(f"{self.uri}: cannot reach S3 ({exc})") from None
        except LocationError as exc:
            raise type(exc)(f"{self.uri}: {exc} (connection {self.conn_id or 'from the environment'})") from None
        return True

    def _pages(self, prefix: str) -> Iterator[list[dict[str, Any]]]:
        """Every ListObjectsV2 page under ``prefix`` (its ``Contents``, keys decoded)."""
        token = None
        while True:
            page = self.transport.list_page(self.bucket, prefix, token)
            yield page.contents
            if page.next_token is None:
                return
            token = page.next_token

    def contains(self, other: Location) -> bool:
        if not isinstance(other, S3Location) or other.bucket != self.bucket:
            return False
        if self._resolve().endpoint_url != other._resolve().endpoint_url:
            return False
        return other.prefix.startswith(self.prefix)

    # -- reading ----------------------------------------------------------------------------------
    def top_level(self) -> list[tuple[str, bool]]:
        """One delimited listing of the prefix: its objects are files, its common prefixes directories (a
        ``name/`` marker object too); a name may be both (``x`` and ``x/y``), then it counts as a directory."""
        names: dict[str, bool] = {}
        plen, token = len(self.prefix), None
        while True:
            page = self.transport.list_page(self.bucket, self.prefix, token, delimiter="/")
            for obj in page.contents:
                rel = obj["Key"][plen:]
                if rel.rstrip("/"):
                    names[rel.rstrip("/")] = names.get(rel.rstrip("/"), False) or rel.endswith("/")
            for sub in page.prefixes:  # "" for keys such as "prefix//x": listed, and refused as unsafe, by its partition
                names[sub[plen:].rstrip("/")] = True
            if page.next_token is None:
                return sorted(names.items())
            token = page.next_token

    def _under_pages(self, under: Collection[str]) -> Iterator[list[dict[str, Any]]]:
        """The ListObjectsV2 pages of the keys a scan ``under`` these top-level names lists: the objects
        named so directly below the prefix (from one delimited listing), then every key below each name
        that listing shows as a common prefix (a name that is only a file here costs no request)."""
        plen, token, below = len(self.prefix), None, []
        while True:
            page = self.transport.list_page(self.bucket, self.prefix, token, delimiter="/")
            yield [c for c in page.contents if c["Key"][plen:].rstrip("/") in under]
            below += [sub for sub in page.prefixes if sub[plen:].rstrip("/") in under]
            if page.next_token is None:
                break
            token = page.next_token
        for sub in sorted(below):
            yield from self._pages(sub)

    def scan(self, batch_size: int = 10_000, hints: ScanHints | None = None,
             needs_metadata: Callable[[str, int], bool] | None = None,
             under: Collection[str] | None = None) -> Iterator[pa.RecordBatch]:
        # ListObjectsV2: keys exactly as stored (``dir/`` markers keep their slash, control characters
        # arrive URL-encoded and decoded), a page of 1,000 at a time, straight into Arrow.
        # POSIX metadata lives in user metadata, which only HEAD returns: objects whose ETag matches what
        # an earlier execution saw take it from ``hints`` instead, so a re-run costs LISTs, not HEADs.
        with ThreadPoolExecutor(max_workers=HEAD_CONCURRENCY, thread_name_prefix="s3head") as pool:
            for contents in self._listed_pages(pool, hints) if under is None else self._under_pages(under):
                for start in range(0, len(contents), batch_size):  # a page holds up to 1,000 keys
                    batch = self._listing(contents[start:start + batch_size], pool, hints, needs_metadata)
                    if batch.num_rows:
                        yield batch

    def _listed_pages(self, pool: ThreadPoolExecutor, hints: ScanHints | None) -> Iterator[list[dict[str, Any]]]:
        """The pages of the whole prefix: over ranges of the keys ``hints`` know, several at once, when they
        know more than a page of them (:mod:`key_ranges`), else one after another."""
        bounds = []
        if hints is not None and len(hints) > key_ranges.KEYS_PER_RANGE and key_ranges.splittable(self.bucket):
            bounds = key_ranges.range_bounds([self.prefix + path + ("/" if kind == DIR else "")
                                              for path, kind in hints.listed()])
        if not bounds:
            return self._pages(self.prefix)
        return key_ranges.ranged_pages(self.transport.list_page, self.bucket, self.prefix, bounds, pool,
                                       lambda: self._pages(self.prefix))

    def _listing(self, contents: list[dict[str, Any]], pool: ThreadPoolExecutor,
                 hints: ScanHints | None = None, needs_metadata: Callable[[str, int], bool] | None = None
                 ) -> pa.RecordBatch:
        # A list per object, turned into columns at the end in one transposition, not a dict per object nor
        # an append per column: a listing of thousands of keys spends its interpreter time here.
        rows: list[list[Any]] = []
        heads: list[tuple[int, str]] = []
        plen = len(self.prefix)
        for c in contents:
            key = c["Key"]
            rel = key[plen:]
            if not rel or rel.rstrip("/").rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
                continue  # another writer's temporary, at any depth
            is_dir = rel.endswith("/")
            rel = rel[:-1] if is_dir else rel
            etag, listed_size = c.get("ETag"), c["Size"]
            row = [rel, DIR if is_dir else FILE, 0 if is_dir else listed_size,
                   int(c["LastModified"].timestamp() * 1_000_000_000), None, None, None, None, None, None, etag, None]
            try:
                safe_relpath(rel)
                rel.encode("utf-8")
            except (UnsafePathError, UnicodeEncodeError) as exc:
                row[0], row[9] = _printable(rel), f"unsafe object key {key!r} refused: {exc}"
            else:
                known = hints.known(rel, etag) if hints is not None and etag else None
                if known is not None and (known[0] == DIR) == is_dir:
                    for at, value in zip(_KNOWN_AT, known):  # what the earlier execution saw, where it saw it
                        if value is not None:
                            row[at] = value
                    if row[1] != FILE:
                        row[2] = 0
                elif needs_metadata is not None and not is_dir and listed_size > 0 and not needs_metadata(rel, listed_size):
                    # Nothing to compare it with (new, or a different size): metadata comes with the GET.
                    row[11] = False
                else:
                    heads.append((len(rows), key))
            rows.append(row)
        cols = dict(zip(_LISTED, map(list, zip(*rows)))) if rows else {name: [] for name in _LISTED}
        for index, head in zip([i for i, _ in heads], pool.map(self._head_meta, [k for _, k in heads])):
            if head is None:
                continue  # deleted between list and head: keep what the listing said
            for name, value in head.items():
                if name in cols:
                    cols[name][index] = value
        return listing_batch(cols)

    def _head(self, key: str) -> dict[str, Any] | None:
        return self.transport.head(self.bucket, key)

    def _head_meta(self, key: str) -> dict[str, Any] | None:
        head = self._head(key)
        return None if head is None else meta_from_head(head, key.endswith("/"))


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
        meta = meta_from_head(head, is_dir)
        mtime = meta.get("mtime_ns", int(head["LastModified"].timestamp() * 1_000_000_000))
        kind = meta.get("type", DIR if is_dir else FILE)
        return StatResult(kind, 0 if kind != FILE else head["ContentLength"], mtime, meta.get("atime_ns"),
                          meta.get("mode"), meta.get("uid"), meta.get("gid"), meta.get("link_target"),
                          etag=head.get("ETag"), user_name=meta.get("user_name"), group_name=meta.get("group_name"),
                          extras={S3_USER_METADATA: meta["user_metadata"]} if meta.get("user_metadata") else {})


    def stores_md5(self, size: int) -> bool:
        # A single PUT (no multipart) without SSE-KMS/SSE-C: S3 and the S3-compatible stores return the MD5.
        # Where a bucket encrypts with KMS the ETags differ and VERIFYING falls back to HEAD: slower, never wrong.
        return size <= self.part_size

    def list_md5s(self) -> dict[str, str]:
        """A single-part object's ETag is the MD5 of its bytes; multipart and SSE-KMS ETags are left out."""
        md5s: dict[str, str] = {}
        plen = len(self.prefix)
        for contents in self._pages(self.prefix):
            for obj in contents:
                md5 = checksum.md5_of_etag(obj["ETag"])
                if md5 is not None and not obj["Key"].endswith("/"):  # a directory marker has no content
                    md5s[obj["Key"][plen:]] = md5
        return md5s

    def read_extras(self, path: str, wanted: Mapping[str, Any]) -> dict[str, Any]:
        """The object's tags (``s3.tags``: ObjectTags=PRESERVE carries them to an S3 destination)."""
        if S3_TAGS not in wanted:
            return {}
        key = self.key(path)
        for candidate in (key, key + "/"):  # an object, else a directory's marker
            try:
                return {S3_TAGS: self._tags(candidate)}
            except NotFoundError:
                continue
        return {}  # an implied directory (no marker object) has no tags

    def _tags(self, key: str) -> dict[str, str]:
        return self.transport.get_tags(self.bucket, key)

    def native_checksum(self, path: str) -> str | None:
        """The object's full-object CRC64NVME as S3 reports it (hex), without downloading it."""
        head = self._head(self.key(path))
        if head is None:
            raise NotFoundError(f"{self.uri}: {path} does not exist")
        return full_object_crc(head)

    def open_read(self, path: str) -> IO[bytes]:
        _head, body = self.transport.get(self.bucket, self.key(path))
        return body

    def open_version(self, path: str, etag: str) -> tuple[IO[bytes], StatResult]:
        """GET with If-Match: the object as listed and its stat, or ChangedSinceListingError (one request, no
        HEAD)."""
        try:
            head, reader = self.transport.get(self.bucket, self.key(path), if_match=etag)
        except ChangedSinceListingError:
            raise ChangedSinceListingError(f"{path}: changed at the source since PREPARING (ETag {etag} no longer "
                                           "matches); not copied, the next execution copies the new version") from None
        except NotFoundError:
            raise NotFoundError(f"{path}: vanished from the source after PREPARING") from None
        # The GET carries the version's metadata: what the copy applies, even where PREPARING skipped the HEAD.
        return reader, self._stat_from_head(head)

    # -- writing ----------------------------------------------------------------------------------
    def write(self, path: str, chunks: Iterator[bytes], meta: Metadata, *, tag: str,
              before_commit: Callable[[int], None] | None = None, overwrite: bool = True,
              kind: str = FILE, link_target: str | None = None) -> Written:
        """Small objects: buffered, then one PUT. Large ones: a multipart upload completed only when whole.

        Either way nothing is visible at the key until ``before_commit`` has passed; S3 computes and checks
        the CRC64NVME of the body, so a corrupted transfer is rejected by the server.
        """
        key = self._writable_key(path)
        headers = meta_to_headers(meta, kind, link_target)
        if_none_match = not overwrite  # OverwriteMode=NEVER: a conditional write, never a clobber
        tags = meta.extras.get(S3_TAGS)
        buffer = bytearray()
        iterator = iter(chunks)
        for chunk in iterator:
            buffer += chunk
            if len(buffer) > self.part_size:
                return Written(*self._multipart(key, buffer, iterator, headers, before_commit, if_none_match, tags,
                                                writer=Leftover(UPLOAD, path, tag)))
        if before_commit is not None:
            before_commit(len(buffer))
        return Written(len(buffer), self._put(key, bytes(buffer), headers, if_none_match, tags))

    def _put(self, key: str, body: bytes, headers: dict[str, str], if_none_match: bool,
             tags: dict[str, str] | None = None) -> str | None:
        """One PUT; returns the new object's ETag."""
        return _quoted(self.transport.put(self.bucket, key, body, headers, if_none_match=if_none_match, tags=tags,
                                          storage_class=self.storage_class))

    def _multipart(self, key: str, first: bytearray, rest: Iterator[bytes], headers: dict[str, str],
                   before_commit: Callable[[int], None] | None, if_none_match: bool,
                   tags: dict[str, str] | None = None, *, writer: Leftover) -> tuple[int, str | None]:
        """A multipart upload completed only when whole; returns (bytes, the object's ETag). The upload is
        reported started before its first part and ended after it completed or was aborted (``writer``
        names the path and the writer's tag), so that one left by a killed writer can be aborted later."""
        part_size, in_flight = self.part_size, self.part_concurrency
        self._log_upload("starting", writer)  # a kill before the id is recorded: the object is named
        api = self._multipart_api(key, headers, tags)
        upload = dataclasses.replace(writer, upload_id=api.upload_id)
        self._log_upload("started", upload)
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
            etag = _quoted(api.complete([part for part, _crc, _n in sent], whole.base64(), if_none_match))
        except BaseException:
            try:
                api.abort()
            except Exception:  # the original error matters more; the next execution aborts it
                log.warning("could not abort multipart upload of s3://%s/%s", self.bucket, key)
            else:
                self._log_upload("ended", upload)
            raise
        self._log_upload("ended", upload)
        return total, etag

    def _multipart_api(self, key: str, headers: dict[str, str], tags: dict[str, str] | None) -> Multipart:
        """A started multipart upload with a full-object CRC64NVME."""
        upload_id = self.transport.create_multipart(self.bucket, key, headers, full_object_crc=True, tags=tags,
                                                    storage_class=self.storage_class)
        return Multipart(self.transport, self.bucket, key, upload_id)

    def copy_object(self, source: Location, path: str, meta_for: Callable[[StatResult], Metadata], *,
                    expect_etag: str | None, overwrite: bool, extras: frozenset[str] = frozenset()) -> Written:
        """Server-side copy (multipart copy above ``COPY_PART_SIZE``); the Written's checksum is the
        source's CRC64NVME (hex), where S3 keeps one.

        User metadata of the source object is kept (ours is refreshed); tags are copied where ``extras``
        names ``s3.tags`` (ObjectTags=PRESERVE) and dropped otherwise.
        """
        assert isinstance(source, S3Location), "copy_object is called only where can_copy_from(source)"
        keep_tags = S3_TAGS in extras
        src_key, key = source.key(path), self._writable_key(path)
        head = source._head(src_key)
        if head is None:
            raise NotFoundError(f"{path}: vanished from the source before the copy")
        if expect_etag and head.get("ETag") != expect_etag:
            raise ChangedSinceListingError(f"{path}: changed at the source since PREPARING (ETag {expect_etag} no "
                                           "longer matches); not copied, the next execution copies the new version")
        size = head["ContentLength"]
        if not overwrite and self._head(key) is not None:
            raise AlreadyExistsError(f"{key} already exists (OverwriteMode=NEVER)")
        # The source object's own user metadata travels with it; ours (ds-*) is written from its HEAD.
        meta = meta_for(self._stat_from_head(head))
        theirs = meta_from_head(head, False).get("user_metadata") or {}
        headers = {**theirs, **meta_to_headers(meta)}
        transport = self.transport
        if size <= COPY_PART_SIZE:
            etag = transport.copy(self.bucket, key, source.bucket, src_key, headers, if_match=head["ETag"],
                                  keep_tags=keep_tags, storage_class=self.storage_class)
        else:
            tags = source._tags(src_key) if keep_tags else None
            self._log_upload("starting", Leftover(UPLOAD, path))
            upload_id = transport.create_multipart(self.bucket, key, headers, full_object_crc=False, tags=tags,
                                                   storage_class=self.storage_class)
            upload = Leftover(UPLOAD, path, upload_id=upload_id)
            self._log_upload("started", upload)
            try:
                parts: list[Part] = []
                offset, number = 0, 0
                while offset < size:
                    number += 1
                    end = min(offset + COPY_PART_SIZE, size) - 1
                    parts.append((number, transport.upload_part_copy(self.bucket, key, upload_id, number, source.bucket,
                                                                     src_key, (offset, end), if_match=head["ETag"]),
                                  None))
                    offset = end + 1
                etag = transport.complete_multipart(self.bucket, key, upload_id, parts)
            except BaseException:
                transport.abort_multipart(self.bucket, key, upload_id)
                self._log_upload("ended", upload)
                raise
            self._log_upload("ended", upload)
        # The source's own checksum, if S3 keeps one: VERIFYING compares it with the copy's. If the source
        # has none (written without one), VERIFYING reads the source to compute it.
        return Written(size, _quoted(etag), checksum=full_object_crc(head))

    # -- leftovers of killed writes ---------------------------------------------------------------
    def pending_uploads(self) -> list[Leftover]:
        """Unfinished multipart uploads below the prefix (one ListMultipartUploads, usually one page)."""
        plen = len(self.prefix)
        return [Leftover(UPLOAD, u["Key"][plen:], upload_id=u["UploadId"], started=u["Initiated"] or None)
                for u in self.transport.list_uploads(self.bucket, self.prefix)]

    def remove_leftovers(self, leftovers: Iterable[Leftover], *, writers_gone: bool = False) -> Cleanup:
        """Aborts the given uploads (S3 writes no temporaries: an object appears whole or not at all)."""
        done = Cleanup()
        for upload in leftovers:
            if upload.kind != UPLOAD or not upload.upload_id:
                continue
            try:
                self.transport.abort_multipart(self.bucket, self.prefix + upload.path, upload.upload_id)
            except NotFoundError:
                continue  # completed or aborted meanwhile
            done.removed += 1
            done.bytes += upload.size
        return done

    def symlink(self, path: str, target: str, meta: Metadata, *, tag: str) -> Written:
        return self.write(path, iter(()), meta, tag=tag, kind=SYMLINK, link_target=target)

    def mkdir(self, path: str, meta: Metadata | None = None) -> Written:
        # PREPARING found no marker here: one PUT, with the directory's metadata (a marker does not change
        # when objects are written below it, so FINALIZE has nothing left to do for it).
        return Written(0, self._put(self._writable_key(path) + "/", b"", meta_to_headers(meta, DIR) if meta is not None else {},
                                    False))

    def set_metadata(self, path: str, meta: Metadata, *, is_dir: bool = False) -> list[str]:
        key = self.key(path) + ("/" if is_dir else "")
        head = self._head(key)
        if head is None:
            if is_dir:
                return []  # an implied directory (no marker object) has no metadata to set
            raise FileNotFoundError(path)
        current = head.get("Metadata") or {}
        wanted = {**current, **meta_to_headers(meta)}
        if wanted == current:
            return []
        if is_dir:
            self._put(key, b"", wanted, False, meta.extras.get(S3_TAGS))  # a marker is re-put: with its tags
        else:
            self.transport.copy(self.bucket, key, self.bucket, key, wanted, if_match=head["ETag"], keep_tags=True,
                                storage_class=self.storage_class)
        return []

    def delete(self, path: str, *, is_dir: bool) -> None:
        key = self.key(path) + ("/" if is_dir else "")
        if is_dir and any(c["Key"] != key for c in next(self._pages(key), [])):
            # Objects below keep the directory in every listing: deleting the marker would only drop its
            # metadata, so it is kept as a file system keeps a non-empty directory.
            raise DirectoryNotEmptyError(f"{self.uri}: directory {path!r} still holds entries (excluded by "
                                         "filters, or new); kept")
        self.transport.delete(self.bucket, key)


def _printable(key: str) -> str:
    return key.replace("\x00", "\\x00")


def _quoted(etag: str | None) -> str | None:
    """An ETag as listings spell it (quoted): what a later execution's hints and VERIFYING compare."""
    if not etag:
        return None
    return etag if etag.startswith('"') else f'"{etag}"'
