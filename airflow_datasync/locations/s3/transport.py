"""The S3 operations the backend and the manifest store are made of, behind one interface, and the
implementation that serves them: :class:`SigV4Transport`, our signed-HTTP client (:mod:`.sigv4`).

Why this client and not boto3 or obstore: measured with bench/s3_clients.py (figures in
docs/benchmarks.md), it keeps up with obstore on PUT, LIST, HEAD and GET of small objects at a fraction
of boto3's CPU per request, and it does what obstore cannot (HEAD with checksums, CopyObject with new
metadata pinned to an ETag, directory-marker keys ending in ``/``, full-object CRC64NVME multipart
uploads, tags). boto3 serves the same interface (:mod:`.boto_transport`) only for connections this
client cannot reproduce (proxies, FIPS or dual-stack endpoints, botocore options of its own): the one
fallback, chosen once per connection.

Every operation raises only the vocabulary of :mod:`airflow_datasync.errors` (through :mod:`.errors`) and
retries transient failures with :func:`airflow_datasync.retry.retrying`. Objects are described as boto3
describes them (``ContentLength``, ``ETag``, ``LastModified``, ``Metadata``, ``ChecksumCRC64NVME``, …),
so the location reads one shape whichever transport answered.
"""

from __future__ import annotations

import abc
import datetime
import email.utils
import http.client
import io
import logging
import threading
import urllib.parse
from collections.abc import Callable
from typing import IO, Any, TypeVar
from xml.sax.saxutils import escape

from airflow_datasync.errors import (
    AlreadyExistsError,
    ConnectionLostError,
    LocationError,
    NotFoundError,
    TransientError,
)
from airflow_datasync.locations.s3 import sigv4
from airflow_datasync.locations.s3.errors import s3_error
from airflow_datasync.locations.s3.sigv4 import ListPage
from airflow_datasync.retry import retrying

log = logging.getLogger("airflow_datasync")
T = TypeVar("T")
#: How far before a CreateMultipartUpload whose answer was lost an upload of the same key may have been
#: started and still be that lost attempt's (S3's clock against ours).
LOST_CREATION_MARGIN_SECONDS = 5
#: One part of a multipart upload for its completion: (number, ETag, CRC64NVME base64 or None).
Part = tuple[int, str, "str | None"]


