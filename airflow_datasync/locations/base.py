"""The one small interface every location backend implements, and the listing schema they share.

A location is a URI plus (for remote stores) an Airflow connection id. Backends stream listings as
Arrow record batches so that a tree of millions of entries never lives in Python objects at once.
"""

from __future__ import annotations

import abc
import posixpath
from dataclasses import dataclass
from typing import IO, Callable, Iterator

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute in ScanHints

#: Entry types in listings and manifests.
FILE, DIR, SYMLINK, OTHER = "file", "dir", "symlink", "other"

#: Schema of a listing batch yielded by :meth:`Location.scan`. ``path`` is relative to the location root,
#: POSIX separators, no leading slash, UTF-8. ``error`` is set for entries that could not be read
#: (permission denied, a name that is not UTF-8, an unsupported file type): they are reported, not copied.
LISTING_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("atime_ns", pa.int64()),
        pa.field("mode", pa.int32()),
        pa.field("uid", pa.int64()),
        pa.field("gid", pa.int64()),
        pa.field("link_target", pa.string()),
        pa.field("error", pa.string()),
        #: Object stores: the ETag seen in the listing. A later execution reuses what it learnt about an
        #: object (its metadata, from a HEAD) while the ETag is unchanged.
        pa.field("etag", pa.string()),
        #: False where a listing did not read an entry's metadata (an object store skips the HEAD when the
        #: plan does not need it): its mtime is the store's own time and mode/uid/gid are unknown; the copy
        #: takes the real values from the read itself. Null (file systems) or True: known.
        pa.field("meta_known", pa.bool_()),
    ]
)


def listing_batch(cols: dict[str, list]) -> pa.RecordBatch:
    """A LISTING_SCHEMA batch from column lists; columns a backend does not fill are null."""
    n = len(cols["path"])
    arrays = [pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type) for f in LISTING_SCHEMA]
    return pa.RecordBatch.from_arrays(arrays, schema=LISTING_SCHEMA)


class LocationError(Exception):
    """A location cannot be used as asked. The message names the location, the path and the fix."""


class DirectoryNotEmptyError(LocationError):
    """A directory to delete still holds entries (excluded by filters, or new): it is kept, not an error."""


class ChangedSinceListingError(LocationError):
    """The entry is no longer the version PREPARING listed; the next execution copies the new one."""


class UnsafePathError(LocationError):
    """A relative path would escape the location root (``..``, absolute, NUL, empty component)."""


def safe_relpath(path: str) -> str:
    """Return ``path`` if it is a clean relative POSIX path inside the root, else raise.

    Every backend calls this before touching a path it did not generate itself, so that a key such as
    ``../x`` or ``/etc/passwd`` coming from another store can never escape the destination root.
    """
    if not path or "\x00" in path:
        raise UnsafePathError(f"unsafe path {path!r}: empty or contains NUL")
    if path.startswith("/") or "\\" in path:
        raise UnsafePathError(f"unsafe path {path!r}: absolute paths and backslashes are refused")
    # An empty, '.' or '..' component, tested on the string itself (this runs several times per file copied).
    padded = f"/{path}/"
    if "//" in padded or "/./" in padded or "/../" in padded:
        raise UnsafePathError(f"unsafe path {path!r}: '.', '..' and empty components are refused")
    return path


def parent_of(path: str) -> str:
    return posixpath.dirname(path)


@dataclass(frozen=True)
class StatResult:
    """What :meth:`Location.stat` returns: enough to detect a change during a copy."""

    type: str
    size: int
    mtime_ns: int
    atime_ns: int | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    link_target: str | None = None
    #: SMB only: creation time and the FILE_ATTRIBUTE_* bits a client may copy (None elsewhere).
    creation_ns: int | None = None
    attributes: int | None = None
    etag: str | None = None  #: object stores: changes whenever the content does
    #: S3 only: the object's user metadata other than ours (kept on S3 → S3 copies).
    user_metadata: dict[str, str] | None = None
    #: S3 only: the owner's user and group names stored beside the ids (Uid/Gid NAME or BOTH); file
    #: systems name their ids through their user database instead (see airflow_datasync.owners).
    user_name: str | None = None
    group_name: str | None = None


