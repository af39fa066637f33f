"""The manifest store's view of S3: a pyarrow file system (paths ``bucket/key``) over the same connection
settings and transport as the S3 backend, so that the store trusts the same CA bundle, follows the same
endpoint and addressing style, and maps errors through the same table.

:func:`store_filesystem` is the public way in. Writes appear whole: an output stream is uploaded on
close, in one PUT or a multipart upload completed only then. Directories are implied by keys.
"""

from __future__ import annotations

import io
import os
import secrets
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from airflow_datasync import checksum
from airflow_datasync.errors import ConnectionLostError, LocationError, NotFoundError
from airflow_datasync.locations.base import TEMP_PREFIX
from airflow_datasync.locations.s3.multipart import Multipart
from airflow_datasync.locations.s3.settings import settings_for
from airflow_datasync.locations.s3.transport import Part, S3Transport
from airflow_datasync.locations.s3.uri import PART_SIZE

#: Objects up to this size are read whole by one GET when opened for random access (most manifest
#: files); larger ones are read by ranges, as Parquet asks for them.
WHOLE_READ_LIMIT = 8 * 1024 * 1024


def store_filesystem(conn_id: str | None) -> pafs.FileSystem:
    """The pyarrow file system of an S3 manifest store reached through Airflow AWS connection ``conn_id``
    (None: the environment), sharing the S3 backend's settings and transport."""
    return pafs.PyFileSystem(S3StoreHandler(settings_for(conn_id).transport, conn_id))


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.removeprefix("s3://").strip("/").partition("/")
    if not bucket:
        raise LocationError(f"{path!r}: an S3 store path is bucket/key")
    return bucket, key


class S3StoreHandler(pafs.FileSystemHandler):
    """pyarrow's file system callbacks as S3 requests through one transport."""

    def __init__(self, transport: S3Transport, conn_id: str | None) -> None:
        self.transport, self.conn_id = transport, conn_id

    def get_type_name(self) -> str:
        return "datasync-s3"

    def equals(self, other: Any) -> bool:
        return isinstance(other, S3StoreHandler) and other.transport is self.transport

    def normalize_path(self, path: str) -> str:
        return path.removeprefix("s3://").rstrip("/")

    def check(self, path: str) -> None:
        """The bucket exists, the prefix can be listed and takes a probe object (written, then removed).

        The listing comes first: a PUT into a missing bucket would create it on servers that create
        buckets on upload (SeaweedFS does for admin identities), so a misspelt bucket must fail here."""
        bucket, key = _split(path)
        prefix = key.rstrip("/") + "/" if key else ""
        try:
            self.transport.list_page(bucket, prefix, max_keys=1)
        except NotFoundError:
            raise NotFoundError(f"s3://{bucket}: the bucket does not exist (a bucket is never created for "
                                "a manifest store: create it, or fix its name)") from None
        except ConnectionLostError as exc:
            raise ConnectionLostError(f"cannot reach S3 ({exc})") from None
        probe = f"{prefix}{TEMP_PREFIX}probe-{os.getpid()}-{secrets.token_hex(3)}"
        self.transport.put(bucket, probe, b"", {})
        self.transport.delete(bucket, probe)

    # -- reading the tree ---------------------------------------------------------------------------
    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return [self._info(path) for path in paths]

    def _info(self, path: str) -> pafs.FileInfo:
        bucket, key = _split(path)
        if not key:
            return pafs.FileInfo(path, pafs.FileType.Directory)
        head = self.transport.head(bucket, key)
        if head is not None:
            return pafs.FileInfo(path, pafs.FileType.File, size=head["ContentLength"], mtime=head["LastModified"])
        page = self.transport.list_page(bucket, key.rstrip("/") + "/", max_keys=1)
        if page.contents or page.prefixes:
            return pafs.FileInfo(path, pafs.FileType.Directory)
        return pafs.FileInfo(path, pafs.FileType.NotFound)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        bucket, key = _split(selector.base_dir)
        prefix = key.rstrip("/") + "/" if key else ""
        infos: dict[str, pafs.FileInfo] = {}
        token = None
        while True:
            page = self.transport.list_page(bucket, prefix, token, delimiter=None if selector.recursive else "/")
            for sub in page.prefixes:
                path = f"{bucket}/{sub.rstrip('/')}"
                infos[path] = pafs.FileInfo(path, pafs.FileType.Directory)
            for obj in page.contents:
                rel = obj["Key"][len(prefix):]
                if not rel:
                    continue
                if selector.recursive:  # every level between the base and the object is a directory
                    parts = rel.rstrip("/").split("/")
                    for depth in range(1, len(parts)):
                        path = f"{bucket}/{prefix}{'/'.join(parts[:depth])}"
                        infos.setdefault(path, pafs.FileInfo(path, pafs.FileType.Directory))
                path = f"{bucket}/{obj['Key'].rstrip('/')}"
                if obj["Key"].endswith("/"):
                    infos.setdefault(path, pafs.FileInfo(path, pafs.FileType.Directory))
                else:
                    infos[path] = pafs.FileInfo(path, pafs.FileType.File, size=obj["Size"], mtime=obj["LastModified"])
            if page.next_token is None:
                break
            token = page.next_token
        if not infos and not selector.allow_not_found and self._info(selector.base_dir).type == pafs.FileType.NotFound:
            raise NotFoundError(f"s3://{selector.base_dir}: no such directory")
        return sorted(infos.values(), key=lambda info: info.path)

    # -- reading files ----------------------------------------------------------------------------
    def open_input_stream(self, path: str) -> pa.NativeFile:
        bucket, key = _split(path)
        _head, body = self.transport.get(bucket, key)
        return pa.PythonFile(body, mode="r")

    def open_input_file(self, path: str) -> pa.NativeFile:
        bucket, key = _split(path)
        head = self.transport.head(bucket, key)
        if head is None:
            raise NotFoundError(f"s3://{path}: no such object")
        size = head["ContentLength"]
        if size <= WHOLE_READ_LIMIT:
            _head, body = self.transport.get(bucket, key, if_match=head["ETag"])
            with body:
                return pa.BufferReader(body.read())
        return pa.PythonFile(_RangeReader(self.transport, bucket, key, size, head["ETag"]), mode="r")

    # -- writing ----------------------------------------------------------------------------------
    def open_output_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        bucket, key = _split(path)
        return pa.PythonFile(_Upload(self.transport, bucket, key), mode="w")

    def open_append_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        raise NotImplementedError("S3 objects cannot be appended to")

    def create_dir(self, path: str, recursive: bool) -> None:
        """Nothing to do: directories are implied by the keys below them."""

    def delete_file(self, path: str) -> None:
        self.transport.delete(*_split(path))

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        bucket, key = _split(path)
        prefix = key.rstrip("/") + "/" if key else ""
        token, found = None, False
        while True:
            page = self.transport.list_page(bucket, prefix, token)
            for obj in page.contents:
                found = True
                if obj["Key"] != prefix:
                    self.transport.delete(bucket, obj["Key"])
            if page.next_token is None:
                break
            token = page.next_token
        if not found and not missing_dir_ok and key:
            raise NotFoundError(f"s3://{path}: no such directory")

    def delete_dir(self, path: str) -> None:
        bucket, key = _split(path)
        self.delete_dir_contents(path, missing_dir_ok=True)
        if key:
            self.transport.delete(bucket, key.rstrip("/") + "/")

    def delete_root_dir_contents(self) -> None:
        raise NotImplementedError("the manifest store never empties a whole bucket")

    def copy_file(self, src: str, dest: str) -> None:
        (src_bucket, src_key), (bucket, key) = _split(src), _split(dest)
        head = self.transport.head(src_bucket, src_key)
        if head is None:
            raise NotFoundError(f"s3://{src}: no such object")
        self.transport.copy(bucket, key, src_bucket, src_key, head.get("Metadata") or {}, if_match=head["ETag"],
                            keep_tags=True)

    def move(self, src: str, dest: str) -> None:
        self.copy_file(src, dest)
        self.delete_file(src)


