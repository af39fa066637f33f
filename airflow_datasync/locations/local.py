"""POSIX paths on the worker: local disks and mounted NFS exports, EFS, FSx for Lustre/OpenZFS.

Writes never follow a symlink at the destination: every parent directory of a written path is
checked with ``lstat`` (and cached per location object), so a symlink planted in the destination tree
cannot redirect a write outside the root. This module lists, reads and checks; writing a file and
publishing it at its final name is :mod:`~airflow_datasync.locations.local_publish`'s, ranged writes
:mod:`~airflow_datasync.locations.local_ranges`'s.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import stat as st
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import IO
from urllib.parse import unquote, urlparse

import pyarrow as pa

from airflow_datasync import checksum
from airflow_datasync.errors import from_oserror
from airflow_datasync.locations.base import (
    DIR,
    FILE,
    LISTING_SCHEMA,
    OTHER,
    SYMLINK,
    TEMP_PREFIX,
    TEMPORARY,
    Capabilities,
    Cleanup,
    Leftover,
    Location,
    LocationError,
    Metadata,
    OpenedForCopy,
    SparseLayout,
    StatResult,
    listing_batch,
    safe_relpath,
    temp_tag,
)
from airflow_datasync.locations.local_copy import SourceFile, open_source
from airflow_datasync.locations.local_mounts import copy_threads, small_file_threads
from airflow_datasync.locations.local_publish import PROC_FDS, LocalPublishing, read_umask
from airflow_datasync.locations.local_ranges import LocalRangedWrites

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.syncfs  # noqa: B018 - probe that the symbol exists
except (OSError, AttributeError):
    _libc = None
#: Whether local locations create files without a name (see :attr:`LocalLocation.unnamed_files`); tests of
#: the named temporaries that file systems without O_TMPFILE get turn it off.
UNNAMED_FILES = True
#: A temporary symlink lives for the microseconds between symlink(2) and rename(2) and cannot be locked:
#: one whose inode changed longer ago than this belongs to a writer that is gone.
SYMLINK_TEMP_GRACE_S = 60


def _kind(mode: int) -> str:
    if st.S_ISREG(mode):
        return FILE
    if st.S_ISDIR(mode):
        return DIR
    if st.S_ISLNK(mode):
        return SYMLINK
    return OTHER


def path_from_uri(uri: str) -> str:
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise LocationError(f"{uri}: file URIs must name a local path (file:///abs/path), not host {parsed.netloc!r}")
        path = unquote(parsed.path)
    else:
        path = uri
    if not path.startswith("/"):
        raise LocationError(f"{uri}: a local location must be an absolute path or a file:/// URI")
    return os.path.normpath(path)


class LocalLocation(LocalPublishing, LocalRangedWrites, Location):
    scheme = "file"

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        super().__init__(uri, conn_id)
        self.root = path_from_uri(uri)
        # Per instance: only root may give files to other owners, so ownership is kept only when running as
        # root. Names for Uid/Gid NAME/BOTH come from this machine's pwd/grp databases. Copies run a thread
        # per core on a local disk's file system (one for shards of small files between two disks), 8 on a
        # mount that answers in round trips (so do verifying threads between two local paths: the fewer of
        # both). Verifying hashes local files in the interpreter: against another location, more threads
        # than 8 only slow it down.
        self.capabilities = Capabilities(concurrency=copy_threads(self.root), verify_concurrency=8,
                                         small_file_concurrency=small_file_threads(self.root),
                                         keeps_ownership=os.geteuid() == 0, owner_names="posix", needs_sync=True,
                                         sparse_files=True, hard_links=True, partial_scans=True, ranged_writes=True)
        #: Set by :meth:`prepare_writes` when the shard ends with :meth:`sync`: large files then start their
        #: disk writes while they are copied, so the final flush has little left to wait for.
        self._early_writeback = False
        self._prefix = self.root.rstrip("/") + "/"  # _abs(): root + path, no os.path.join per call
        self._known_dirs: set[str] = {""}
        self._lock = threading.Lock()
        self._umask = read_umask()  # read per location (per phase), not once per process
        #: Files are created without a name (O_TMPFILE) and linked at their final name when complete: no
        #: temporary name to create, rename or leave behind. Turned off for this location the first time its
        #: file system refuses (then temporaries are named, as before).
        self.unnamed_files = UNNAMED_FILES and hasattr(os, "O_TMPFILE") and os.path.isdir(PROC_FDS)

    # -- helpers ----------------------------------------------------------------------------------
    def _abs(self, path: str) -> str:
        return self._prefix + safe_relpath(path) if path else self.root

    # -- checks -----------------------------------------------------------------------------------
    def check(self, *, writable: bool, dry_run: bool = False) -> bool:
        if writable and not os.path.lexists(self.root) and os.path.isdir(os.path.dirname(self.root)):
            # A destination folder is created when its parent exists (e.g. one folder per day);
            # a missing parent is more likely a typo or an unmounted export, so that is an error.
            if dry_run:
                parent = os.path.dirname(self.root)
                if not os.access(parent, os.W_OK | os.X_OK):
                    raise LocationError(f"{self.uri}: does not exist and {parent} is not writable by "
                                        f"uid {os.geteuid()}, so it could not be created.")
                return False
            try:
                os.mkdir(self.root)
            except OSError as exc:
                raise LocationError(f"{self.uri}: does not exist and cannot be created ({exc.strerror}). "
                                    "Create it, mount it, or fix the path.") from None
        # The URI names the path (a file:// URI spells it out too): messages say it once.
        if not os.path.exists(self.root):
            missing = "does not exist, nor does its parent folder (a destination folder is created only " \
                      "inside an existing one)" if writable else "does not exist"
            raise LocationError(f"{self.uri}: {missing}. Create it, mount it, or fix the path.")
        if not os.path.isdir(self.root):
            raise LocationError(f"{self.uri}: is not a directory; a location names a folder, fix the path.")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise LocationError(f"{self.uri}: is not readable by uid {os.geteuid()}.")
        if writable and not os.access(self.root, os.W_OK | os.X_OK):
            raise LocationError(f"{self.uri}: is not writable by uid {os.geteuid()}.")
        return True

    def contains(self, other: Location) -> bool:
        if not isinstance(other, LocalLocation):
            return False
        mine, theirs = os.path.realpath(self.root), os.path.realpath(other.root)
        return theirs == mine or theirs.startswith(mine.rstrip("/") + "/")

    # -- reading ----------------------------------------------------------------------------------
    def top_level(self) -> list[tuple[str, bool]]:
        try:
            with os.scandir(self.root) as it:
                return sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
        except OSError as exc:
            raise LocationError(f"{self.uri}: cannot list the root: {exc.strerror or exc}") from exc

    def scan(self, batch_size: int = 10_000, hints=None, needs_metadata=None,
             under=None) -> Iterator[pa.RecordBatch]:
        cols: dict[str, list] = {f.name: [] for f in LISTING_SCHEMA if f.name not in ("etag", "meta_known")}

        def add(path, kind, s=None, link=None, error=None):
            cols["path"].append(path)
            cols["type"].append(kind)
            cols["size"].append(s.st_size if s is not None and kind == FILE else (0 if s is not None else None))
            cols["mtime_ns"].append(s.st_mtime_ns if s is not None else None)
            cols["atime_ns"].append(s.st_atime_ns if s is not None else None)
            cols["mode"].append(st.S_IMODE(s.st_mode) if s is not None else None)
            cols["uid"].append(s.st_uid if s is not None else None)
            cols["gid"].append(s.st_gid if s is not None else None)
            cols["link_target"].append(link)
            cols["error"].append(error)
            cols["hardlink_id"].append(_hardlink_id(s) if s is not None and kind == FILE else None)

        def flush():
            batch = listing_batch(cols)
            for v in cols.values():
                v.clear()
            return batch

        self._seen_leftovers = []
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            abs_dir = os.path.join(self.root, rel_dir) if rel_dir else self.root
            try:
                with os.scandir(abs_dir) as it:
                    entries = sorted(it, key=lambda e: e.name) if rel_dir or under is None else \
                        sorted((e for e in it if e.name in under), key=lambda e: e.name)
            except OSError as exc:
                if rel_dir:
                    add(rel_dir + "/", DIR, error=f"cannot list directory: {exc.strerror}")
                    continue
                raise LocationError(f"{self.uri}: cannot list the root: {exc.strerror or exc}") from exc
            subdirs = []
            for entry in entries:
                name = entry.name
                if name.startswith(TEMP_PREFIX):
                    self._met_leftover(Leftover(TEMPORARY, f"{rel_dir}/{name}" if rel_dir else name, temp_tag(name)))
                    continue
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                    add(f"{rel_dir}/{shown}" if rel_dir else shown, OTHER, error="name is not valid UTF-8; not copied")
                    continue
                rel = f"{rel_dir}/{name}" if rel_dir else name
                try:
                    s = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    add(rel, OTHER, error=f"cannot stat: {exc.strerror}")
                    continue
                kind = _kind(s.st_mode)
                if kind == SYMLINK:
                    try:
                        add(rel, kind, s, link=os.readlink(entry.path))
                    except OSError as exc:
                        add(rel, kind, s, error=f"cannot read link: {exc.strerror}")
                elif kind == OTHER:
                    add(rel, kind, s)  # devices, FIFOs, sockets: planned as skipped (PreserveDevices=NONE)
                else:
                    add(rel, kind, s)
                    if kind == DIR:
                        subdirs.append(rel)
                if len(cols["path"]) >= batch_size:
                    yield flush()
            stack.extend(reversed(subdirs))
        if cols["path"]:
            yield flush()

    def stat(self, path: str) -> StatResult | None:
        full = self._abs(path)
        try:
            s = os.lstat(full)
            link = os.readlink(full) if st.S_ISLNK(s.st_mode) else None
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise from_oserror(exc, f"{self.uri}: {path}") from None
        return _stat_result(s, link)

    def open_for_copy(self, path: str) -> OpenedForCopy:
        # Opened first, then fstat'ed: one call where a stat before the open would be a second; what is no
        # regular file any more is only looked at, never read.
        opened = self._open_source(path)
        if isinstance(opened, SourceFile):
            return OpenedForCopy(_stat_result(opened.stat), opened, lambda: self.stat(path))
        if opened is not None and st.S_ISLNK(opened.st_mode):
            return OpenedForCopy(self.stat(path), None, lambda: self.stat(path))
        return OpenedForCopy(None if opened is None else _stat_result(opened), None, lambda: self.stat(path))

    def _open_source(self, path: str) -> SourceFile | os.stat_result | None:
        try:
            return open_source(self._abs(path))
        except OSError as exc:
            raise from_oserror(exc, f"{self.uri}: {path}") from None

    def read_md5s(self, paths: Sequence[str]) -> list[str | None]:
        # Per file an open, reads into this thread's buffer and a close: no file object. The open's flags are
        # open_source's (no link followed, no wait on a FIFO); what is not a regular file any more, or fails
        # to read, is None here and read again through open_read, which says why.
        view, out = checksum.thread_buffer(), []
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        for path in paths:
            try:
                fd = os.open(self._abs(path), flags)
            except (OSError, LocationError):  # an unsafe path too: open_read words it
                out.append(None)
                continue
            try:
                if not st.S_ISREG(os.fstat(fd).st_mode):
                    out.append(None)
                    continue
                h = hashlib.md5(usedforsecurity=False)
                while n := os.readv(fd, [view]):
                    h.update(view[:n])
                out.append(h.hexdigest())
            except OSError:
                out.append(None)
            finally:
                os.close(fd)
        return out

    def open_read(self, path: str) -> IO[bytes]:
        opened = self._open_source(path)
        if isinstance(opened, SourceFile):
            return opened
        if opened is None:
            raise from_oserror(FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)), f"{self.uri}: {path}")
        raise LocationError(f"{self.uri}: {path!r} is not a regular file any more (a FIFO, socket, device or symlink "
                            "replaced it since it was listed); not copied.")

    def sparse_layout(self, fh: IO[bytes]) -> SparseLayout | None:
        return sparse_layout(fh.fileno(), fh.stat if isinstance(fh, SourceFile) else None)

    # -- writing ----------------------------------------------------------------------------------
    def mkdir(self, path: str, meta: Metadata | None = None) -> None:
        self._ensure_dir(safe_relpath(path))

    def set_metadata(self, path: str, meta: Metadata, *, is_dir: bool = False) -> list[str]:
        full = self._abs(path)
        # Never through a symlinked parent (it would change an entry outside the root) ...
        if os.path.realpath(os.path.dirname(full)) != os.path.join(os.path.realpath(self.root), os.path.dirname(path)).rstrip("/"):
            raise LocationError(f"{self.uri}: {path!r} lies behind a symlink; metadata not set.")
        # ... and never on a symlink's target: chmod/chown/utime apply to the link itself (no chmod for links).
        return self._apply(full, meta, follow=not st.S_ISLNK(os.lstat(full).st_mode))

    def delete(self, path: str, *, is_dir: bool) -> None:
        full = self._abs(path)
        # Refuse to delete through a symlinked parent: the entry must really be inside the root.
        if os.path.realpath(os.path.dirname(full)) != os.path.join(os.path.realpath(self.root), os.path.dirname(path)).rstrip("/"):
            raise LocationError(f"{self.uri}: {path!r} lies behind a symlink; not deleted.")
        try:
            if is_dir:
                os.rmdir(full)
            else:
                os.unlink(full)
        except FileNotFoundError:
            pass
        except OSError as exc:
            # ENOTEMPTY becomes DirectoryNotEmptyError, which FINALIZE reports as kept, not failed.
            where = (f"{self.uri}: directory {path!r} still holds entries (excluded by filters, or new); kept"
                     if exc.errno == errno.ENOTEMPTY else f"{self.uri}: {path}")
            raise from_oserror(exc, where) from None
        with self._lock:
            self._known_dirs.discard(path)

    # -- leftovers of killed writes ---------------------------------------------------------------
    def _inside(self, rel_dir: str) -> bool:
        """Whether the directory ``rel_dir`` really lies inside the root (no symlink on the way)."""
        full = os.path.join(self.root, rel_dir) if rel_dir else self.root
        return os.path.realpath(full) == os.path.join(os.path.realpath(self.root), rel_dir).rstrip("/")

    def own_leftovers(self, dirs: Iterable[str], tag: str) -> list[Leftover]:
        prefix = f"{TEMP_PREFIX}{tag}-"
        found = []
        for rel_dir in sorted(set(dirs)):
            if rel_dir:
                safe_relpath(rel_dir)
            if not self._inside(rel_dir):
                continue  # missing, or behind a symlink: nothing of ours can be there
            try:
                with os.scandir(os.path.join(self.root, rel_dir) if rel_dir else self.root) as it:
                    names = [e.name for e in it if e.name.startswith(prefix)]
            except OSError:
                continue
            found.extend(Leftover(TEMPORARY, f"{rel_dir}/{n}" if rel_dir else n, tag) for n in names)
        return found

    def remove_leftovers(self, leftovers: Iterable[Leftover], *, writers_gone: bool = False) -> Cleanup:
        """Remove the temporaries among ``leftovers`` that no writer holds: a regular file only if this
        process can take its ``flock`` (every writer holds it while writing, see :meth:`_open_temp`), a
        temporary symlink once it is older than :data:`SYMLINK_TEMP_GRACE_S` (at once with ``writers_gone``);
        anything else is kept."""
        done = Cleanup()
        for leftover in leftovers:
            head, name = os.path.split(leftover.path)
            if leftover.kind != TEMPORARY or not name.startswith(TEMP_PREFIX) or not self._inside(head):
                continue
            full = self._abs(leftover.path)
            try:
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # a symlink: lstat says whether its writer is long gone
                    done.add(self._remove_temp_symlink(full, 0 if writers_gone else SYMLINK_TEMP_GRACE_S))
                continue
            try:
                s = os.fstat(fd)
                if not st.S_ISREG(s.st_mode):
                    continue  # a FIFO or directory that happens to carry the prefix: not ours
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    done.in_use += 1
                    continue
                except OSError:
                    continue  # no locks on this mount: liveness cannot be told, so it is kept
                now = os.lstat(full)
                if (now.st_dev, now.st_ino) == (s.st_dev, s.st_ino):  # still the file we locked
                    os.unlink(full)
                    done.removed += 1
                    done.bytes += s.st_size if s.st_nlink == 1 else 0  # a hard link's temporary frees nothing
            except OSError:
                continue  # gone meanwhile, or not ours to remove: the next execution looks again
            finally:
                os.close(fd)
        return done

    @staticmethod
    def _remove_temp_symlink(full: str, grace_s: float) -> Cleanup:
        try:
            s = os.lstat(full)
            if not st.S_ISLNK(s.st_mode) or time.time() - s.st_ctime < grace_s:
                return Cleanup(in_use=1 if st.S_ISLNK(s.st_mode) else 0)
            os.unlink(full)
        except OSError:
            return Cleanup()
        return Cleanup(removed=1)

    def prepare_writes(self, *, durable: bool) -> None:
        self._early_writeback = durable

    def sync(self) -> None:
        """One ``syncfs`` for the whole destination file system: far cheaper than fsync per small file."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _libc is not None and _libc.syncfs(fd) == 0:
                return
            os.fsync(fd)
        finally:
            os.close(fd)