class S3Transport(abc.ABC):
    """The requests an S3 location sends. ``metadata`` maps user-metadata names (without ``x-amz-meta-``)
    to ASCII values; ``if_match`` pins a listed ETag (a failed precondition is a
    :class:`~airflow_datasync.errors.ChangedSinceListingError`); ``if_none_match`` refuses to replace an
    existing object (:class:`~airflow_datasync.errors.AlreadyExistsError`)."""

    #: Called with each request's operation name before it is sent (the tests count requests).
    observers: list[Callable[[str], None]]

    @abc.abstractmethod
    def list_page(self, bucket: str, prefix: str, token: str | None = None, *, max_keys: int = 1000,
                  delimiter: str | None = None, start_after: str | None = None) -> ListPage:
        """One ListObjectsV2 page under ``prefix`` (keys decoded), of the keys after ``start_after`` if given."""

    @abc.abstractmethod
    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """HeadObject with checksums, or None where there is no such object."""

    @abc.abstractmethod
    def get(self, bucket: str, key: str, *, if_match: str | None = None,
            byte_range: tuple[int, int] | None = None) -> tuple[dict[str, Any], IO[bytes]]:
        """GetObject: what a HEAD would say (``ContentLength`` of the whole object) and the body as a stream.
        ``byte_range`` is (first, last) inclusive."""

    @abc.abstractmethod
    def put(self, bucket: str, key: str, body: bytes, metadata: dict[str, str], *, if_none_match: bool = False,
            tags: dict[str, str] | None = None, storage_class: str | None = None) -> str | None:
        """PutObject with a CRC64NVME the server checks; the new object's ETag."""

    @abc.abstractmethod
    def copy(self, bucket: str, key: str, source_bucket: str, source_key: str, metadata: dict[str, str], *,
             if_match: str, keep_tags: bool, storage_class: str | None = None) -> str | None:
        """Server-side CopyObject (up to 5 GiB) with ``metadata`` replacing the source's; the copy's ETag."""

    @abc.abstractmethod
    def create_multipart(self, bucket: str, key: str, metadata: dict[str, str], *, full_object_crc: bool,
                         tags: dict[str, str] | None = None, storage_class: str | None = None) -> str:
        """CreateMultipartUpload (with a full-object CRC64NVME where ``full_object_crc``); the upload id."""

    @abc.abstractmethod
    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes, crc64: str) -> str:
        """One part with its CRC64NVME (base64), checked by the server; the part's ETag."""

    @abc.abstractmethod
    def upload_part_copy(self, bucket: str, key: str, upload_id: str, number: int, source_bucket: str,
                         source_key: str, byte_range: tuple[int, int], *, if_match: str) -> str:
        """One part copied server-side from bytes ``byte_range`` (inclusive) of the source; its ETag."""

    @abc.abstractmethod
    def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[Part], *,
                           crc64: str | None = None, if_none_match: bool = False) -> str | None:
        """CompleteMultipartUpload (with the whole object's CRC64NVME where given); the object's ETag."""

    @abc.abstractmethod
    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload already gone is fine."""

    @abc.abstractmethod
    def list_uploads(self, bucket: str, prefix: str) -> list[dict[str, str]]:
        """Every unfinished multipart upload under ``prefix`` (ListMultipartUploads, all pages), as
        ``{"Key", "UploadId", "Initiated"}`` (``Initiated``: the ISO 8601 time S3 gives)."""

    @abc.abstractmethod
    def delete(self, bucket: str, key: str) -> None:
        """DeleteObject (a missing object is fine, as S3 says)."""

    @abc.abstractmethod
    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        """GetObjectTagging as {key: value}."""


class DeferredAborts:
    """Multipart uploads whose abort failed because S3 could not be reached (a server killed mid-upload):
    aborted again after the next request that reaches it, so that a server back within the life of this
    process keeps no unfinished upload of ours (billed on AWS until removed). What a process never got to
    abort, the next execution over the destination finds by its name."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._draining = False

    def defer(self, bucket: str, key: str, upload_id: str) -> None:
        with self._lock:
            self._pending.append((bucket, key, upload_id))

    def retry(self, abort: Callable[[str, str, str], None]) -> None:
        """Abort what is pending (from one thread at a time; the others go on at once)."""
        with self._lock:
            if self._draining or not self._pending:
                return
            self._draining, todo, self._pending = True, self._pending, []
        try:
            for bucket, key, upload_id in todo:
                try:
                    abort(bucket, key, upload_id)
                except TransientError:
                    pass  # deferred again by abort_multipart itself
                except LocationError as exc:
                    log.warning("could not abort multipart upload of %s: %s", object_url(bucket, key), exc)
        finally:
            with self._lock:
                self._draining = False


