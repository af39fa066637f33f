"""The fallback transport: the same S3 operations through boto3, for connections the SigV4 client cannot
reproduce (proxies, FIPS or dual-stack endpoints, botocore options of their own; see
:func:`~airflow_datasync.locations.s3.sigv4.usable`). botocore's own retries are off: transient failures
are retried by :func:`airflow_datasync.retry.retrying`, as on the main path."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import IO, Any, TypeVar

from airflow_datasync.errors import ConnectionLostError, NotFoundError, TransientError
from airflow_datasync.locations.s3.errors import botocore_error
from airflow_datasync.locations.s3.sigv4 import ListPage
from airflow_datasync.locations.s3.transport import (
    DeferredAborts,
    Part,
    S3Transport,
    object_url,
    tagging,
)
from airflow_datasync.retry import retrying

T = TypeVar("T")


class BotoTransport(S3Transport):
    """The operations as calls of one (thread-safe) boto3 S3 client."""

    def __init__(self, client: Any, *, attempts: int = 4) -> None:
        self.client, self.attempts = client, attempts
        self.observers: list[Callable[[str], None]] = []
        self._deferred_aborts = DeferredAborts()
        client.meta.events.register("before-call.s3", self._observe)

    def _observe(self, event_name: str, **_: Any) -> None:
        for observe in self.observers:
            observe(event_name.rsplit(".", 1)[-1])

    def _call(self, bucket: str, key: str, call: Callable[[], T], *, pinned: bool = False) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        def attempt() -> T:
            try:
                return call()
            except (BotoCoreError, ClientError) as exc:
                raise botocore_error(object_url(bucket, key), exc, pinned=pinned) from None

        result = retrying(attempt, attempts=self.attempts)
        self._deferred_aborts.retry(self.abort_multipart)  # S3 answers again: abort what it missed
        return result

    def list_page(self, bucket: str, prefix: str, token: str | None = None, *, max_keys: int = 1000,
                  delimiter: str | None = None, start_after: str | None = None) -> ListPage:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max_keys}
        if token is not None:
            kwargs["ContinuationToken"] = token
        if start_after is not None:
            kwargs["StartAfter"] = start_after
        if delimiter is not None:
            kwargs["Delimiter"] = delimiter
        page = self._call(bucket, prefix, lambda: self.client.list_objects_v2(**kwargs))
        return ListPage(page.get("Contents") or [], [p["Prefix"] for p in page.get("CommonPrefixes") or []],
                        page.get("NextContinuationToken") if page.get("IsTruncated") else None)

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            return self._call(bucket, key, lambda: self.client.head_object(Bucket=bucket, Key=key,
                                                                         ChecksumMode="ENABLED"))
        except NotFoundError:
            return None

    def get(self, bucket: str, key: str, *, if_match: str | None = None,
            byte_range: tuple[int, int] | None = None) -> tuple[dict[str, Any], IO[bytes]]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        if byte_range is not None:
            kwargs["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        resp = self._call(bucket, key, lambda: self.client.get_object(**kwargs), pinned=if_match is not None)
        if "ContentRange" in resp:  # the whole object's size, as a HEAD would say
            resp["ContentLength"] = int(resp["ContentRange"].rsplit("/", 1)[1])
        return resp, _BodyStream(resp.pop("Body"))

    def put(self, bucket: str, key: str, body: bytes, metadata: dict[str, str], *, if_none_match: bool = False,
            tags: dict[str, str] | None = None, storage_class: str | None = None) -> str | None:
        kwargs = self._object_args(tags, storage_class)
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        return self._call(bucket, key, lambda: self.client.put_object(
            Bucket=bucket, Key=key, Body=body, Metadata=metadata, ChecksumAlgorithm="CRC64NVME", **kwargs)).get("ETag")

    @staticmethod
    def _object_args(tags: dict[str, str] | None, storage_class: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if storage_class:
            args["StorageClass"] = storage_class
        if tags:
            args["Tagging"] = tagging(tags)
        return args

    def copy(self, bucket: str, key: str, source_bucket: str, source_key: str, metadata: dict[str, str], *,
             if_match: str, keep_tags: bool, storage_class: str | None = None) -> str | None:
        kwargs: dict[str, Any] = ({"TaggingDirective": "COPY"} if keep_tags else
                                  {"TaggingDirective": "REPLACE", "Tagging": ""})
        if storage_class:
            kwargs["StorageClass"] = storage_class
        resp = self._call(bucket, key, lambda: self.client.copy_object(
            Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key}, Metadata=metadata,
            MetadataDirective="REPLACE", ChecksumAlgorithm="CRC64NVME", CopySourceIfMatch=if_match, **kwargs),
            pinned=True)
        return (resp.get("CopyObjectResult") or {}).get("ETag")

    def create_multipart(self, bucket: str, key: str, metadata: dict[str, str], *, full_object_crc: bool,
                         tags: dict[str, str] | None = None, storage_class: str | None = None) -> str:
        kwargs = self._object_args(tags, storage_class)
        if full_object_crc:
            kwargs["ChecksumType"] = "FULL_OBJECT"
        return self._call(bucket, key, lambda: self.client.create_multipart_upload(
            Bucket=bucket, Key=key, Metadata=metadata, ChecksumAlgorithm="CRC64NVME", **kwargs))["UploadId"]

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes, crc64: str) -> str:
        return self._call(bucket, key, lambda: self.client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body,
            ChecksumCRC64NVME=crc64))["ETag"]

    def upload_part_copy(self, bucket: str, key: str, upload_id: str, number: int, source_bucket: str,
                         source_key: str, byte_range: tuple[int, int], *, if_match: str) -> str:
        return self._call(bucket, key, lambda: self.client.upload_part_copy(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
            CopySource={"Bucket": source_bucket, "Key": source_key},
            CopySourceRange=f"bytes={byte_range[0]}-{byte_range[1]}", CopySourceIfMatch=if_match),
            pinned=True)["CopyPartResult"]["ETag"]

    def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[Part], *,
                           crc64: str | None = None, if_none_match: bool = False) -> str | None:
        entries = [{"PartNumber": n, "ETag": etag, **({"ChecksumCRC64NVME": crc} if crc else {})}
                   for n, etag, crc in parts]
        kwargs: dict[str, Any] = {"ChecksumCRC64NVME": crc64, "ChecksumType": "FULL_OBJECT"} if crc64 else {}
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        return self._call(bucket, key, lambda: self.client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": entries}, **kwargs)).get("ETag")

    def list_uploads(self, bucket: str, prefix: str) -> list[dict[str, str]]:
        uploads: list[dict[str, str]] = []
        markers: dict[str, str] = {}
        while True:
            page = self._call(bucket, prefix, lambda m=markers: self.client.list_multipart_uploads(
                Bucket=bucket, Prefix=prefix, **m))
            uploads.extend({"Key": u["Key"], "UploadId": u["UploadId"],
                            "Initiated": u["Initiated"].isoformat() if u.get("Initiated") else ""}
                           for u in page.get("Uploads") or [])
            if not page.get("IsTruncated"):
                return uploads
            markers = {"KeyMarker": page.get("NextKeyMarker") or "", "UploadIdMarker": page.get("NextUploadIdMarker") or ""}

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            self._call(bucket, key, lambda: self.client.abort_multipart_upload(Bucket=bucket, Key=key,
                                                                             UploadId=upload_id))
        except NotFoundError:
            pass
        except TransientError:
            self._deferred_aborts.defer(bucket, key, upload_id)
            raise

    def delete(self, bucket: str, key: str) -> None:
        self._call(bucket, key, lambda: self.client.delete_object(Bucket=bucket, Key=key))

    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        resp = self._call(bucket, key, lambda: self.client.get_object_tagging(Bucket=bucket, Key=key))
        return {t["Key"]: t["Value"] for t in resp.get("TagSet", [])}


class _BodyStream(io.RawIOBase):
    """botocore's StreamingBody as a file; a dropped connection is a ConnectionLostError."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            return self._body.read() if size is None or size < 0 else self._body.read(size)
        except (BotoCoreError, OSError) as exc:
            raise ConnectionLostError(f"reading from S3: {type(exc).__name__}: {exc}") from None

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()
