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
import email.utils
import http.client
import io
import urllib.parse
from collections.abc import Callable
from typing import IO, Any, TypeVar
from xml.sax.saxutils import escape

from airflow_datasync.errors import ConnectionLostError, LocationError, NotFoundError
from airflow_datasync.locations.s3 import sigv4
from airflow_datasync.locations.s3.errors import s3_error
from airflow_datasync.locations.s3.sigv4 import ListPage
from airflow_datasync.retry import retrying

T = TypeVar("T")
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
                  delimiter: str | None = None) -> ListPage:
        """One ListObjectsV2 page under ``prefix`` (keys decoded)."""

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

    def _retry(self, call: Callable[[], T]) -> T:
        return retrying(call, attempts=self.attempts, on_connection_lost=self.client.drop_idle)

    def _send(self, operation: str, method: str, bucket: str, key: str, query: list[tuple[str, str]] | None = None,
              headers: dict[str, str] | None = None, body: bytes = b"", *, ok: tuple[int, ...] = (200,),
              pinned: bool = False, unsigned_payload: bool = False) -> sigv4.Answer:
        """One request, retried while transient; an answer outside ``ok`` becomes the vocabulary error."""
        def attempt() -> sigv4.Answer:
            answer = self.client.request(operation, method, bucket, key, query, headers, body,
                                         unsigned_payload=unsigned_payload)
            if answer.status not in ok:
                raise s3_error(object_url(bucket, key), answer.status, sigv4.error_code(answer.body), pinned=pinned)
            return answer

        return self._retry(attempt)

    def list_page(self, bucket: str, prefix: str, token: str | None = None, *, max_keys: int = 1000,
                  delimiter: str | None = None) -> ListPage:
        query = [("encoding-type", "url"), ("list-type", "2"), ("max-keys", str(max_keys)), ("prefix", prefix)]
        if token is not None:
            query.append(("continuation-token", token))
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
        return self._send("PutObject", "PUT", bucket, key, headers=headers, body=body).headers.get("etag")

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
        answer = self._send("CreateMultipartUpload", "POST", bucket, key, [("uploads", "")], headers)
        upload_id = self._result(answer, bucket, key, "InitiateMultipartUploadResult", field="UploadId")
        if not upload_id:
            raise LocationError(f"{object_url(bucket, key)}: CreateMultipartUpload answered no upload id")
        return upload_id

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
        answer = self._send("CompleteMultipartUpload", "POST", bucket, key, [("uploadId", upload_id)], headers,
                            body.encode())
        return self._result(answer, bucket, key, "CompleteMultipartUploadResult")

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        self._send("AbortMultipartUpload", "DELETE", bucket, key, [("uploadId", upload_id)], ok=(200, 204, 404))

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
