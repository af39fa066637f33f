"""The SMB location: the :class:`~airflow_datasync.locations.base.Location` contract over an SMB share.

What it keeps and how (sessions, atomic writes, FILETIMEs, Windows names) is told in the package's
docstring (:mod:`airflow_datasync.locations.smb`); the wire-level work is in :mod:`.protocol`.
"""

from __future__ import annotations

import io
import os
import stat as st
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, TypeVar

import pyarrow as pa

from airflow_datasync.errors import (
    ConnectionLostError,
    NotFoundError,
    PermissionDeniedError,
    UnsafePathError,
)
from airflow_datasync.locations.base import (
    DIR,
    FILE,
    OTHER,
    SMB_ATTRIBUTES,
    SMB_CREATION_NS,
    SMB_SECURITY_DESCRIPTOR,
    SMB_SECURITY_FLAGS,
    SYMLINK,
    TEMP_PREFIX,
    TEMPORARY,
    Capabilities,
    Cleanup,
    DirectoryNotEmptyError,
    Leftover,
    Location,
    LocationError,
    Metadata,
    OpenedForCopy,
    StatResult,
    Written,
    listing_batch,
    safe_relpath,
    temp_name,
    temp_tag,
)
from airflow_datasync.locations.smb import read_open, sessions
from airflow_datasync.locations.smb.connection import read_connection
from airflow_datasync.locations.smb.dir_query import LOOKAHEAD, TreeLister
from airflow_datasync.locations.smb.error_table import (
    AuthenticationError,
    HandleLost,
    UnsupportedError,
    is_connection_lost,
    reason,
    to_location_error,
)
from airflow_datasync.locations.smb.leftovers import own_temporaries, remove_temporaries
from airflow_datasync.locations.smb.names import check_windows_path, windows_path_problem, windows_path_problems
from airflow_datasync.locations.smb.pipeline import PipelinedWriter, SourceFill
from airflow_datasync.locations.smb.protocol import (
    ACCESS_SYSTEM_SECURITY,
    ATTR_DIRECTORY,
    ATTR_NORMAL,
    ATTR_READONLY,
    ATTR_REPARSE_POINT,
    COPIED_ATTRIBUTES,
    DELETE,
    EPOCH_FILETIME,
    IO_REPARSE_TAG_SYMLINK,
    READ_CONTROL,
    SACL_SECURITY_INFORMATION,
    SECURITY,
    SECURITY_FLAGS,
    WRITE_ACCESS,
    WRITE_DAC,
    WRITE_OWNER,
    basic_info_request,
    close_quietly,
    create_exclusive,
    delete_on_close,
    filetime_from_ns,
    list_directory,
    query_security,
    quick_lstat,
    rename_request,
    set_basic,
    set_info_on,
    set_security,
)
from airflow_datasync.locations.smb.ranges import SmbRangedWrites
from airflow_datasync.locations.smb.sessions import ThreadLanes, drop_session, wait_for_credits
from airflow_datasync.locations.smb.small_files import limit_for, make_directory, peek_small, write_small_file
from airflow_datasync.locations.smb.uri import DEFAULT_PORT, parse_smb_uri
from airflow_datasync.retry import retrying

T = TypeVar("T")


def _basic_info(meta: Metadata, *, is_dir: bool) -> tuple[int, int, int, int]:
    """FILETIMEs (creation, last access, last write) and FILE_ATTRIBUTE_* bits to set for ``meta``; 0 means
    "leave as is". Creation and access times go with the write time (Mtime=PRESERVE), as DataSync does."""
    attributes = meta.extras.get(SMB_ATTRIBUTES)
    attrs = 0
    if attributes is not None:
        attrs = (attributes & COPIED_ATTRIBUTES) | (ATTR_DIRECTORY if is_dir else 0) or ATTR_NORMAL
    atime = meta.atime_ns if meta.atime_ns is not None else meta.mtime_ns
    keep = meta.mtime_ns is not None
    creation = filetime_from_ns(meta.extras.get(SMB_CREATION_NS)) if keep else 0
    return creation, (filetime_from_ns(atime) if keep else 0), filetime_from_ns(meta.mtime_ns), attrs


