"""Publishing a file at a local destination: written without a name (O_TMPFILE) or under a locked
temporary name, given its metadata, then linked or renamed to its final name in one step, so that no
half-written file ever shows at a final name and a killed writer's file leaves nothing or a temporary a
cleaner can tell is dead. Also the destination's directories (never through a symlink), symlinks and hard
links, which are published the same way.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import io
import os
import stat as st
from collections.abc import Callable, Iterator
from typing import IO, Any

from airflow_datasync.errors import from_oserror
from airflow_datasync.locations.base import AlreadyExistsError, Hole, LocationError, Metadata, Written, temp_name
from airflow_datasync.locations.local_copy import copy_into
from airflow_datasync.locations.local_locks import lock_if_supported

try:
    _sync_file_range = ctypes.CDLL(None, use_errno=True).sync_file_range
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
except (OSError, AttributeError):  # not Linux
    _sync_file_range = None
SYNC_FILE_RANGE_WRITE = 2
#: With durable writes asked for, start the disk writing every this many bytes of a file while it is
#: still being copied (instead of all at the final syncfs): the flush then overlaps the copy.
WRITEBACK_EVERY = 8 << 20
#: Errors of ``open(dir, O_TMPFILE)`` that say the kernel or the file system cannot create a file without a
#: name (EISDIR: a kernel older than O_TMPFILE; EOPNOTSUPP: NFS, most FUSE file systems, SMB mounts).
_NO_UNNAMED_FILES = {errno.EISDIR, errno.EOPNOTSUPP, errno.EINVAL}
#: Where an open file can be named to linkat(2): its /proc magic link (AT_EMPTY_PATH would need
#: CAP_DAC_READ_SEARCH).
PROC_FDS = "/proc/self/fd"
_any_dir_fd: int | None = None


def read_umask() -> int | None:
    """The process umask without changing it (os.umask would, for an instant, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def _dir_fd_for_linkat() -> int:
    """An open directory (``/``), passed as ``src_dir_fd`` so that :func:`os.link` calls linkat(2) with
    AT_SYMLINK_FOLLOW (plain link(2) cannot follow the /proc link); the absolute source path ignores it, so
    one descriptor serves every thread and, inherited, a forked copy process."""
    global _any_dir_fd
    if _any_dir_fd is None:
        _any_dir_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    return _any_dir_fd


class LocalPublishing:
    """The writing methods of :class:`~airflow_datasync.locations.local.LocalLocation` (a mixin: it uses that
    class's root, path helper, known directories, umask and ``unnamed_files``)."""

    def _ensure_dir(self, rel_dir: str) -> None:
        """Create ``rel_dir`` and its parents, refusing to pass through a symlink or a file."""
        if rel_dir in self._known_dirs:
            return
        parent = os.path.dirname(rel_dir)
        self._ensure_dir(parent)
        full = os.path.join(self.root, rel_dir)
        try:
            os.mkdir(full)
        except FileExistsError:
            s = os.lstat(full)
            if st.S_ISLNK(s.st_mode):
                raise LocationError(
                    f"{self.uri}: {rel_dir!r} is a symlink at the destination; refusing to write through it. "
                    "Remove it or use PreserveDeletedFiles=REMOVE."
                ) from None
            if not st.S_ISDIR(s.st_mode):
                raise LocationError(f"{self.uri}: {rel_dir!r} exists at the destination and is not a directory.") from None
        with self._lock:
            self._known_dirs.add(rel_dir)

    def _temp_for(self, path: str, tag: str) -> str:
        head, name = os.path.split(path)
        return os.path.join(self.root, head, temp_name(name, tag))

    @staticmethod
    def _open_temp(tmp: str, mode: int) -> int:
        """Create (or truncate) the temporary ``tmp`` and hold an exclusive ``flock`` on it until it is closed:
        a cleaner removes only temporaries it can lock, so never this one while it is written. A cleaner
        that unlinked the file between our open and our lock leaves it without a name: open it again."""
        while True:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
            try:
                # Waits only while a cleaner is looking at this very file; unlocked on a mount without locks.
                if not lock_if_supported(fd, fcntl.LOCK_EX):
                    return fd
                if os.fstat(fd).st_nlink:
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _apply(self, target: str | int, meta: Metadata, *, follow: bool = True, set_mode: bool = True) -> list[str]:
        warnings = []
        if meta.uid is not None or meta.gid is not None:
            try:
                if isinstance(target, int):
                    os.fchown(target, -1 if meta.uid is None else meta.uid, -1 if meta.gid is None else meta.gid)
                else:
                    os.chown(target, -1 if meta.uid is None else meta.uid, -1 if meta.gid is None else meta.gid,
                             follow_symlinks=follow)
            except PermissionError:
                warnings.append(f"ownership {meta.uid}:{meta.gid} not kept (chown needs root)")
        if meta.mode is not None and follow and set_mode:
            if isinstance(target, int):
                os.fchmod(target, meta.mode)
            else:
                os.chmod(target, meta.mode)
        if meta.mtime_ns is not None:
            atime = meta.atime_ns if meta.atime_ns is not None else meta.mtime_ns
            if isinstance(target, int):
                os.utime(target, ns=(atime, meta.mtime_ns))
            else:
                os.utime(target, ns=(atime, meta.mtime_ns), follow_symlinks=follow)
        return warnings

    def write(self, path: str, chunks: Iterator[bytes | Hole], meta: Metadata, *, tag: str,
              before_commit: Callable[[int], None] | None = None, overwrite: bool = True) -> Written:
        writeback = self._writeback()

        def fill(fd: int) -> int:
            written = 0
            holes = False
            for chunk in chunks:
                if isinstance(chunk, Hole):  # a sparse source's hole stays one: seek, allocate nothing
                    os.lseek(fd, chunk.size, os.SEEK_CUR)
                    written += chunk.size
                    holes = True
                    continue
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                    written += n
                if writeback is not None:
                    writeback(written, fd)
            if holes:  # a hole at the end is no write: the size comes from ftruncate
                os.ftruncate(fd, written)
            return written

        return self._publish(path, meta, tag, fill, before_commit, overwrite)

    def write_file(self, path: str, fh: IO[bytes], meta: Metadata, *, tag: str, hasher: Any, also: Any = None,
                   on_chunk: Callable[[int], None] | None = None, size: int | None = None,
                   before_commit: Callable[[int], None] | None = None, overwrite: bool = True) -> Written:
        if not isinstance(fh, io.FileIO):  # another store's stream: chunk by chunk, as any destination
            return super().write_file(path, fh, meta, tag=tag, hasher=hasher, also=also, on_chunk=on_chunk, size=size,
                                      before_commit=before_commit, overwrite=overwrite)
        writeback = self._writeback()
        return self._publish(path, meta, tag,
                             lambda fd: copy_into(fh, fd, size, hasher, also=also, on_chunk=on_chunk, on_progress=writeback),
                             before_commit, overwrite)

    def _writeback(self) -> Callable[[int, int], None] | None:
        """With durable writes asked for, a callback that starts the disk writing every
        :data:`WRITEBACK_EVERY` bytes of a file as it is written (``callback(bytes_so_far, fd)``)."""
        if not self._early_writeback or _sync_file_range is None:
            return None
        flushed = [0]

        def kick(done: int, fd: int) -> None:
            if done - flushed[0] >= WRITEBACK_EVERY:
                _sync_file_range(fd, flushed[0], done - flushed[0], SYNC_FILE_RANGE_WRITE)  # asynchronous: returns at once
                flushed[0] = done

        return kick

    def _publish(self, path: str, meta: Metadata, tag: str, fill: Callable[[int], int],
                 before_commit: Callable[[int], None] | None, overwrite: bool) -> Written:
        """Write ``path`` atomically: ``fill(fd)`` writes the temporary (and returns its byte count), the
        metadata is applied, ``before_commit`` may still refuse it, then it takes its final name."""
        final = self._abs(path)
        self._ensure_dir(os.path.dirname(path))
        # Created with the kept mode when the umask lets it through unchanged (then no fchmod is needed),
        # else 0600 until fchmod; with the mode not kept, the umask default.
        direct = meta.mode is not None and self._umask is not None and (meta.mode & ~self._umask & 0o777) == meta.mode
        create_mode = meta.mode if direct else (0o600 if meta.mode is not None else 0o666)
        if self.unnamed_files:
            fd = self._open_unnamed(path, final, create_mode)
            if fd is not None:
                return self._publish_unnamed(fd, path, final, meta, tag, fill, before_commit, overwrite, not direct)
        tmp = self._temp_for(path, tag)
        fd = self._open_temp(tmp, create_mode)
        # The flock belongs to the open file description: a duplicate keeps it held past the close of fd
        # (which flushes, as NFS wants before a rename) until the temporary has its final name.
        lock = os.dup(fd)
        try:
            try:
                written = fill(fd)
                self._apply(fd, meta, set_mode=not direct)
            finally:
                os.close(fd)
            if before_commit is not None:
                before_commit(written)
            try:
                if overwrite:
                    os.replace(tmp, final)
                else:  # link(2) never replaces: an entry that appeared meanwhile is kept
                    os.link(tmp, final)
                    os.unlink(tmp)
            except IsADirectoryError:
                raise LocationError(f"{self.uri}: {path!r} is a directory at the destination and a file at the source.") from None
            except FileExistsError:
                raise AlreadyExistsError(f"{self.uri}: {path!r} exists at the destination; OverwriteMode=NEVER "
                                         "keeps it") from None
        except OSError as exc:
            _unlink_quietly(tmp)
            if isinstance(exc, LocationError):
                raise
            raise from_oserror(exc, f"{self.uri}: {path}") from None
        except BaseException:
            _unlink_quietly(tmp)
            raise
        finally:
            os.close(lock)
        return Written(size=written)

    def _open_unnamed(self, path: str, final: str, mode: int) -> int | None:
        """A new file without a name in ``final``'s directory, or None where the file system cannot make one."""
        try:
            return os.open(os.path.dirname(final), os.O_WRONLY | os.O_TMPFILE, mode)
        except OSError as exc:
            if exc.errno in _NO_UNNAMED_FILES:
                self.unnamed_files = False
                return None
            raise from_oserror(exc, f"{self.uri}: {path}") from None

    def _publish_unnamed(self, fd: int, path: str, final: str, meta: Metadata, tag: str, fill: Callable[[int], int],
                         before_commit: Callable[[int], None] | None, overwrite: bool, set_mode: bool) -> Written:
        """:meth:`_publish` of a file created without a name: written, given its metadata, then linked at
        ``final`` (linkat(2) never replaces: a name already there is replaced through a temporary). Until
        then nothing at the destination shows it, and a killed writer's file vanishes with its descriptor."""
        try:
            try:
                written = fill(fd)
                self._apply(fd, meta, set_mode=set_mode)
                if before_commit is not None:
                    before_commit(written)
                self._link_unnamed(fd, path, final, tag, overwrite)
            finally:
                os.close(fd)
        except OSError as exc:
            if isinstance(exc, LocationError):
                raise
            raise from_oserror(exc, f"{self.uri}: {path}") from None
        return Written(size=written)

    def _link_unnamed(self, fd: int, path: str, final: str, tag: str, overwrite: bool) -> None:
        proc = f"{PROC_FDS}/{fd}"
        try:
            os.link(proc, final, src_dir_fd=_dir_fd_for_linkat(), follow_symlinks=True)
            return
        except FileExistsError:
            if not overwrite:
                raise AlreadyExistsError(f"{self.uri}: {path!r} exists at the destination; OverwriteMode=NEVER "
                                         "keeps it") from None
        # The name is taken: the file gets a temporary name beside it, locked as any temporary (so that a
        # cleaner keeps it), and replaces the entry there in one rename.
        lock_if_supported(fd, fcntl.LOCK_EX)
        tmp = self._temp_for(path, tag)
        try:
            os.link(proc, tmp, src_dir_fd=_dir_fd_for_linkat(), follow_symlinks=True)
        except FileExistsError:
            os.unlink(tmp)  # a killed try's temporary of this very file (the tag names the shard): dead
            os.link(proc, tmp, src_dir_fd=_dir_fd_for_linkat(), follow_symlinks=True)
        try:
            os.replace(tmp, final)
        except IsADirectoryError:
            _unlink_quietly(tmp)
            raise LocationError(f"{self.uri}: {path!r} is a directory at the destination and a file at the source.") from None
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def symlink(self, path: str, target: str, meta: Metadata, *, tag: str) -> None:
        final = self._abs(path)
        self._ensure_dir(os.path.dirname(path))
        tmp = self._temp_for(path, tag)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(target, tmp)
        try:
            self._apply(tmp, Metadata(mtime_ns=meta.mtime_ns, atime_ns=meta.atime_ns, uid=meta.uid, gid=meta.gid),
                        follow=False)
            os.replace(tmp, final)
        except BaseException:
            os.unlink(tmp)
            raise

    def hard_link(self, path: str, existing: str, *, tag: str) -> bool:
        final, target = self._abs(path), self._abs(existing)
        # Neither name may lie behind a symlink at the destination: the link would name a file outside the root.
        for rel, full in ((path, final), (existing, target)):
            if os.path.realpath(os.path.dirname(full)) != os.path.join(os.path.realpath(self.root), os.path.dirname(rel)).rstrip("/"):
                raise LocationError(f"{self.uri}: {rel!r} lies behind a symlink; not linked.")
        self._ensure_dir(os.path.dirname(path))
        try:
            want = os.lstat(target)
            if not st.S_ISREG(want.st_mode):
                raise LocationError(f"{self.uri}: {existing!r} is not a file at the destination; {path!r} not linked to it.")
            try:
                if os.path.samestat(os.lstat(final), want):
                    return False  # already a name of that file: rename(2) would do nothing, and keep the temporary
            except FileNotFoundError:
                pass
            tmp = self._temp_for(path, tag)
            _unlink_quietly(tmp)
            os.link(target, tmp, follow_symlinks=False)
            try:
                os.replace(tmp, final)
            except BaseException:
                _unlink_quietly(tmp)
                raise
        except IsADirectoryError:
            raise LocationError(f"{self.uri}: {path!r} is a directory at the destination and a file at the source.") from None
        except OSError as exc:
            raise from_oserror(exc, f"{self.uri}: {path}") from None
        return True



def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
