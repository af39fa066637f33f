"""One multipart upload in progress through the connection's transport: parts sent with their CRC64NVME,
completed with the whole object's (combined from the parts', no second pass over the bytes), or aborted."""

from __future__ import annotations

from airflow_datasync import checksum
from airflow_datasync.locations.s3.transport import Part, S3Transport


class Multipart:
    """``send`` a part (returns its entry for the completion, its CRC64NVME as an int and its length),
    then ``complete`` with the whole object's CRC64NVME, or ``abort``."""

    def __init__(self, transport: S3Transport, bucket: str, key: str, upload_id: str) -> None:
        self.transport, self.bucket, self.key, self.upload_id = transport, bucket, key, upload_id

    def send(self, number: int, body: bytes) -> tuple[Part, int, int]:
        part_hash = checksum.new_hasher()
        part_hash.update(body)
        crc64 = part_hash.base64()
        etag = self.transport.upload_part(self.bucket, self.key, self.upload_id, number, body, crc64)
        return (number, etag, crc64), part_hash.value, len(body)

    def complete(self, parts: list[Part], crc64: str, if_none_match: bool) -> str | None:
        return self.transport.complete_multipart(self.bucket, self.key, self.upload_id, parts, crc64=crc64,
                                                 if_none_match=if_none_match)

    def abort(self) -> None:
        self.transport.abort_multipart(self.bucket, self.key, self.upload_id)
