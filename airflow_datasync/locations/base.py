"""The one small interface every location backend implements, and the listing schema they share.

A location is a URI plus (for remote stores) an Airflow connection id. Backends stream listings as
Arrow record batches so that a tree of millions of entries never lives in Python objects at once.
"""

from __future__ import annotations

import abc
import hashlib
import re
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute

from airflow_datasync import checksum
from airflow_datasync.errors import (  # noqa: F401 - the vocabulary, re-exported where backends import it
    AlreadyExistsError,
    ChangedSinceListingError,
    ConnectionLostError,
    DirectoryNotEmptyError,
    LocationError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
    UnsafePathError,
)
from airflow_datasync.locations.ranges import RangedWrite, RangeWritten

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
        #: File systems: ``"<device>:<inode>"`` of a file with more than one name (st_nlink > 1), so that
        #: PREPARING can tell the names of one file apart from copies; null for every other entry (and in
        #: listings written before the column existed).
        pa.field("hardlink_id", pa.string()),
    ]
)


def listing_batch(cols: dict[str, list]) -> pa.RecordBatch:
    """A LISTING_SCHEMA batch from column lists; columns a backend does not fill are null."""
    n = len(cols["path"])
    arrays = [pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type) for f in LISTING_SCHEMA]
    return pa.RecordBatch.from_arrays(arrays, schema=LISTING_SCHEMA)


#: Names that start with this prefix are this engine's temporary files: every backend hides them from scan.
TEMP_PREFIX = ".~ds-"

#: A writer's tag as the engine builds it (the execution id's random last 8 hex digits, the shard number),
#: then the CRC32 of the final name, then (in temporaries named since issue 13) as much of the final name as
#: fits in 255 bytes.
_TEMP_NAME = re.compile(r"^\.~ds-(?P<tag>[0-9a-f]{8}-[0-9]+)-[0-9a-f]{8}(?:-|$)")
#: Longest file name the file systems and SMB servers we write to accept, in bytes.
MAX_NAME_BYTES = 255


def temp_name(name: str, tag: str) -> str:
    """The temporary name under which ``name`` is written by the writer ``tag``: whose it is (execution and
    shard, for the cleaners), which file (CRC32, and the name's start for people reading a listing), at most
    :data:`MAX_NAME_BYTES` bytes whatever the length of ``name``."""
    encoded = name.encode("utf-8", "surrogateescape")
    head = f"{TEMP_PREFIX}{tag}-{zlib.crc32(encoded):08x}-".encode()
    room = MAX_NAME_BYTES - len(head)
    return (head + encoded[:room]).decode("utf-8", "ignore")  # "ignore": a character cut in half is dropped


def temp_tag(name: str) -> str | None:
    """The writer's tag in a temporary's name, None for names this engine did not build for a write."""
    found = _TEMP_NAME.match(name)
    return found.group("tag") if found else None


#: Kinds of :class:`Leftover`.
TEMPORARY, UPLOAD = "temporary", "upload"


@dataclass(frozen=True)
class Leftover:
    """What a write killed half way leaves at a destination: a temporary file (file systems, SMB), or an
    unfinished upload (an S3 multipart upload, an Azure blob's uncommitted blocks) of the object at ``path``."""

    kind: str
    #: A temporary's own path, or the path of the object an upload was writing, relative to the root.
    path: str
    #: The writer's tag (``<execution id[-8:]>-<shard>``), None where nothing names one.
    tag: str | None = None
    size: int = 0
    #: The upload's id (S3 UploadId; Azure: the block id prefix of the upload).
    upload_id: str | None = None
    #: When the upload was started (ISO 8601), where the store says.
    started: str | None = None


@dataclass
class Cleanup:
    """What a clean-up of leftovers did: ``removed`` (temporaries deleted, uploads aborted) and their bytes,
    ``in_use`` kept because a live writer holds them."""

    removed: int = 0
    bytes: int = 0
    in_use: int = 0

    def add(self, other: Cleanup) -> Cleanup:
        self.removed, self.bytes, self.in_use = (self.removed + other.removed, self.bytes + other.bytes,
                                                 self.in_use + other.in_use)
        return self