class _RangeReader(io.RawIOBase):
    """A seekable read-only file over ranged GETs of one version of an object (pinned to its ETag)."""

    def __init__(self, transport: S3Transport, bucket: str, key: str, size: int, etag: str) -> None:
        self._transport, self._bucket, self._key, self._size, self._etag = transport, bucket, key, size, etag
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def size(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        if end <= self._pos:
            return b""
        _head, body = self._transport.get(self._bucket, self._key, if_match=self._etag,
                                          byte_range=(self._pos, end - 1))
        with body:
            data = body.read()
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class _Upload(io.RawIOBase):
    """An output stream that appears whole on close: one PUT up to :data:`PART_SIZE`, else a multipart
    upload of parts of that size with the whole object's CRC64NVME, completed on close."""

    def __init__(self, transport: S3Transport, bucket: str, key: str) -> None:
        self._transport, self._bucket, self._key = transport, bucket, key
        self._buffer = bytearray()
        self._upload: Multipart | None = None
        self._parts: list[Part] = []
        self._crc = checksum.new_hasher()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        while len(self._buffer) >= 2 * PART_SIZE:  # keep one part back: the last part may be any size
            self._send(bytes(self._buffer[:PART_SIZE]))
            del self._buffer[:PART_SIZE]
        return len(data)

    def _send(self, body: bytes) -> None:
        if self._upload is None:
            upload_id = self._transport.create_multipart(self._bucket, self._key, {}, full_object_crc=True)
            self._upload = Multipart(self._transport, self._bucket, self._key, upload_id)
        part, crc, length = self._upload.send(len(self._parts) + 1, body)
        self._parts.append(part)
        self._crc.value = checksum.combine(self._crc.value, crc, length)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._upload is None and len(self._buffer) <= PART_SIZE:
                self._transport.put(self._bucket, self._key, bytes(self._buffer), {})
            else:
                while self._buffer:
                    self._send(bytes(self._buffer[:PART_SIZE]))
                    del self._buffer[:PART_SIZE]
                assert self._upload is not None
                try:
                    self._upload.complete(self._parts, self._crc.base64(), False)
                except BaseException:
                    self._upload.abort()
                    raise
        finally:
            super().close()


__all__ = ["S3StoreHandler", "store_filesystem"]
