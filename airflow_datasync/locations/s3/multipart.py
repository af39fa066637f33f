"""A multipart upload in progress, through the signed-HTTP client or boto3: send parts, complete, abort."""

from __future__ import annotations

from typing import Any

from airflow_datasync import checksum


class Multipart:
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


class SigV4Multipart(Multipart):
    def _upload(self, number: int, body: bytes, crc64: str) -> Any:
        return number, self.client.upload_part(self.bucket, self.key, self.upload_id, number, body, crc64), crc64

    def complete(self, parts: list[Any], crc64: str, if_none_match: bool) -> str | None:
        return self.client.complete_multipart(self.bucket, self.key, self.upload_id, parts, crc64, if_none_match)

    def abort(self) -> None:
        self.client.abort_multipart(self.bucket, self.key, self.upload_id)


class BotoMultipart(Multipart):
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