#: What SMB keeps beside the data: creation time and attributes come with every stat; the security
#: descriptor costs a request of its own (:meth:`SmbLocation.read_extras`).
SMB_EXTRAS = frozenset({SMB_CREATION_NS, SMB_ATTRIBUTES, SMB_SECURITY_DESCRIPTOR, SMB_SECURITY_FLAGS})


class SmbLocation(SmbRangedWrites, Location):
    scheme = "smb"
    #: Times are FILETIMEs (100 ns ticks); POSIX mode/uid/gid are not SMB concepts (neither set nor compared);
    #: ``Report.txt`` and ``report.txt`` are one entry on a share (Windows, and Samba for SMB2+ clients).
    capabilities = Capabilities(concurrency=16, interpreter_bound_copies=True, mtime_resolution_ns=100, posix_metadata=False, case_insensitive=True,
                                ranged_writes=True, extras_read=SMB_EXTRAS, extras_write=SMB_EXTRAS,
                                extras_on_request=frozenset({SMB_SECURITY_DESCRIPTOR, SMB_SECURITY_FLAGS}))

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        super().__init__(uri, conn_id)
        self.target = parse_smb_uri(uri)
        self._config = None
        self._known_dirs: set[str] = {""}
        self._lock = threading.Lock()
        self._symlinks_refused: str | None = None
        self._small_limit: int | None = None
        self._thread_lanes: ThreadLanes | None = None

    # -- connection -------------------------------------------------------------------------------
    @property
    def config(self):
        if self._config is None:
            self._config = read_connection(self.conn_id, self.uri)
        return self._config

    @property
    def port(self) -> int:
        return self.target.port or self.config.port or DEFAULT_PORT

    @property
    def _lanes(self) -> ThreadLanes:
        if self._thread_lanes is None:
            self._thread_lanes = ThreadLanes(self.target.server, self.port, self.config, self.target.share,
                                             self.target.base)
        return self._thread_lanes

    def _kw(self) -> dict[str, Any]:
        """smbclient's keyword arguments for this thread's lane (shared: not to be changed)."""
        return self._lanes.kw()

    def _session(self):
        return self._lanes.session()

    def _tree(self, path: str) -> tuple[Any, str]:
        """The tree connect of ``path`` and its name on the share (see :meth:`ThreadLanes.tree`)."""
        return self._lanes.tree(self._unc(path), tuple(path.split("/")) if path else ())

    def _drop_session(self) -> None:
        drop_session(self.target.server, self.port, self.config)

    def _where(self, path: str) -> str:
        return f"{self.uri.rstrip('/')}/{path}" if path else self.uri

    def _mapped(self, fn: Callable[[], T], path: str, *, setting_up: bool = False) -> T:
        """``fn()`` with a client failure raised as its errors.py vocabulary type (:mod:`.error_table`)."""
        try:
            return fn()
        except LocationError:
            raise
        except Exception as exc:  # sorted by the error table; not the client's: raised as is
            account = f"{self.config.username!r} (connection {self.config.conn_id!r})"
            error = to_location_error(exc, self._where(path), account=account, setting_up=setting_up)
            if error is None:
                raise
            raise error from None

    def _call(self, fn: Callable[[], T], path: str = "") -> T:
        """One SMB operation on this thread's session, failures in the errors.py vocabulary: it waits while
        the connection's credits are used up, and a dropped connection is re-opened and the operation
        tried again (twice)."""
        def once() -> T:
            self._mapped(self._session, path, setting_up=True)
            return self._mapped(fn, path)

        return retrying(lambda: wait_for_credits(once), attempts=3, retryable=is_connection_lost,
                        on_connection_lost=self._drop_session)

    def _unc(self, path: str = "") -> str:
        parts = [self.target.server, self.target.share, *self.target.base]
        if path:
            if "\\" in safe_relpath(path):  # a separator in UNC paths: it would name another entry
                raise UnsafePathError(f"{self.uri}: {path!r} holds a backslash, which an SMB share takes "
                                      "for a separator")
            parts.extend(path.split("/"))
        return "\\\\" + "\\".join(parts)

    def name_problem(self, path: str) -> str | None:
        """Windows' rules for names (forbidden characters, among them ``\\``, a trailing dot or space,
        reserved device names): refused per entry in PREPARING, never renamed."""
        return windows_path_problem(path)

    def name_problems(self, paths: pa.ChunkedArray | pa.Array) -> pa.Array | None:
        return windows_path_problems(paths)

    # -- checks -----------------------------------------------------------------------------------
    def check(self, *, writable: bool, dry_run: bool = False) -> bool:
        try:
            s = self.stat("")
            if s is None and writable and self.target.base:
                parent_unc = "\\\\" + "\\".join([self.target.server, self.target.share, *self.target.base[:-1]])
                if self._stat_unc(parent_unc, "") is not None:
                    if dry_run:  # a real run would create it; the share's ACLs show only on writing
                        return False
                    import smbclient

                    self._call(lambda: smbclient.mkdir(self._unc(), **self._kw()))
                    s = self.stat("")
            share_root = f"\\\\{self.target.server}\\{self.target.share}"
            share_exists = s is not None or self._stat_unc(share_root, "") is not None
        except AuthenticationError:
            raise
        except ConnectionLostError as exc:
            raise LocationError(f"{self.uri}: cannot connect to {self.target.server}:{self.port}: {reason(exc)}") from None
        except LocationError as exc:
            raise LocationError(f"{self.uri}: cannot reach the share: {reason(exc)}") from None
        if not share_exists:  # a missing share reads as a missing path (ENOENT): tell them apart for the fix
            raise LocationError(f"{self.uri}: server {self.target.server} has no share {self.target.share!r}. "
                                "Fix the share name, or share the folder.")
        if s is None:
            created = " (a destination folder is created only inside an existing one)" if writable else ""
            raise LocationError(f"{self.uri}: the folder does not exist on share {self.target.share!r}{created}. "
                                "Create it or fix the path.")
        if s.type != DIR:
            raise LocationError(f"{self.uri}: is not a directory; a location names a folder, fix the path.")
        if writable and not dry_run:
            probe = f"{TEMP_PREFIX}probe-{uuid.uuid4().hex[:12]}"
            try:
                self._write_temp(probe, iter([b""]))
                self._remove(probe, is_dir=False)
            except LocationError as exc:
                raise LocationError(f"{self.uri}: not writable by {self.config.username!r}: {reason(exc)}") from None
        return True

    def contains(self, other: Location) -> bool:
        if not isinstance(other, SmbLocation):
            return False
        a, b = self.target, other.target
        if (a.server.lower(), a.share.lower()) != (b.server.lower(), b.share.lower()) or self.port != other.port:
            return False
        mine = [p.lower() for p in a.base]
        return [p.lower() for p in b.base[: len(mine)]] == mine

    # -- reading ----------------------------------------------------------------------------------
    def scan(self, batch_size: int = 10_000, hints=None, needs_metadata=None) -> Iterator[pa.RecordBatch]:
        """The tree, depth first, each directory's entries by name; the next directories' listings are sent
        ahead (:class:`.dir_query.TreeLister`). Listed on the session of the thread that asks for the scan,
        whichever thread then reads it (a listing overlapped with the other side's opens no connection)."""
        return self._scan(batch_size, sessions.current_lane())

    def _scan(self, batch_size: int, lane: int) -> Iterator[pa.RecordBatch]:
        sessions.use_lane(lane)
        cols: dict[str, list] = {name: [] for name in ("path", "type", "size", "mtime_ns", "atime_ns", "link_target",
                                                       "error")}
        path, kind, sizes, mtimes, atimes, links, errors = cols.values()

        def add(rel, entry_kind, size=None, mtime=None, atime=None, link=None, error=None):
            path.append(rel)
            kind.append(entry_kind)
            sizes.append(size)
            mtimes.append(mtime)
            atimes.append(atime)
            links.append(link)
            errors.append(error)

        def flush():
            batch = listing_batch(cols)
            for v in cols.values():
                v.clear()
            return batch

        lister = None

        def listed(rel_dir: str, ahead: list[str]):
            nonlocal lister
            # The first directory, or the pool's connection is another now (a dropped one re-opened).
            if lister is None or lister.connection is not self._session().connection:
                lister = TreeLister.open(self._unc(), self._kw())
            if lister is None:  # a DFS share: each directory through smbclient
                return list_directory(self._unc(rel_dir), self._kw())
            lister.send_ahead(self._ahead_uncs(ahead))
            return lister.entries(self._unc(rel_dir), self._kw())

        self._seen_leftovers = []
        stack = [""]
        try:
            while stack:
                rel_dir = stack.pop()
                try:
                    entries = self._call(lambda d=rel_dir: listed(d, stack[:-LOOKAHEAD - 1:-1]), rel_dir)
                except LocationError as exc:
                    if rel_dir:
                        add(rel_dir, DIR, error=f"cannot list directory: {reason(exc)}")
                        continue
                    raise LocationError(f"{self.uri}: cannot list the root: {reason(exc)}") from None
                prefix = f"{rel_dir}/" if rel_dir else ""
                named = sorted((raw.decode("utf-16-le", "surrogatepass"), attrs, size, mtime, atime, ea)
                               for raw, attrs, size, mtime, atime, ea in entries)
                try:  # one check for the whole directory; a name with a lone surrogate is found below
                    "/".join(e[0] for e in named).encode("utf-8")
                    valid = True
                except UnicodeEncodeError:
                    valid = False
                subdirs = []
                for name, attrs, size, mtime, atime, ea_size in named:
                    if name in (".", ".."):
                        continue
                    if name.startswith(TEMP_PREFIX):
                        self._met_leftover(Leftover(TEMPORARY, prefix + name, temp_tag(name), size))
                        continue
                    if not valid:
                        try:
                            name.encode("utf-8")
                        except UnicodeEncodeError:
                            shown = name.encode("utf-8", "replace").decode("utf-8")
                            add(prefix + shown, OTHER, error="name is not valid UTF-16; not copied")
                            continue
                    rel = prefix + name
                    mtime_ns = (mtime - EPOCH_FILETIME) * 100 if mtime else None
                    atime_ns = (atime - EPOCH_FILETIME) * 100 if atime else None
                    if attrs & ATTR_REPARSE_POINT and ea_size == IO_REPARSE_TAG_SYMLINK:
                        try:
                            add(rel, SYMLINK, 0, mtime_ns, atime_ns, link=self._readlink(rel))
                        except LocationError as exc:
                            add(rel, SYMLINK, 0, mtime_ns, atime_ns, error=f"cannot read link: {reason(exc)}")
                    elif attrs & ATTR_DIRECTORY:
                        add(rel, DIR, 0, mtime_ns, atime_ns)
                        subdirs.append(rel)
                    else:
                        add(rel, FILE, size, mtime_ns, atime_ns)
                    if len(path) >= batch_size:
                        yield flush()
                stack.extend(reversed(subdirs))
            if path:
                yield flush()
        finally:
            if lister is not None:
                lister.drain()  # compounds sent ahead for a scan that ended early

    def _ahead_uncs(self, dirs: Iterable[str]) -> Iterator[str]:
        for rel_dir in dirs:
            try:
                yield self._unc(rel_dir)
            except UnsafePathError:  # not sent ahead: listed in its turn, which records its own error
                continue

    def _readlink(self, path: str) -> str:
        import smbclient

        target = self._call(lambda: smbclient.readlink(self._unc(path), **self._kw()), path)
        return target.replace("\\", "/")

    def _stat_unc(self, unc: str, path: str):
        import smbclient

        def go():
            found = quick_lstat(unc, self._kw())
            if found is None:  # a reparse point: the full query reports its tag
                found = smbclient.lstat(unc, **self._kw())
            return found

        try:
            return self._call(go, path)
        except NotFoundError:
            return None

    def stat(self, path: str) -> StatResult | None:
        s = self._stat_unc(self._unc(path), path)
        if s is None:
            return None
        if st.S_ISLNK(s.st_mode):
            kind = SYMLINK
        elif st.S_ISDIR(s.st_mode):
            kind = DIR
        else:
            kind = FILE
        link = self._readlink(path) if kind == SYMLINK else None
        return StatResult(kind, s.st_size if kind == FILE else 0, s.st_mtime_ns, s.st_atime_ns, link_target=link,
                          extras={SMB_CREATION_NS: s.st_ctime_ns,
                                  SMB_ATTRIBUTES: s.st_file_attributes & COPIED_ATTRIBUTES})

    def open_read(self, path: str) -> IO[bytes]:
        return read_open.open_read(self, path)

    def open_for_copy(self, path: str) -> OpenedForCopy:
        return read_open.open_for_copy(self, path)

    def open_range(self, path: str, offset: int, length: int) -> IO[bytes]:
        return read_open.open_range(self, path, offset, length)

    # -- security descriptors -----------------------------------------------------------------------
    def read_extras(self, path: str, wanted: Mapping[str, Any]) -> dict[str, Any]:
        """The security descriptor as SecurityDescriptorCopyFlags (``wanted[SMB_SECURITY_DESCRIPTOR]``) asks,
        with the flags it was read with (what applying it needs)."""
        flags = wanted.get(SMB_SECURITY_DESCRIPTOR) or wanted.get(SMB_SECURITY_FLAGS)
        info = SECURITY_FLAGS.get(flags) if isinstance(flags, str) else None
        if info is None:
            return {}
        access = READ_CONTROL | (ACCESS_SYSTEM_SECURITY if info & SACL_SECURITY_INFORMATION else 0)
        descriptor = self._call(lambda: query_security(self._unc(path), info, access, self._kw()), path)
        return {SMB_SECURITY_DESCRIPTOR: descriptor, SMB_SECURITY_FLAGS: flags} if descriptor else {}

    def _set_security_descriptor(self, path: str, descriptor: bytes | None, flags: str) -> None:
        info = SECURITY_FLAGS.get(flags)
        if info is None or not descriptor:
            return
        access = WRITE_DAC | WRITE_OWNER | (ACCESS_SYSTEM_SECURITY if info & SACL_SECURITY_INFORMATION else 0)
        self._call(lambda: set_security(self._unc(path), info, access, descriptor, self._kw()), path)

    # -- writing ----------------------------------------------------------------------------------
    def _check_dest_path(self, path: str) -> None:
        safe_relpath(path)
        check_windows_path(self.uri, path)

    def _ensure_dir(self, rel_dir: str) -> None:
        if rel_dir in self._known_dirs:
            return
        self._ensure_dir(os.path.dirname(rel_dir))
        make_directory(self, rel_dir)
        with self._lock:
            self._known_dirs.add(rel_dir)

    def _temp_for(self, path: str, tag: str) -> str:
        head, name = os.path.split(path)
        tmp = temp_name(name, tag)
        return f"{head}/{tmp}" if head else tmp

    def _create_temp(self, tmp: str, extra_access: int = 0):
        """Create (or truncate) ``tmp`` exclusively and return the open handle (an ``SMBFileIO``)."""
        return self._call(lambda: create_exclusive(self._unc(tmp), extra_access, self._kw()), tmp)

    def _write_chunks(self, raw, tmp: str, chunks: Iterator[bytes]) -> int:
        """Stream ``chunks`` into the open ``raw`` handle with several WRITEs in flight (:mod:`.pipeline`)."""
        return PipelinedWriter(raw, lambda fn: self._mapped(fn, tmp)).write(chunks)

    def _write_temp(self, tmp: str, chunks: Iterator[bytes]) -> int:
        """Create ``tmp``, stream ``chunks`` into it and close it."""
        raw = self._create_temp(tmp)
        try:
            return self._write_chunks(raw, tmp, chunks)
        finally:
            close_quietly(raw)

    def _on_handle(self, raw, fn: Callable[[], T], path: str) -> T:
        """One request on the open handle ``raw``, waiting for credits; a dropped connection comes back as
        :class:`HandleLost` (the handle is gone: the caller goes on by path)."""
        try:
            return wait_for_credits(lambda: self._mapped(fn, path))
        except ConnectionLostError:
            raise HandleLost() from None

    def write(self, path: str, chunks: Iterator[bytes], meta: Metadata, *, tag: str,
              before_commit: Callable[[int], None] | None = None, overwrite: bool = True) -> Written:
        """One handle per file: create the temp → write(s) → SET_INFO security + basic info → ``before_commit`` →
        SET_INFO rename (ReplaceIfExists per ``overwrite``) → close: no request on the final path unless the
        rename fails (a directory or a read-only file in the way is then looked at). A small file is all of
        it in one compound (:mod:`.small_files`)."""
        self._check_dest_path(path)
        self._ensure_dir(os.path.dirname(path))
        tmp = self._temp_for(path, tag)
        sd = meta.extras.get(SMB_SECURITY_DESCRIPTOR)
        sd_info = SECURITY_FLAGS.get(meta.extras.get(SMB_SECURITY_FLAGS) or "OWNER_DACL") if sd else None
        extra = DELETE
        if sd_info:
            extra |= WRITE_DAC | WRITE_OWNER | (ACCESS_SYSTEM_SECURITY if sd_info & SACL_SECURITY_INFORMATION else 0)
        data = None
        if not isinstance(chunks, SourceFill):  # write_file's big files: no peek
            data, chunks = peek_small(chunks, self._small_file_limit())
        if data is not None:
            times = _basic_info(meta, is_dir=False)
            done = write_small_file(self, tmp, path, data, WRITE_ACCESS | extra, times if any(times) else None,
                                    (sd_info, sd) if sd_info else None, overwrite, before_commit,
                                    lambda: self._apply(path, meta, is_dir=False))
            if done is not None:
                return done
            chunks = iter([data])
        raw = self._create_temp(tmp, extra)
        handle = True  # False once the connection under the handle dropped: the rest goes by path
        committed = False
        try:
            written = self._write_chunks(raw, tmp, chunks)
            try:
                self._on_handle(raw, lambda: set_info_on(raw, *self._meta_infos(meta, sd, sd_info, is_dir=False)), tmp)
            except HandleLost:
                handle = False
                self._apply(tmp, meta, is_dir=False)
            if before_commit is not None:
                before_commit(written)
            if handle:
                try:
                    self._rename_handle(raw, tmp, path, overwrite)
                except HandleLost:
                    handle = False
            if not handle:
                self._replace(tmp, path, overwrite=overwrite)
            committed = True
        except BaseException:
            if handle and delete_on_close(raw):
                handle = False
            else:
                close_quietly(raw)
                try:
                    self._remove(tmp, is_dir=False)
                except Exception:  # best effort; scans never list temporary names
                    pass
            raise
        finally:
            if committed:
                close_quietly(raw)
        return Written(size=written)

    def _small_file_limit(self) -> int:
        """The largest file written in one compound (:func:`.small_files.limit_for`), asked once per location."""
        if self._small_limit is None:
            self._small_limit = limit_for(self)
        return self._small_limit

    def write_file(self, path: str, fh: IO[bytes], meta: Metadata, *, tag: str, hasher: Any, also: Any = None,
                   on_chunk: Callable[[int], None] | None = None, size: int | None = None,
                   before_commit: Callable[[int], None] | None = None, overwrite: bool = True) -> Written:
        """A local file past the small-file limit is read straight into the WRITE requests' buffers
        (:class:`.pipeline.SourceFill`); anything else as chunks."""
        if not isinstance(fh, io.FileIO) or size is None or size <= self._small_file_limit():
            return super().write_file(path, fh, meta, tag=tag, hasher=hasher, also=also, on_chunk=on_chunk,
                                      size=size, before_commit=before_commit, overwrite=overwrite)
        return self.write(path, SourceFill(fh, hasher, also, on_chunk), meta, tag=tag, before_commit=before_commit,
                          overwrite=overwrite)

    def _meta_infos(self, meta: Metadata, sd: bytes | None, sd_info: int | None, *, is_dir: bool) -> list:
        """The SET_INFO requests that apply ``meta``: the security descriptor first (writing an owner or ACL may
        update the change time, never the write time), then the times and attributes."""
        out = []
        if sd and sd_info:
            out.append((SECURITY, sd_info, sd))
        creation, atime_ft, mtime, attrs = _basic_info(meta, is_dir=is_dir)
        if creation or atime_ft or mtime or attrs:
            out.append(basic_info_request(creation, atime_ft, mtime, attrs))
        return out

    def _rename_handle(self, raw, tmp: str, path: str, overwrite: bool, *, refused: LocationError | None = None) -> None:
        """SET_INFO FileRenameInformation on the open temp handle (unless the server ``refused`` it already). On
        failure the final path is looked at once: a directory there is a clear :class:`LocationError`; a
        read-only file (which Windows refuses to replace) loses its read-only attribute and the rename is tried
        again."""
        info = self._call(lambda: rename_request(self._unc(path), overwrite, self._kw()), path)
        for attempt in range(2):
            try:
                if refused is not None:
                    error, refused = refused, None
                    raise error
                self._on_handle(raw, lambda: set_info_on(raw, info), path)
                return
            except LocationError:
                existing = self.stat(path)
                if existing is not None and existing.type == DIR:
                    raise LocationError(f"{self.uri}: {path!r} is a directory at the destination and a file at the "
                                        "source.") from None
                if (attempt == 0 and overwrite and existing is not None
                        and existing.extras.get(SMB_ATTRIBUTES, 0) & ATTR_READONLY):
                    self._set_basic(path, attributes=ATTR_NORMAL)  # a read-only file cannot be replaced
                    continue
                raise

    def _replace(self, src: str, dst: str, *, overwrite: bool = True) -> None:
        """Rename ``src`` over ``dst`` (one SET_INFO FileRenameInformation); ``overwrite=False`` never replaces:
        an entry that appeared meanwhile raises :class:`AlreadyExistsError`."""
        import smbclient

        move = smbclient.replace if overwrite else smbclient.rename
        self._call(lambda: move(self._unc(src), self._unc(dst), **self._kw()), dst)

    def _set_basic(self, path: str, *, creation: int = 0, atime: int = 0, mtime: int = 0, attributes: int = 0) -> None:
        if not (creation or atime or mtime or attributes):
            return
        self._call(lambda: set_basic(self._unc(path), creation=creation, atime=atime, mtime=mtime, attributes=attributes,
                                     kw=self._kw()), path)

    def _apply(self, path: str, meta: Metadata, *, is_dir: bool) -> None:
        sd = meta.extras.get(SMB_SECURITY_DESCRIPTOR)
        if sd:
            # Before the times: writing an owner or ACL may update the change time, never the write time.
            self._set_security_descriptor(path, sd, meta.extras.get(SMB_SECURITY_FLAGS) or "OWNER_DACL")
        creation, atime, mtime, attrs = _basic_info(meta, is_dir=is_dir)
        self._set_basic(path, creation=creation, atime=atime, mtime=mtime, attributes=attrs)

    def symlink(self, path: str, target: str, meta: Metadata, *, tag: str) -> None:
        import smbclient

        self._check_dest_path(path)
        if self._symlinks_refused:
            raise LocationError(self._symlinks_refused)
        self._ensure_dir(os.path.dirname(path))
        tmp = self._temp_for(path, tag)
        try:
            self._call(lambda: smbclient.symlink(target.replace("/", "\\"), self._unc(tmp), **self._kw()), tmp)
        except LocationError as exc:
            try:
                self._remove(tmp, is_dir=False)
            except LocationError:
                pass
            if isinstance(exc, (UnsupportedError, PermissionDeniedError)):
                self._symlinks_refused = (
                    f"{self.uri}: the SMB server does not support symbolic links (reparse points) here "
                    f"({reason(exc)}); symlink {path!r} → {target!r} not copied. Samba refuses them; Windows needs "
                    "SeCreateSymbolicLinkPrivilege. Exclude symlinks or copy to a local/NFS destination.")
                raise LocationError(self._symlinks_refused) from None
            raise
        try:
            self._replace(tmp, path)
        except BaseException:
            self._remove(tmp, is_dir=False)
            raise

    def mkdir(self, path: str, meta: Metadata | None = None) -> None:
        self._check_dest_path(path)
        self._ensure_dir(path)

    def set_metadata(self, path: str, meta: Metadata, *, is_dir: bool = False) -> list[str]:
        safe_relpath(path)
        self._apply(path, meta, is_dir=is_dir)
        return []

    def _remove(self, path: str, *, is_dir: bool) -> None:
        import smbclient

        try:
            self._call(lambda: (smbclient.rmdir if is_dir else smbclient.remove)(self._unc(path), **self._kw()), path)
        except NotFoundError:
            pass  # gone already: what a removal wants

    def delete(self, path: str, *, is_dir: bool) -> None:
        safe_relpath(path)
        try:
            self._remove(path, is_dir=is_dir)
        except DirectoryNotEmptyError:
            raise DirectoryNotEmptyError(f"{self.uri}: directory {path!r} still holds entries (excluded by filters, "
                                         "or new); kept") from None
        with self._lock:
            self._known_dirs.discard(path)

    def own_leftovers(self, dirs: Iterable[str], tag: str) -> list[Leftover]:
        return own_temporaries(self, dirs, tag)

    def remove_leftovers(self, leftovers: Iterable[Leftover], *, writers_gone: bool = False) -> Cleanup:
        """Deletes each temporary its writer no longer holds open (see :mod:`.leftovers`)."""
        return remove_temporaries(self, leftovers, writers_gone=writers_gone)

    def close(self) -> None:
        """Sessions stay pooled for the next location in this process; nothing per-location to release."""