@dataclass(frozen=True)
class Metadata:
    """Metadata to apply to a written entry; ``None`` means leave as the store sets it."""

    mtime_ns: int | None = None
    atime_ns: int | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    #: SMB only (ignored by other backends): creation time, FILE_ATTRIBUTE_* bits, and a self-relative
    #: security descriptor with the SecurityDescriptorCopyFlags value it was read with.
    creation_ns: int | None = None
    attributes: int | None = None
    security_descriptor: bytes | None = None
    security_flags: str | None = None
    #: S3 only (ignored elsewhere): user metadata carried over from an S3 source, and object tags
    #: (ObjectTags=PRESERVE).
    user_metadata: dict[str, str] | None = None
    tags: dict[str, str] | None = None
    #: S3 only (ignored elsewhere): owner names to store beside the ids (Uid/Gid NAME or BOTH).
    user_name: str | None = None
    group_name: str | None = None


class ScanHints:
    """Metadata an earlier execution saw, by path, valid only while the object's ETag is unchanged."""

    FIELDS = ("type", "mtime_ns", "atime_ns", "mode", "uid", "gid", "link_target")

    def __init__(self, table: pa.Table) -> None:
        if table.num_rows:
            keep = pa.compute.is_valid(table["etag"])
            if "meta_known" in table.column_names:  # placeholders are never passed on as knowledge
                keep = pa.compute.and_(keep, pa.compute.fill_null(table["meta_known"], True))
            table = table.filter(keep)
        cols = [table[name].to_pylist() for name in ("path", "etag") + self.FIELDS]
        self._by_path = {row[0]: row[1:] for row in zip(*cols)}

    def __len__(self) -> int:
        return len(self._by_path)

    def get(self, path: str, etag: str) -> dict | None:
        hit = self._by_path.get(path)
        if hit is None or hit[0] != etag:
            return None
        return dict(zip(self.FIELDS, hit[1:]))