def safe_relpath(path: str) -> str:
    """Return ``path`` if it is a clean relative POSIX path inside the root, else raise.

    Every backend calls this before touching a path it did not generate itself, so that a key such as
    ``../x`` or ``/etc/passwd`` coming from another store can never escape the destination root. A
    backslash is an ordinary character here (POSIX names, S3 keys, blob names): a backend for which it is
    a separator refuses it itself, per entry, through :meth:`Location.name_problem`.
    """
    if not path or "\x00" in path:
        raise UnsafePathError(f"unsafe path {path!r}: empty or contains NUL")
    if path.startswith("/"):
        raise UnsafePathError(f"unsafe path {path!r}: absolute paths are refused")
    # An empty, '.' or '..' component, tested on the string itself (this runs several times per file copied).
    padded = f"/{path}/"
    if "//" in padded or "/./" in padded or "/../" in padded:
        raise UnsafePathError(f"unsafe path {path!r}: '.', '..' and empty components are refused")
    return path


#: An empty, read-only extras map (the default of :attr:`StatResult.extras` and :attr:`Metadata.extras`).
NO_EXTRAS: Mapping[str, Any] = MappingProxyType({})

#: The extras keys the backends know, namespaced by the protocol that gives them meaning (like rclone's
#: metadata map). A backend declares in :attr:`Capabilities.extras_read` and ``extras_write`` which of
#: them it reads and writes; the engine copies the keys both sides declare (and the options allow).
SMB_CREATION_NS = "smb.creation_ns"            #: int: creation time, ns since 1970 (with Mtime=PRESERVE)
SMB_ATTRIBUTES = "smb.attributes"              #: int: the FILE_ATTRIBUTE_* bits a client may copy
SMB_SECURITY_DESCRIPTOR = "smb.security_descriptor"  #: bytes: self-relative owner + DACL (+ SACL)
SMB_SECURITY_FLAGS = "smb.security_flags"      #: str: the SecurityDescriptorCopyFlags it was read with
S3_USER_METADATA = "s3.user_metadata"          #: dict[str, str]: x-amz-meta-* other than ours
S3_TAGS = "s3.tags"                            #: dict[str, str]: object tags (ObjectTags=PRESERVE)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared once per backend (or per location where it depends on the
    process, e.g. whether it may chown). The engine decides from these alone: it never asks a location's
    scheme or probes it for methods."""

    #: Copy threads when the task's ``concurrency`` is 0 (per-request latency: more pay off on object stores).
    concurrency: int = 8
    #: Each copy costs milliseconds of interpreter time here (a protocol spoken in Python, e.g. SMB): a
    #: shard of many files is worth spreading over processes (``transfer_processes`` "auto").
    interpreter_bound_copies: bool = False
    #: Verification threads with ``concurrency`` 0 when this location is checked against another; None:
    #: as :attr:`concurrency`. A file system hashing local files is interpreter-bound: fewer threads.
    verify_concurrency: int | None = None
    #: Copy and verification threads with ``concurrency`` 0 for files smaller on average than
    #: ``options.SMALL_FILE_BYTES`` when every location involved declares it (the most of them); None:
    #: as above. On a local disk a small file's system calls take microseconds, so a second thread only
    #: hands the interpreter lock to and fro around each of them.
    small_file_concurrency: int | None = None
    #: Resolution of the modification times the store keeps (SMB: 100 ns).
    mtime_resolution_ns: int = 1
    #: Whether the store keeps POSIX mode/uid/gid; if either side does not, they are neither set nor compared.
    posix_metadata: bool = True
    #: False where this process cannot give entries to other owners (a file system, not as root).
    keeps_ownership: bool = True
    #: How owner ids get names for Uid/Gid NAME and BOTH: "posix" (pwd/grp), "metadata" (stored beside the
    #: ids with each entry) or None.
    owner_names: str | None = None
    #: Whether names that differ only in case name the same entry (SMB).
    case_insensitive: bool = False
    #: False where directories are markers whose metadata a store may not keep (S3 on SeaweedFS).
    keeps_directory_metadata: bool = True
    #: True where writing inside a directory changes its times (file systems): FINALIZE sets them last.
    directory_times_follow_children: bool = True
    #: True where :meth:`Location.scan` uses :class:`ScanHints` (a request per entry for metadata otherwise).
    scan_hints: bool = False
    #: True where a listing's ETag pins one immutable version (:meth:`Location.open_version`).
    versioned_reads: bool = False
    #: True where :meth:`Location.list_md5s` gives path → the MD5 of each object's bytes from listing requests
    #: (S3: a single PUT's ETag; Azure: the Content-MD5 the service computed), for what :meth:`stores_md5`.
    listed_md5s: bool = False
    #: True where :meth:`Location.native_checksum` may return the store's own CRC64NVME.
    native_checksums: bool = False
    #: True where :meth:`Location.copy_object` can copy server-side from locations it :meth:`can_copy_from`.
    server_side_copy: bool = False
    #: True where :meth:`Location.pending_uploads` lists every unfinished upload below the root (S3
    #: ListMultipartUploads): the engine then looks for its own records only of those listed.
    lists_uploads: bool = False
    #: True where :meth:`Location.sync` makes writes durable (a file system's syncfs); stores whose writes
    #: are durable when acknowledged declare False.
    needs_sync: bool = False
    #: Extras keys this backend fills in :attr:`StatResult.extras` (or returns from :meth:`read_extras`).
    extras_read: frozenset[str] = frozenset()
    #: Extras keys this backend applies from :attr:`Metadata.extras` when it writes an entry.
    extras_write: frozenset[str] = frozenset()
    #: The subset of :attr:`extras_read` that costs a request of its own: only :meth:`read_extras` returns them.
    extras_on_request: frozenset[str] = frozenset()
    #: True where files may hold holes (a file system): as a source, :meth:`Location.sparse_layout` says
    #: where a sparse file's data is; as a destination, :meth:`Location.write` takes :class:`Hole` chunks
    #: and seeks over them, so a sparse file stays sparse. Object stores and SMB hold every byte.
    sparse_files: bool = False
    #: True where one file may have several names (link(2)): :meth:`Location.hard_link` makes one, and
    #: listings and stats carry ``hardlink_id`` (the names of one file share it).
    hard_links: bool = False
    #: True where :meth:`Location.top_level` gives the names directly below the root and :meth:`Location.scan`
    #: takes ``under`` (list only some top-level names): PREPARING can then run in partitions of the key space.
    partial_scans: bool = False
    #: True where one file may be written in byte ranges by several writers, in any order and from other
    #: processes or hosts (:meth:`Location.begin_ranged`, :meth:`Location.write_range`,
    #: :meth:`Location.commit_ranged`): a temporary written at offsets, or an S3 multipart upload.
    ranged_writes: bool = False


@dataclass(frozen=True)
class Hole:
    """A run of ``size`` zero bytes that the source holds as a hole, in a chunk stream given to
    :meth:`Location.write`: only destinations with :attr:`Capabilities.sparse_files` receive them, and
    they seek over it instead of writing (the bytes read back as zeros)."""

    size: int


@dataclass(frozen=True)
class SparseLayout:
    """Where a sparse file's data lies (:meth:`Location.sparse_layout`): ``data`` holds ascending,
    disjoint ``(start, end)`` byte ranges; everything else up to ``size`` is a hole."""

    size: int
    data: tuple[tuple[int, int], ...]

    @property
    def allocated(self) -> int:
        return sum(end - start for start, end in self.data)


@dataclass(frozen=True)
class Written:
    """What :meth:`Location.write` (or :meth:`Location.copy_object`) put at the destination."""

    size: int
    #: The destination's ETag (object stores), so that VERIFYING and a retry need not ask again.
    etag: str | None = None
    #: The version id, where the store keeps versions.
    version: str | None = None
    #: The store's own CRC64NVME of what it holds (hex), where it computed one (a server-side copy).
    checksum: str | None = None


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
    etag: str | None = None  #: object stores: changes whenever the content does
    #: Stores with ``owner_names == "metadata"``: the owner's user and group names stored beside the ids
    #: (Uid/Gid NAME or BOTH); file systems name their ids through their user database instead (see
    #: airflow_datasync.owners).
    user_name: str | None = None
    group_name: str | None = None
    #: Stores with ``hard_links``: ``"<device>:<inode>"`` where the file has more than one name, else None.
    hardlink_id: str | None = None
    #: Backend-specific metadata by namespaced key (see :data:`SMB_ATTRIBUTES` and the others).
    extras: Mapping[str, Any] = field(default_factory=lambda: NO_EXTRAS, compare=False)


@dataclass(frozen=True)
class OpenedForCopy:
    """A file opened for a copy (:meth:`Location.open_for_copy`): the entry as the open found it, the
    stream (None unless ``before`` is a file) and how to tell the entry once read (to refuse publishing a
    copy of a file that changed meanwhile)."""

    before: StatResult | None  #: None: the entry is gone
    fh: IO[bytes] | None
    after: Callable[[], StatResult | None]


@dataclass(frozen=True)
class Metadata:
    """Metadata to apply to a written entry; ``None`` means leave as the store sets it."""

    mtime_ns: int | None = None
    atime_ns: int | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    #: Stores with ``owner_names == "metadata"`` (ignored elsewhere): owner names to store beside the ids
    #: (Uid/Gid NAME or BOTH).
    user_name: str | None = None
    group_name: str | None = None
    #: Backend-specific metadata to apply, by namespaced key; a backend applies the keys it declares in
    #: :attr:`Capabilities.extras_write` and ignores the others.
    extras: Mapping[str, Any] = field(default_factory=lambda: NO_EXTRAS, compare=False)


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
        known = self.known(path, etag)
        return None if known is None else dict(zip(self.FIELDS, known))

    def listed(self) -> Iterator[tuple[str, str | None]]:
        """(path, type) of every entry known: where the earlier listing saw which name."""
        return ((path, hit[1]) for path, hit in self._by_path.items())

    def known(self, path: str, etag: str) -> tuple | None:
        """As :meth:`get`, the values in the order of :attr:`FIELDS` (a listing of thousands of objects
        builds no dict per object)."""
        hit = self._by_path.get(path)
        if hit is None or hit[0] != etag:
            return None
        return hit[1:]


class Location(abc.ABC):
    """A tree of files at a URI. Paths are always relative to the location root."""

    scheme: str = ""
    #: What this location can do (a frozen :class:`Capabilities`). A backend declares it as a class
    #: attribute, or sets it per instance in ``__init__`` where it depends on the process (whether it may
    #: chown); the engine decides from this alone and never asks the scheme or probes for methods.
    capabilities: Capabilities = Capabilities()

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        self.uri = uri
        self.conn_id = conn_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def __enter__(self) -> Location:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- checks -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def check(self, *, writable: bool, dry_run: bool = False) -> bool:
        """Raise :class:`LocationError` unless the root exists and is readable (and writable).

        A missing destination folder whose parent exists is created. With ``dry_run`` nothing changes: no
        folder is created and no probe written (writability is judged from permissions where the protocol
        shows them), and such a missing folder passes as an empty one. Returns whether the root exists."""

    def contains(self, other: Location) -> bool:
        """True if ``other`` lies inside this location (or is the same): such pairs are refused."""
        return False

    def name_problem(self, path: str) -> str | None:
        """Why this store cannot hold an entry at ``path`` (a :func:`safe_relpath`), or ``None`` if it can.

        PREPARING asks the destination about every source entry (through :meth:`name_problems`) and
        refuses those it cannot hold, per entry and before anything is written, instead of mangling the
        name; :meth:`write` still refuses them as the last guard."""
        return None

    def name_problems(self, paths: pa.ChunkedArray | pa.Array) -> pa.Array | None:
        """:meth:`name_problem` of every path of a listing, as a string array (null where the name is fine),
        or ``None`` when every name is fine. A backend that restricts names overrides both; this default
        holds any name, so PREPARING costs nothing per entry here."""
        return None

    # -- reading ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def scan(self, batch_size: int = 10_000, hints: ScanHints | None = None,
             needs_metadata: Callable[[str, int], bool] | None = None,
             under: Collection[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Yield the whole tree below the root as :data:`LISTING_SCHEMA` batches (root excluded).

        ``hints`` (object stores) hold what an earlier execution learnt per path and ETag, so that
        unchanged objects need no HEAD request; backends without ETags ignore them. ``needs_metadata(path,
        size)`` (object stores) says which entries the plan will compare; others are listed with
        ``meta_known`` False. None: read every entry's metadata.

        ``under`` (backends with :attr:`Capabilities.partial_scans`): only the entries whose first path
        segment is one of these names (what :meth:`top_level` returned), exactly as the whole scan lists them.
        """

    def top_level(self) -> list[tuple[str, bool]]:
        """The names directly below the root, each with whether it is a directory (a shallow listing; the
        names of temporaries too, so that the partition scanning them meets them as leftovers)."""
        raise NotImplementedError(f"{type(self).__name__} has no partial scans (capabilities.partial_scans)")

    @abc.abstractmethod
    def stat(self, path: str) -> StatResult | None:
        """Stat one entry without following symlinks; ``None`` if it does not exist."""

    @abc.abstractmethod
    def open_read(self, path: str) -> IO[bytes]:
        """Open a file for streaming reads."""

    def open_for_copy(self, path: str) -> OpenedForCopy:
        """:meth:`stat` the entry, open it if it is a file, and :meth:`stat` it again when asked ``after``.
        A backend whose open itself reports the entry before and after the read (SMB: the create and
        close responses of one compound) answers without the two stats."""
        before = self.stat(path)
        fh = self.open_read(path) if before is not None and before.type == FILE else None
        return OpenedForCopy(before, fh, lambda: self.stat(path))

    def open_range(self, path: str, offset: int, length: int) -> IO[bytes]:
        """A stream of ``path`` from ``offset`` of which the caller reads ``length`` bytes (a striped file's
        range); by default :meth:`open_read` and a seek."""
        fh = self.open_read(path)
        fh.seek(offset)
        return fh

    def sparse_layout(self, fh: IO[bytes]) -> SparseLayout | None:
        """Where the data of the file open as ``fh`` (from :meth:`open_read`) lies, if it is sparse (only
        with :attr:`Capabilities.sparse_files`); None for a file without holes, or where the store cannot
        tell. ``fh`` is left at offset 0."""
        return None

    def open_version(self, path: str, etag: str) -> tuple[IO[bytes], StatResult]:
        """Read exactly the version a listing named (:attr:`Capabilities.versioned_reads`): the stream and
        that version's own stat (its metadata, which the listing may not have read). Raise
        :class:`ChangedSinceListingError` if the entry changed since."""
        raise NotImplementedError(f"{type(self).__name__} does not pin versions")

    # -- writing ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def write(self, path: str, chunks: Iterator[bytes | Hole], meta: Metadata, *, tag: str,
              before_commit: Callable[[int], None] | None = None, overwrite: bool = True) -> Written:
        """Write a file atomically: nothing appears at ``path`` unless the whole stream was written.

        ``chunks`` holds :class:`Hole` markers only where :attr:`Capabilities.sparse_files` is declared;
        a hole counts in the byte count as the zeros it stands for.

        ``tag`` makes the temporary name unique to the writer (execution and shard). ``before_commit``
        is called with the byte count after the data is written and before it becomes visible; if it
        raises (e.g. the source changed during the copy) the temporary data is removed. With
        ``overwrite=False`` (OverwriteMode=NEVER) an entry that appeared at ``path`` meanwhile is never
        replaced: :class:`AlreadyExistsError`. ``meta.extras`` keys in :attr:`Capabilities.extras_write`
        are applied, others ignored. Returns what was written (bytes, and the ETag/version where the
        store gives them).
        """

    def write_file(self, path: str, fh: IO[bytes], meta: Metadata, *, tag: str, hasher: Any, also: Any = None,
                   on_chunk: Callable[[int], None] | None = None, size: int | None = None,
                   before_commit: Callable[[int], None] | None = None, overwrite: bool = True) -> Written:
        """:meth:`write` the bytes of the source file open as ``fh``, feeding each to ``hasher`` (and
        ``also``, both hashlib-style) and counting them with ``on_chunk``; ``size``, where known, is how
        much there is to read (``before_commit`` checks what was). A backend that moves bytes faster than
        a stream of chunks (a file system copying from a local file) overrides this."""
        return self.write(path, checksum.stream(fh, hasher, on_chunk=on_chunk, also=also), meta, tag=tag,
                          before_commit=before_commit, overwrite=overwrite)

    @abc.abstractmethod
    def symlink(self, path: str, target: str, meta: Metadata, *, tag: str) -> Written | None:
        """Create or atomically replace a symlink at ``path``; returns what was written where the store
        says (an object store's ETag for the object that holds the link), else None."""

    def hard_link(self, path: str, existing: str, *, tag: str) -> bool:
        """Make ``path`` another name of the file ``existing`` (atomically replacing what ``path`` held), only
        with :attr:`Capabilities.hard_links`. Returns False where ``path`` already was that file."""
        raise NotImplementedError(f"{type(self).__name__} holds no hard links")

    @abc.abstractmethod
    def mkdir(self, path: str, meta: Metadata | None = None) -> Written | None:
        """Create a directory (and missing parents); fine if it exists. ``meta`` is what FINALIZE will set
        on it; a store whose directories keep it from creation (no later change) may write it now. Returns
        what was written where the store says (an object store's marker ETag), else None."""

    @abc.abstractmethod
    def set_metadata(self, path: str, meta: Metadata, *, is_dir: bool = False) -> list[str]:
        """Apply metadata to an existing entry; returns warnings (e.g. chown refused) instead of failing."""

    @abc.abstractmethod
    def delete(self, path: str, *, is_dir: bool) -> None:
        """Delete one entry (a directory only if empty)."""

    def stores_md5(self, size: int) -> bool:
        """True when a file of ``size`` bytes written here gets an MD5 of its bytes that the store computes
        itself and shows in listings (one S3 PUT, one Azure Put Blob): the transfer then computes that MD5
        too, and VERIFYING compares it with :meth:`list_md5s` instead of reading the file back."""
        return False

    def list_md5s(self) -> dict[str, str] | None:
        """Path → hex MD5 of the bytes, for every file whose listing shows one (only with ``listed_md5s``)."""
        return None

    def read_md5s(self, paths: Sequence[str]) -> list[str | None]:
        """The hex MD5 of each file of ``paths``, read whole; None for one that cannot be read (a caller that
        must say why reads that one again through :meth:`open_read`). A backend may read them more cheaply
        than one :meth:`open_read` each."""
        out: list[str | None] = []
        for path in paths:
            try:
                with self.open_read(path) as fh:
                    out.append(checksum.file_checksum(fh, hashlib.md5(usedforsecurity=False)))
            except (OSError, LocationError):  # a backend's vocabulary error, or a local OSError
                out.append(None)
        return out

    def native_checksum(self, path: str) -> str | None:
        """The store's own CRC64NVME of ``path`` (hex) if it keeps one, so VERIFYING need not read the data."""
        return None

    def read_extras(self, path: str, wanted: Mapping[str, Any]) -> dict[str, Any]:
        """The extras of ``path`` named in ``wanted`` that cost a request of their own
        (:attr:`Capabilities.extras_on_request`), as ``{key: value}``. ``wanted`` maps each key to what the
        options ask of it (``smb.security_descriptor``: the SecurityDescriptorCopyFlags value; others True)."""
        return {}

    def can_copy_from(self, source: Location) -> bool:
        """True where :meth:`copy_object` can copy entries of ``source`` without their bytes passing
        through this process (the same S3 endpoint and credentials)."""
        return False

    def copy_object(self, source: Location, path: str, meta_for: Callable[[StatResult], Metadata], *,
                    expect_etag: str | None, overwrite: bool, extras: frozenset[str] = frozenset()) -> Written:
        """Copy ``path`` from ``source`` server-side, only if it still has ``expect_etag``
        (:class:`ChangedSinceListingError` otherwise). ``meta_for`` turns the source's stat into the metadata
        to write; ``extras`` names extras the server carries over itself (e.g. ``s3.tags``)."""
        raise NotImplementedError(f"{type(self).__name__} copies no objects server-side")

    # -- one file written in ranges by several writers (striped files) -------------------------------
    def begin_ranged(self, path: str, size: int, stripe_bytes: int, meta: Metadata, *, tag: str) -> RangedWrite:
        """Start writing ``path`` (``size`` bytes) in ranges of ``stripe_bytes`` (only with
        :attr:`Capabilities.ranged_writes`): a temporary of the full size, or an upload in parts (reported to
        :meth:`track_uploads` like any other). Nothing appears at ``path`` before :meth:`commit_ranged`."""
        raise NotImplementedError(f"{type(self).__name__} writes no ranges")

    def write_range(self, ranged: RangedWrite, offset: int, chunks: Iterator[bytes | Hole], *,
                    durable: bool = False) -> RangeWritten:
        """Write the range at ``offset`` (``min(stripe_bytes, size - offset)`` bytes from ``chunks``) of a
        started ranged write; writing it again replaces it. ``durable``: on stable storage when this returns.
        :class:`Hole` chunks only where :attr:`Capabilities.sparse_files` is declared."""
        raise NotImplementedError(f"{type(self).__name__} writes no ranges")

    def commit_ranged(self, ranged: RangedWrite, ranges: Sequence[RangeWritten], meta: Metadata, *,
                      overwrite: bool = True) -> Written:
        """Publish the file whole once ``ranges`` cover it, its metadata applied (S3: with the whole object's
        CRC64NVME combined from the ranges'); ``overwrite=False`` never replaces an entry that appeared
        meanwhile (:class:`AlreadyExistsError`)."""
        raise NotImplementedError(f"{type(self).__name__} writes no ranges")

    def abort_ranged(self, ranged: RangedWrite) -> None:
        """Drop a ranged write that will not be committed (its temporary, its upload); fine if already gone."""
        raise NotImplementedError(f"{type(self).__name__} writes no ranges")

    # -- leftovers of killed writes ---------------------------------------------------------------
    #: Temporaries the last :meth:`scan` met (a scan hides them from the listing), filled by the backend.
    _seen_leftovers: list[Leftover] | None = None
    #: Where a backend that uploads in parts reports each upload it starts ("started") and ends ("ended"):
    #: the engine records them in the execution's store (see :meth:`track_uploads`).
    _upload_log: Callable[[str, Leftover], None] | None = None

    def _met_leftover(self, leftover: Leftover) -> None:
        """Called by a backend's scan for each temporary it skips."""
        if self._seen_leftovers is None:
            self._seen_leftovers = []
        self._seen_leftovers.append(leftover)

    def scanned_leftovers(self) -> list[Leftover]:
        """The temporaries (:data:`TEMP_PREFIX` names) the last :meth:`scan` met and left out of the listing,
        for :meth:`remove_leftovers`; never user data."""
        return list(self._seen_leftovers or ())

    def own_leftovers(self, dirs: Iterable[str], tag: str) -> list[Leftover]:
        """The temporaries of the writer ``tag`` in the directories ``dirs`` (a retried shard's earlier tries);
        backends that write no temporaries have none."""
        return []

    def pending_uploads(self) -> list[Leftover]:
        """Unfinished uploads below the root, whoever started them (S3 ListMultipartUploads); their ``tag`` is
        None: only the engine's records tell which are its own."""
        return []

    def track_uploads(self, log: Callable[[str, Leftover], None] | None) -> None:
        """Report every upload in parts this location starts (``log("starting", upload)`` naming the object
        before asking the server for an upload, ``log("started", upload)`` with its id before its first
        part) and ends (``log("ended", upload)``, completed or aborted), so that the uploads of a writer killed
        in between can be aborted later."""
        self._upload_log = log

    def _log_upload(self, event: str, upload: Leftover) -> None:
        if self._upload_log is not None:
            self._upload_log(event, upload)

    def remove_leftovers(self, leftovers: Iterable[Leftover], *, writers_gone: bool = False) -> Cleanup:
        """Remove ``leftovers`` that no live writer holds: a temporary only if the backend can tell its
        writer is gone (a file system: the writer's lock; SMB: the writer's open handle refuses deletion),
        an upload as given (the engine passes only those whose writer is over). ``writers_gone``: the caller
        knows (a retried shard's own earlier tries), so what cannot be tested (a temporary symlink) goes
        too. Never follows a symlink, never removes a name outside :data:`TEMP_PREFIX` or a directory."""
        return Cleanup()

    def prepare_writes(self, *, durable: bool) -> None:
        """Called once before a shard writes; ``durable``: the shard ends with :meth:`sync`, so a backend
        may start flushing large files while they are written."""

    def sync(self) -> None:
        """Make what was written durable (e.g. ``syncfs``); called before a shard records completion."""

    def close(self) -> None:
        """Release connections and file descriptors."""