def object_url(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def tagging(tags: dict[str, str]) -> str:
    """Tags as the ``x-amz-tagging`` header (and boto3's ``Tagging``) takes them."""
    return urllib.parse.urlencode(tags)


class SigV4Transport(S3Transport):
    """The operations as signed HTTP requests through one :class:`~.sigv4.SigV4Client`."""

    def __init__(self, client: sigv4.SigV4Client, *, attempts: int = 4) -> None:
        self.client, self.attempts = client, attempts
        self.observers = client.observers
        self._deferred_aborts = DeferredAborts()

    def _retry(self, call: Callable[[], T]) -> T:
        return retrying(call, attempts=self.attempts, on_connection_lost=self.client.drop_idle)

    def _send(self, operation: str, method: str, bucket: str, key: str, query: list[tuple[str, str]] | None = None,
              headers: dict[str, str] | None = None, body: bytes = b"", *, ok: tuple[int, ...] = (200,),
              pinned: bool = False, unsigned_payload: bool = False,
              lost: list[LocationError] | None = None) -> sigv4.Answer:
        """One request, retried while transient; an answer outside ``ok`` becomes the vocabulary error.
        ``lost`` collects the transient failures of earlier attempts (whose effect may have happened)."""
        def attempt() -> sigv4.Answer:
            try:
                answer = self.client.request(operation, method, bucket, key, query, headers, body,
                                             unsigned_payload=unsigned_payload)
                if answer.status not in ok:
                    raise s3_error(object_url(bucket, key), answer.status, sigv4.error_code(answer.body),
                                   pinned=pinned)
            except TransientError as exc:
                if lost is not None:
                    lost.append(exc)
                raise
            return answer

        answer = self._retry(attempt)
        self._deferred_aborts.retry(self.abort_multipart)  # S3 answers again: abort what it missed
        return answer

    def list_page(self, bucket: str, prefix: str, token: str | None = None, *, max_keys: int = 1000,
                  delimiter: str | None = None, start_after: str | None = None) -> ListPage:
        query = [("encoding-type", "url"), ("list-type", "2"), ("max-keys", str(max_keys)), ("prefix", prefix)]
        if token is not None:
            query.append(("continuation-token", token))
        if start_after is not None:
            query.append(("start-after", start_after))
        if delimiter is not None:
            query.append(("delimiter", delimiter))
        answer = self._send("ListObjectsV2", "GET", bucket, "", query)
        page = sigv4.parse_listing(answer.body)
        if page is None:
            raise LocationError(f"s3://{bucket}/{prefix}: S3 answered a listing that does not parse")
        return page

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            answer = self._send("HeadObject", "HEAD", bucket, key, headers={"x-amz-checksum-mode": "ENABLED"})
        except NotFoundError:
            return None
        return describe(answer.headers, object_url(bucket, key))

    def get(self, bucket: str, key: str, *, if_match: str | None = None,
            byte_range: tuple[int, int] | None = None) -> tuple[dict[str, Any], IO[bytes]]:
        headers = {}
        if if_match is not None:
            headers["if-match"] = if_match
        if byte_range is not None:
            headers["range"] = f"bytes={byte_range[0]}-{byte_range[1]}"

        def attempt() -> sigv4.Answer:
            answer = self.client.request("GetObject", "GET", bucket, key, [], headers, stream=True)
            if answer.status not in (200, 206):
                raise s3_error(object_url(bucket, key), answer.status, sigv4.error_code(answer.body),
                               pinned=if_match is not None)
            return answer

        answer = self._retry(attempt)
        return describe(answer.headers, object_url(bucket, key)), _AnswerStream(self.client, answer)

    def put(self, bucket: str, key: str, body: bytes, metadata: dict[str, str], *, if_none_match: bool = False,
            tags: dict[str, str] | None = None, storage_class: str | None = None) -> str | None:
        from airflow_datasync import checksum

        crc = checksum.new_hasher()
        crc.update(body)
        headers = {"content-length": str(len(body)), "x-amz-checksum-crc64nvme": crc.base64(),
                   **meta_headers(metadata, object_url(bucket, key))}
        if if_none_match:
            headers["if-none-match"] = "*"
        if tags:
            headers["x-amz-tagging"] = tagging(tags)
        if storage_class:
            headers["x-amz-storage-class"] = storage_class
        lost: list[LocationError] = []
        try:
            return self._send("PutObject", "PUT", bucket, key, headers=headers, body=body,
                              lost=lost).headers.get("etag")
        except AlreadyExistsError:
            ours = self._ours_after_loss(bucket, key, headers["x-amz-checksum-crc64nvme"], lost)
            if ours is None:
                raise
            return ours.get("ETag")

    def _ours_after_loss(self, bucket: str, key: str, crc64: str | None,
                         lost: list[LocationError]) -> dict[str, Any] | None:
        """The object at ``key`` (as :meth:`head` describes it) when a write was refused only because an
        earlier attempt of the same write, whose answer was lost, had already made it: the object there
        has our CRC64NVME. None otherwise (the refusal stands)."""
        if not (lost and crc64):
            return None
        found = self.head(bucket, key)
        return found if found is not None and found.get("ChecksumCRC64NVME") == crc64 else None

    def copy(self, bucket: str, key: str, source_bucket: str, source_key: str, metadata: dict[str, str], *,
             if_match: str, keep_tags: bool, storage_class: str | None = None) -> str | None:
        headers = {"x-amz-copy-source": urllib.parse.quote(f"/{source_bucket}/{source_key}", safe="/~"),
                   "x-amz-copy-source-if-match": if_match, "x-amz-metadata-directive": "REPLACE",
                   "x-amz-checksum-algorithm": "CRC64NVME", **meta_headers(metadata, object_url(bucket, key))}
        if keep_tags:
            headers["x-amz-tagging-directive"] = "COPY"
        else:
            headers.update({"x-amz-tagging-directive": "REPLACE", "x-amz-tagging": ""})
        if storage_class:
            headers["x-amz-storage-class"] = storage_class
        answer = self._send("CopyObject", "PUT", bucket, key, headers=headers, pinned=True)
        return self._result(answer, bucket, key, "CopyObjectResult", pinned=True)

    def _result(self, answer: sigv4.Answer, bucket: str, key: str, root: str, *, pinned: bool = False,
                field: str = "ETag") -> str | None:
        """``field`` of an XML result; S3 may answer 200 with an ``<Error>`` body (CopyObject, Complete…)."""
        if f"<{root}".encode() not in answer.body:
            raise s3_error(object_url(bucket, key), 500, sigv4.error_code(answer.body), pinned=pinned)
        return sigv4.xml_field(answer.body, root, field)

    def create_multipart(self, bucket: str, key: str, metadata: dict[str, str], *, full_object_crc: bool,
                         tags: dict[str, str] | None = None, storage_class: str | None = None) -> str:
        headers = {"x-amz-checksum-algorithm": "CRC64NVME", **meta_headers(metadata, object_url(bucket, key))}
        if full_object_crc:
            headers["x-amz-checksum-type"] = "FULL_OBJECT"
        if tags:
            headers["x-amz-tagging"] = tagging(tags)
        if storage_class:
            headers["x-amz-storage-class"] = storage_class
        lost: list[LocationError] = []
        started = datetime.datetime.now(datetime.UTC)
        answer = self._send("CreateMultipartUpload", "POST", bucket, key, [("uploads", "")], headers, lost=lost)
        upload_id = self._result(answer, bucket, key, "InitiateMultipartUploadResult", field="UploadId")
        if not upload_id:
            raise LocationError(f"{object_url(bucket, key)}: CreateMultipartUpload answered no upload id")
        if lost:
            self._abort_lost_creations(bucket, key, upload_id, started)
        return upload_id

    def _abort_lost_creations(self, bucket: str, key: str, upload_id: str, started: datetime.datetime) -> None:
        """Abort the uploads of ``key`` that attempts of this creation made before their answers were lost:
        those S3 started since this call began (a few seconds' margin for the clocks), other than the one
        answered. An upload of the key older than that, or of another key, is never touched."""
        answer = self._send("ListMultipartUploads", "GET", bucket, "", [("prefix", key), ("uploads", "")])
        document = sigv4.xml_document(answer.body)
        if document is None:
            return
        root, ns = document
        since = started - datetime.timedelta(seconds=LOST_CREATION_MARGIN_SECONDS)
        for upload in root.iter(ns + "Upload"):
            initiated = sigv4.iso_timestamp(upload.findtext(ns + "Initiated") or "")
            other = upload.findtext(ns + "UploadId")
            if (upload.findtext(ns + "Key") == key and other and other != upload_id
                    and initiated is not None and initiated >= since):
                try:
                    self.abort_multipart(bucket, key, other)
                except LocationError as exc:
                    log.warning("could not abort a duplicate multipart upload of %s: %s", object_url(bucket, key), exc)

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes, crc64: str) -> str:
        # UNSIGNED-PAYLOAD: the CRC protects the bytes; a SHA-256 of each part would cost CPU for nothing more.
        answer = self._send("UploadPart", "PUT", bucket, key, [("partNumber", str(number)), ("uploadId", upload_id)],
                            {"content-length": str(len(body)), "x-amz-checksum-crc64nvme": crc64}, body,
                            unsigned_payload=True)
        etag = answer.headers.get("etag")
        if not etag:
            raise LocationError(f"{object_url(bucket, key)}: UploadPart {number} answered no ETag")
        return etag

    def upload_part_copy(self, bucket: str, key: str, upload_id: str, number: int, source_bucket: str,
                         source_key: str, byte_range: tuple[int, int], *, if_match: str) -> str:
        headers = {"x-amz-copy-source": urllib.parse.quote(f"/{source_bucket}/{source_key}", safe="/~"),
                   "x-amz-copy-source-range": f"bytes={byte_range[0]}-{byte_range[1]}",
                   "x-amz-copy-source-if-match": if_match}
        answer = self._send("UploadPartCopy", "PUT", bucket, key,
                            [("partNumber", str(number)), ("uploadId", upload_id)], headers, pinned=True)
        etag = self._result(answer, bucket, key, "CopyPartResult", pinned=True)
        if not etag:
            raise LocationError(f"{object_url(bucket, key)}: UploadPartCopy {number} answered no ETag")
        return etag

    def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[Part], *,
                           crc64: str | None = None, if_none_match: bool = False) -> str | None:
        xml = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(etag)}</ETag>"
                      + (f"<ChecksumCRC64NVME>{escape(crc)}</ChecksumCRC64NVME>" if crc else "") + "</Part>"
                      for n, etag, crc in parts)
        body = f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{xml}</CompleteMultipartUpload>'
        headers = {"content-type": "application/xml"}
        if crc64:
            headers.update({"x-amz-checksum-crc64nvme": crc64, "x-amz-checksum-type": "FULL_OBJECT"})
        if if_none_match:
            headers["if-none-match"] = "*"
        lost: list[LocationError] = []
        try:
            answer = self._send("CompleteMultipartUpload", "POST", bucket, key, [("uploadId", upload_id)], headers,
                                body.encode(), lost=lost)
        except (AlreadyExistsError, NotFoundError):  # refused, or the upload gone: a lost answer may have done it
            ours = self._ours_after_loss(bucket, key, crc64, lost)
            if ours is None:
                raise
            return ours.get("ETag")
        return self._result(answer, bucket, key, "CompleteMultipartUploadResult")

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            self._send("AbortMultipartUpload", "DELETE", bucket, key, [("uploadId", upload_id)], ok=(200, 204, 404))
        except TransientError:
            self._deferred_aborts.defer(bucket, key, upload_id)
            raise

    def list_uploads(self, bucket: str, prefix: str) -> list[dict[str, str]]:
        uploads: list[dict[str, str]] = []
        markers: list[tuple[str, str]] = []
        while True:
            answer = self._send("ListMultipartUploads", "GET", bucket, "",
                                [("encoding-type", "url"), ("prefix", prefix), ("uploads", ""), *markers])
            document = sigv4.xml_document(answer.body)
            if document is None:
                raise LocationError(f"s3://{bucket}/{prefix}: S3 answered an upload listing that does not parse")
            root, ns = document
            for upload in root.iter(ns + "Upload"):
                uploads.append({"Key": urllib.parse.unquote(upload.findtext(ns + "Key") or ""),
                                "UploadId": upload.findtext(ns + "UploadId") or "",
                                "Initiated": upload.findtext(ns + "Initiated") or ""})
            key_marker, id_marker = root.findtext(ns + "NextKeyMarker"), root.findtext(ns + "NextUploadIdMarker")
            if root.findtext(ns + "IsTruncated") != "true" or not (key_marker or id_marker):
                return uploads
            markers = [("key-marker", urllib.parse.unquote(key_marker or "")), ("upload-id-marker", id_marker or "")]

    def delete(self, bucket: str, key: str) -> None:
        self._send("DeleteObject", "DELETE", bucket, key, ok=(200, 204, 404))

    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        answer = self._send("GetObjectTagging", "GET", bucket, key, [("tagging", "")])
        document = sigv4.xml_document(answer.body)
        if document is None:
            raise LocationError(f"{object_url(bucket, key)}: S3 answered tags that do not parse")
        root, ns = document
        return {tag.findtext(ns + "Key") or "": tag.findtext(ns + "Value") or ""
                for tag in root.iter(ns + "Tag")}