def _stat_result(s: os.stat_result, link: str | None = None) -> StatResult:
    kind = _kind(s.st_mode)
    return StatResult(kind, s.st_size if kind == FILE else 0, s.st_mtime_ns, s.st_atime_ns, st.S_IMODE(s.st_mode),
                      s.st_uid, s.st_gid, link, hardlink_id=_hardlink_id(s) if kind == FILE else None)


def _hardlink_id(s: os.stat_result) -> str | None:
    """``"<device>:<inode>"`` of a file with more than one name (the names of one file share it)."""
    return f"{s.st_dev}:{s.st_ino}" if s.st_nlink > 1 else None


def sparse_layout(fd: int, s: os.stat_result | None = None) -> SparseLayout | None:
    """The data ranges of the open file ``fd`` by ``SEEK_DATA``/``SEEK_HOLE``, if it has fewer blocks than
    its size needs (a file without holes costs one fstat, none given its ``s``); None where the file
    system cannot tell."""
    s = s if s is not None else os.fstat(fd)
    if not st.S_ISREG(s.st_mode) or s.st_blocks * 512 >= s.st_size:
        return None
    data: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < s.st_size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after pos: the rest is a hole
                    break
                raise
            if start >= s.st_size:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), s.st_size)
            data.append((start, end))
            pos = end
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # SEEK_DATA unsupported here: copy every byte
            return None
        raise
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    return SparseLayout(s.st_size, tuple(data))