class Location(abc.ABC):
    """A tree of files at a URI. Paths are always relative to the location root."""

    scheme: str = ""
    #: Copy threads when the task's ``concurrency`` is 0 (the default): see TaskOptions.workers.
    default_concurrency: int = 8
    #: True where :meth:`scan` can use :class:`ScanHints` (stores that need a request per entry for metadata).
    uses_scan_hints: bool = False
    #: True where a listing's ETag pins one immutable version of an entry (:meth:`open_version`).
    listing_is_snapshot: bool = False
    #: False where this process cannot give entries to other owners (a file system, not as root): Uid/Gid
    #: are then neither applied nor compared, and the report says so once instead of failing every file.
    keeps_ownership: bool = True
    #: False where directories are markers whose metadata a store may not keep (S3-compatible stores that
    #: are file systems underneath, such as SeaweedFS, drop it): their metadata is written, not compared.
    keeps_directory_metadata: bool = True
    #: True where writing or deleting inside a directory changes the directory's own times (file systems,
    #: SMB): its metadata is then set once more after the shards, deepest first. False for object-store
    #: markers, which are objects like any other: created with their metadata, nothing changes them after.
    directory_times_follow_children: bool = True
    #: Resolution of the modification times the store keeps (SMB: 100 ns); finer source times are
    #: compared at this resolution so that an unchanged file is not copied again.
    mtime_resolution_ns: int = 1
    #: Whether the store keeps POSIX mode/uid/gid; if either side does not, they are not compared.
    posix_metadata: bool = True
    #: How the store names owner ids for Uid/Gid NAME and BOTH: "posix" (the user database, pwd/grp),
    #: "metadata" (names stored beside the ids with each entry: S3) or None (no POSIX owners: SMB).
    owner_names: str | None = None
    #: Whether names that differ only in case name the same entry (SMB): the planner then matches such
    #: names between the two sides and refuses source entries that would collide (see plan.fold_case).
    case_insensitive: bool = False

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        self.uri = uri
        self.conn_id = conn_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    # -- checks -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def check(self, *, writable: bool, dry_run: bool = False) -> bool:
        """Raise :class:`LocationError` unless the root exists and is readable (and writable).

        A missing destination folder whose parent exists is created. With ``dry_run`` nothing changes: no
        folder is created and no probe written (writability is judged from permissions where the protocol
        shows them), and such a missing folder passes as an empty one. Returns whether the root exists."""

    def contains(self, other: "Location") -> bool:
        """True if ``other`` lies inside this location (or is the same): such pairs are refused."""
        return False

    # -- reading ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def scan(self, batch_size: int = 10_000, hints: "ScanHints | None" = None,
             needs_metadata: "Callable[[str, int], bool] | None" = None) -> Iterator[pa.RecordBatch]:
        """Yield the whole tree below the root as :data:`LISTING_SCHEMA` batches (root excluded).

        ``hints`` (object stores) hold what an earlier execution learnt per path and ETag, so that
        unchanged objects need no HEAD request; backends without ETags ignore them. ``needs_metadata(path,
        size)`` (object stores) says which entries the plan will compare; others are listed with
        ``meta_known`` False. None: read every entry's metadata.
        """

    @abc.abstractmethod
    def stat(self, path: str) -> StatResult | None:
        """Stat one entry without following symlinks; ``None`` if it does not exist."""

    @abc.abstractmethod
    def open_read(self, path: str) -> IO[bytes]:
        """Open a file for streaming reads."""

    def open_version(self, path: str, etag: str) -> IO[bytes]:
        """Read exactly the version a listing named (stores with :attr:`listing_is_snapshot`); raise
        :class:`ChangedSinceListingError` if the entry changed since."""
        raise NotImplementedError(f"{type(self).__name__} does not pin versions")

    # -- writing ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def write(self, path: str, chunks: Iterator[bytes], meta: Metadata, *, tag: str,
              before_commit: Callable[[int], None] | None = None, overwrite: bool = True) -> int:
        """Write a file atomically: nothing appears at ``path`` unless the whole stream was written.

        ``tag`` makes the temporary name unique to the writer (execution and shard). ``before_commit``
        is called with the byte count after the data is written and before it becomes visible; if it
        raises (e.g. the source changed during the copy) the temporary data is removed. With
        ``overwrite=False`` (OverwriteMode=NEVER) an entry that appeared at ``path`` meanwhile is never
        replaced: :class:`FileExistsError`. Returns bytes written.
        """

    @abc.abstractmethod
    def symlink(self, path: str, target: str, meta: Metadata, *, tag: str) -> None:
        """Create or atomically replace a symlink at ``path``."""

    @abc.abstractmethod
    def mkdir(self, path: str, meta: Metadata | None = None) -> None:
        """Create a directory (and missing parents); fine if it exists. ``meta`` is what FINALIZE will set
        on it; a store whose directories keep it from creation (no later change) may write it now."""

    @abc.abstractmethod
    def set_metadata(self, path: str, meta: Metadata, *, is_dir: bool = False) -> list[str]:
        """Apply metadata to an existing entry; returns warnings (e.g. chown refused) instead of failing."""

    @abc.abstractmethod
    def delete(self, path: str, *, is_dir: bool) -> None:
        """Delete one entry (a directory only if empty)."""

    def etag_is_md5(self, size: int) -> bool:
        """True when a file of ``size`` bytes written here gets the MD5 of its bytes as ETag (one S3 PUT):
        the transfer then computes that MD5 too, and VERIFYING can compare ETags from a listing."""
        return False

    def list_etags(self) -> dict[str, str] | None:
        """Path → ETag for the whole location from listing requests, or None where there are no ETags."""
        return None

    def native_checksum(self, path: str) -> str | None:
        """The store's own CRC64NVME of ``path`` (hex) if it keeps one, so VERIFYING need not read the data."""
        return None

    def get_security_descriptor(self, path: str, flags: str) -> bytes | None:
        """The entry's security descriptor as SecurityDescriptorCopyFlags asks; ``None`` where there is none."""
        return None

    def set_security_descriptor(self, path: str, descriptor: bytes | None, flags: str) -> None:
        """Apply a descriptor from :meth:`get_security_descriptor`; stores without them ignore it."""

    def sync(self) -> None:
        """Make what was written durable (e.g. ``syncfs``); called before a shard records completion."""

    def close(self) -> None:
        """Release connections and file descriptors."""