def meta_headers(metadata: dict[str, str], where: str) -> dict[str, str]:
    """User metadata as ``x-amz-meta-*`` headers; S3 carries only printable ASCII there."""
    headers = {}
    for name, value in metadata.items():
        if not (name.isascii() and value.isascii() and name.isprintable() and value.isprintable()):
            raise LocationError(f"{where}: user metadata {name!r} is not printable ASCII, which S3 cannot carry")
        headers["x-amz-meta-" + name.lower()] = value
    return headers


def describe(headers: dict[str, str], where: str) -> dict[str, Any]:
    """A HEAD or GET answer's headers as boto3 describes the object; ``ContentLength`` is the whole
    object's size, also for a range GET."""
    try:
        size = int(headers["content-length"])
        if "content-range" in headers:  # bytes first-last/total
            size = int(headers["content-range"].rsplit("/", 1)[1])
        out: dict[str, Any] = {
            "ContentLength": size, "ETag": headers.get("etag"),
            "LastModified": email.utils.parsedate_to_datetime(headers["last-modified"]),
            "Metadata": {k[11:]: v for k, v in headers.items() if k.startswith("x-amz-meta-")},
        }
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise LocationError(f"{where}: S3 answered unexpected headers ({exc})") from None
    for header, field in (("x-amz-checksum-crc64nvme", "ChecksumCRC64NVME"), ("x-amz-checksum-type", "ChecksumType"),
                          ("x-amz-storage-class", "StorageClass")):
        if header in headers:
            out[field] = headers[header]
    return out


class _AnswerStream(io.RawIOBase):
    """A streamed GET body; its connection goes back to the pool when read to the end, or is closed."""

    def __init__(self, client: sigv4.SigV4Client, answer: sigv4.Answer) -> None:
        self._client, self._answer = client, answer

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        response = self._answer.response
        if response is None:
            return b""
        try:
            data = response.read() if size is None or size < 0 else response.read(size)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self.close()
            raise ConnectionLostError(f"reading from S3: {type(exc).__name__}: {exc}") from None
        if not data or size is None or size < 0:
            self._client.release(self._answer)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._client.release(self._answer)
        super().close()
