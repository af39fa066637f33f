"""SMB shares (Windows file servers, FSx for Windows File Server, Samba) through ``smbprotocol``.

URI: ``smb://server[:port]/share[/path]``; credentials come from a ``datasync_smb`` Airflow connection
(:mod:`airflow_datasync.hooks.smb`), never from the URI.

- **Sessions** are pooled per worker process and per connection settings (smbclient's connection cache,
  one per settings tuple and pid, so a forked worker never shares a socket with its parent). A dropped
  connection is re-established and the operation retried; a read in progress re-opens the file and goes
  on at the same offset.
- **Writes are atomic**: data goes to ``.~ds-<tag>-<hash>`` in the target's directory and is renamed over
  the final name after ``before_commit`` passes; the temporary file is removed if anything fails.
- **Times** are FILETIMEs (100 ns): listings report them exactly and :attr:`mtime_resolution_ns` tells
  the planner to compare finer-grained source times at that resolution.
- **Names Windows forbids** (``<>:"|?*\\``, control characters, a trailing dot or space, ``CON``, ``PRN``,
  ``AUX``, ``NUL``, ``COM1``-``COM9``, ``LPT1``-``LPT9`` with or without an extension) are refused per entry
  with a :class:`LocationError` that names the path and the rule; they are never renamed silently.
- POSIX mode/uid/gid are not SMB concepts and are ignored. Symbolic links need reparse-point support
  (Windows servers); Samba refuses them, and the entry is reported failed.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import io
import logging
import os
import re
import stat as st
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterator
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from airflow_datasync.locations.base import (
    DIR,
    FILE,
    LISTING_SCHEMA,
    OTHER,
    SYMLINK,
    DirectoryNotEmptyError,
    Location,
    LocationError,
    Metadata,
    StatResult,
    listing_batch,
    safe_relpath,
)
from airflow_datasync.locations.local import TEMP_PREFIX

# smbprotocol logs every open/close at INFO: thousands of lines per shard in a task log. Quiet it unless
# the user configured its level.
if logging.getLogger("smbprotocol").level == logging.NOTSET:
    logging.getLogger("smbprotocol").setLevel(logging.WARNING)
    logging.getLogger("smbclient").setLevel(logging.WARNING)

DEFAULT_PORT = 445
EPOCH_FILETIME = 116444736000000000  # 1970-01-01 as a FILETIME (100 ns ticks since 1601)

# FILE_ATTRIBUTE_* (MS-FSCC 2.6)
ATTR_READONLY, ATTR_HIDDEN, ATTR_SYSTEM, ATTR_DIRECTORY, ATTR_ARCHIVE = 0x1, 0x2, 0x4, 0x10, 0x20
ATTR_NORMAL, ATTR_TEMPORARY, ATTR_REPARSE_POINT = 0x80, 0x100, 0x400
ATTR_OFFLINE, ATTR_NOT_CONTENT_INDEXED = 0x1000, 0x2000
#: Attributes copied between SMB locations (DataSync's "standard file attributes" that a client may set).
COPIED_ATTRIBUTES = ATTR_READONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_ARCHIVE | ATTR_TEMPORARY | ATTR_OFFLINE | ATTR_NOT_CONTENT_INDEXED
IO_REPARSE_TAG_SYMLINK = 0xA000000C

# SECURITY_INFORMATION flags (MS-DTYP 2.4.7) for SecurityDescriptorCopyFlags.
OWNER_SECURITY_INFORMATION, GROUP_SECURITY_INFORMATION = 0x1, 0x2
DACL_SECURITY_INFORMATION, SACL_SECURITY_INFORMATION = 0x4, 0x8
SECURITY_FLAGS = {
    "OWNER_DACL": OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
    "OWNER_DACL_SACL": OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION | SACL_SECURITY_INFORMATION,
}
_READ_CONTROL, _WRITE_DAC, _WRITE_OWNER, _ACCESS_SYSTEM_SECURITY = 0x00020000, 0x00040000, 0x00080000, 0x01000000

# NTSTATUS values we translate to errno (smbprotocol leaves some at errno 0).
_STATUS_ERRNO = {
    0xC0000022: (errno.EACCES, "access denied"),
    0xC00000A2: (errno.EROFS, "the share is write-protected"),
    0xC000007F: (errno.ENOSPC, "disk full"),
    0xC0000033: (errno.EINVAL, "name is not valid on the server"),
    0xC0000043: (errno.EBUSY, "sharing violation: the file is open elsewhere"),
    0xC0000061: (errno.EACCES, "required privilege not held"),
    0xC00000BB: (errno.EOPNOTSUPP, "not supported by the server"),
    0xC0000275: (errno.EOPNOTSUPP, "not a reparse point"),
}
_LOGON_STATUSES = {0xC000006D, 0xC000006E, 0xC0000070, 0xC0000071, 0xC0000072, 0xC0000193, 0xC0000224, 0xC0000234}
_DISCONNECT_STATUSES = {0xC0000203, 0xC000035C, 0xC00000C9, 0xC000020C, 0xC0000128}  # session deleted/expired, name deleted…

# -- names Windows forbids ---------------------------------------------------------------------------
_FORBIDDEN_CHARS = re.compile(r'[<>:"|?*\x00-\x1f\\]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def windows_name_problem(name: str) -> str | None:
    """Why ``name`` (one path component) cannot exist on a Windows share, or ``None`` if it can."""
    bad = sorted(set(_FORBIDDEN_CHARS.findall(name)))
    if bad:
        shown = " ".join(repr(c) if c.isprintable() else f"\\x{ord(c):02x}" for c in bad)
        return f'contains characters Windows forbids in names ({shown}; forbidden: < > : " | ? * \\ and control characters)'
    if name.endswith((".", " ")):
        return "ends with a dot or a space, which Windows strips from names"
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    if stem in _RESERVED:
        return f"uses the reserved device name {stem} (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with or without an extension)"
    return None


def check_windows_path(uri: str, path: str) -> None:
    for part in path.split("/"):
        problem = windows_name_problem(part)
        if problem:
            where = f" (component {part!r})" if part != path else ""
            raise LocationError(f"{uri}: {path!r}{where} cannot be written to an SMB share: {problem}. "
                                "Rename it at the source or exclude it with Excludes.")


# -- sessions ----------------------------------------------------------------------------------------
_POOL_LOCK = threading.RLock()
_POOLS: dict[tuple, dict] = {}
#: Connections per server and worker process. A server handles one connection's requests mostly one at a
#: time (Samba forks one smbd per connection), so copy threads are spread over several connections
#: ("lanes"): 300 small files to Samba took 6.3 s over one connection with 16 threads, the same as with one.
MAX_LANES = 8
_LANE = threading.local()
_LANES = itertools.count()


def _lane() -> int:
    lane = getattr(_LANE, "id", None)
    if lane is None:
        lane = _LANE.id = next(_LANES) % MAX_LANES
    return lane


def _pool_key(server: str, port: int, config) -> tuple:
    # A digest of the password, so a changed or wrong password never reuses a session opened with another.
    secret = hashlib.sha256((config.password or "").encode()).hexdigest()
    return (os.getpid(), _lane(), server.lower(), port, config.username, secret, config.encrypt,
            config.require_signing, config.auth_protocol, config.dialect)


def _pool(server: str, port: int, config) -> dict:
    with _POOL_LOCK:
        return _POOLS.setdefault(_pool_key(server, port, config), {})


def _alive(connection: Any) -> bool:
    return connection is not None and connection.transport.connected and getattr(connection, "_t_exc", None) is None


def open_session(server: str, port: int, config, *, fresh: bool = False):
    """The pooled session for ``server:port`` with ``config`` (opened, or re-opened if its connection dropped)."""
    import smbclient
    from smbclient._pool import ClientConfig
    from smbprotocol.connection import Connection

    cache = _pool(server, port, config)
    key = f"{server.lower()}:{port}"
    with _POOL_LOCK:
        conn = cache.get(key)
        if fresh or not _alive(conn):
            cache.pop(key, None)
            if conn is not None:
                _quiet_disconnect(conn)
            conn = Connection(ClientConfig().client_guid, server, port, require_signing=config.require_signing)
            try:
                conn.connect(dialect=config.dialect, timeout=30)
            except ValueError as exc:  # smbprotocol wraps socket errors in ValueError("Failed to connect …")
                raise ConnectionError(str(exc)) from None
            cache[key] = conn
        return smbclient.register_session(
            server, username=config.username, password=config.password, port=port,
            encrypt=True if config.encrypt else None, connection_cache=cache,
            auth_protocol=config.auth_protocol, require_signing=config.require_signing)


def _quiet_disconnect(conn: Any) -> None:
    try:
        conn.disconnect(close=True, timeout=5)
    except Exception:  # noqa: BLE001 - the connection is already broken
        pass


def reset_pools() -> None:
    """Close every pooled SMB connection of this process (tests use it to simulate a dropped connection)."""
    with _POOL_LOCK:
        for cache in _POOLS.values():
            for conn in list(cache.values()):
                _quiet_disconnect(conn)
            cache.clear()


def _is_disconnect(exc: BaseException) -> bool:
    from smbprotocol.exceptions import SMBConnectionClosed, SMBException, SMBOSError, SMBResponseException

    if isinstance(exc, (SMBConnectionClosed, ConnectionError, BrokenPipeError, TimeoutError)):
        return True
    if isinstance(exc, SMBOSError):
        return exc.ntstatus in _DISCONNECT_STATUSES
    if isinstance(exc, OSError):  # the socket under a pooled connection was closed by the peer
        return exc.errno in (errno.EBADF, errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNABORTED)
    if isinstance(exc, SMBResponseException):
        return exc.status in _DISCONNECT_STATUSES
    if isinstance(exc, SMBException):
        return "closed" in str(exc).lower()
    return False


def _out_of_credits(exc: BaseException) -> bool:
    """smbprotocol refuses to send (rather than wait) when concurrent requests used up the server's credits."""
    return "credits are available" in str(exc)


def _pause(attempt: int) -> None:
    """Back off while other requests on the connection return their credits (at most ~0.1 s per wait)."""
    time.sleep(min(0.001 * (2 ** min(attempt, 7)), 0.1))


#: How many times an operation waits for credits before giving up (about 30 s in all).
_CREDIT_WAITS = 300


def _raw_times_dir_info():
    """FileIdFullDirectoryInformation with the times as raw FILETIME ints (smbprotocol's datetimes keep µs only)."""
    from smbprotocol.file_info import FileAttributes, FileIdFullDirectoryInformation
    from smbprotocol.structure import BytesField, FlagField, IntField, Structure

    class RawTimesDirInfo(FileIdFullDirectoryInformation):
        def __init__(self):
            self.fields = OrderedDict([
                ("next_entry_offset", IntField(size=4)),
                ("file_index", IntField(size=4)),
                ("creation_time", IntField(size=8)),
                ("last_access_time", IntField(size=8)),
                ("last_write_time", IntField(size=8)),
                ("change_time", IntField(size=8)),
                ("end_of_file", IntField(size=8)),
                ("allocation_size", IntField(size=8)),
                ("file_attributes", FlagField(size=4, flag_type=FileAttributes, flag_strict=False)),
                ("file_name_length", IntField(size=4, default=lambda s: len(s["file_name"]))),
                ("ea_size", IntField(size=4)),
                ("reserved", IntField(size=4)),
                ("file_id", IntField(size=8)),
                ("file_name", BytesField(size=lambda s: s["file_name_length"].get_value())),
            ])
            Structure.__init__(self)

    return RawTimesDirInfo


def _query_directory(smb_open: Any, info_class: type) -> Iterator[Any]:
    """Every entry of an open directory, parsed with ``info_class`` (smbprotocol hard-codes its own classes)."""
    from smbprotocol.exceptions import NoMoreFiles, NoSuchFile
    from smbprotocol.file_info import FileInformationClass
    from smbprotocol.open import QueryDirectoryFlags, SMB2QueryDirectoryResponse

    flags = QueryDirectoryFlags.SMB2_RESTART_SCANS
    tree = smb_open.tree_connect
    while True:
        query, _ = smb_open.query_directory("*", FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION,
                                            flags=flags, send=False)
        request = smb_open.connection.send(query, tree.session.session_id, tree.tree_connect_id)
        try:
            response = smb_open.connection.receive(request)
        except (NoMoreFiles, NoSuchFile):
            return
        parsed = SMB2QueryDirectoryResponse()
        parsed.unpack(response["data"].get_value())
        buffer = parsed["buffer"].get_value()
        offset = 0
        while True:
            entry = info_class()
            entry.unpack(buffer[offset:])
            yield entry
            step = entry["next_entry_offset"].get_value()
            if not step:
                break
            offset += step
        flags = 0


def _ns(filetime: int) -> int | None:
    return (filetime - EPOCH_FILETIME) * 100 if filetime else None


def _filetime(ns: int | None) -> int:
    return 0 if ns is None else ns // 100 + EPOCH_FILETIME


@dataclass(frozen=True)
class SmbTarget:
    server: str
    port: int | None
    share: str
    base: tuple[str, ...]


def parse_smb_uri(uri: str) -> SmbTarget:
    parts = urlsplit(uri)
    if parts.scheme.lower() != "smb":
        raise LocationError(f"{uri}: not an smb:// URI")
    if parts.query or parts.fragment:
        raise LocationError(f"{uri}: an SMB location takes no ?query or #fragment")
    if parts.username or parts.password:
        raise LocationError(f"{uri}: put the user and password in a datasync_smb connection (conn_id), not in the URI")
    server = parts.hostname
    try:
        port = parts.port
    except ValueError:
        raise LocationError(f"{uri}: the port is not a number") from None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not server or not segments:
        raise LocationError(f"{uri}: an SMB location is smb://server[:port]/share[/path]")
    share, base = segments[0], tuple(segments[1:])
    for seg in base:
        if seg in (".", "..") or "\\" in seg or "\x00" in seg:
            raise LocationError(f"{uri}: path component {seg!r} is not allowed")
    return SmbTarget(server, port, share, base)


def _basic_info(meta: Metadata, *, is_dir: bool) -> tuple[int, int, int, int]:
    """FILETIMEs (creation, last access, last write) and FILE_ATTRIBUTE_* bits to set for ``meta``; 0 means
    "leave as is". Creation and access times go with the write time (Mtime=PRESERVE), as DataSync does."""
    attributes = getattr(meta, "attributes", None)
    attrs = 0
    if attributes is not None:
        attrs = (attributes & COPIED_ATTRIBUTES) | (ATTR_DIRECTORY if is_dir else 0) or ATTR_NORMAL
    atime = meta.atime_ns if meta.atime_ns is not None else meta.mtime_ns
    keep = meta.mtime_ns is not None
    creation = _filetime(getattr(meta, "creation_ns", None)) if keep else 0
    return creation, (_filetime(atime) if keep else 0), _filetime(meta.mtime_ns), attrs


class SmbLocation(Location):
    scheme = "smb"
    default_concurrency = 16
    #: SMB keeps times as FILETIMEs: 100 ns ticks.
    mtime_resolution_ns = 100
    #: POSIX mode/uid/gid are not kept by SMB: the planner does not compare them.
    posix_metadata = False
    #: ``Report.txt`` and ``report.txt`` are one entry on a share (Windows, and Samba for SMB2+ clients).
    case_insensitive = True

    def __init__(self, uri: str, conn_id: str | None = None) -> None:
        super().__init__(uri, conn_id)
        self.target = parse_smb_uri(uri)
        self._config = None
        self._known_dirs: set[str] = {""}
        self._lock = threading.Lock()
        self._symlinks_refused: str | None = None

    # -- connection -------------------------------------------------------------------------------
    @property
    def config(self):
        if self._config is None:
            from airflow.sdk.exceptions import AirflowNotFoundException

            from airflow_datasync.hooks.smb import SmbConnectionError, SmbShareHook

            conn_id = self.conn_id or SmbShareHook.default_conn_name
            try:
                self._config = SmbShareHook(conn_id).get_config()
            except SmbConnectionError as exc:
                raise LocationError(f"{self.uri}: {exc}") from None
            except AirflowNotFoundException:  # airflow.exceptions re-exports this class
                raise LocationError(
                    f"{self.uri}: Airflow connection {conn_id!r} (type datasync_smb) is not defined; create it or "
                    "set source_conn_id/destination_conn_id") from None
        return self._config

    @property
    def port(self) -> int:
        return self.target.port or self.config.port or DEFAULT_PORT

    def _kw(self) -> dict[str, Any]:
        c = self.config
        return {"username": c.username, "password": c.password, "port": self.port,
                "encrypt": True if c.encrypt else None, "connection_cache": _pool(self.target.server, self.port, c),
                "auth_protocol": c.auth_protocol, "require_signing": c.require_signing}

    def _session(self, fresh: bool = False):
        return open_session(self.target.server, self.port, self.config, fresh=fresh)

    def _call(self, fn: Callable[[], Any], path: str = "") -> Any:
        """Run one SMB operation; on a dropped connection re-open the session and try again (twice)."""
        from smbprotocol.exceptions import SMBAuthenticationError, SMBException, SMBResponseException

        drops = waits = 0
        while True:
            try:
                self._session(fresh=drops > 0)
                return fn()
            except (SMBAuthenticationError, SMBResponseException) as exc:
                if isinstance(exc, SMBResponseException) and exc.status not in _LOGON_STATUSES:
                    if _out_of_credits(exc) or _is_disconnect(exc):
                        drops += 1
                        if drops <= 2:
                            continue
                    raise self._translate(exc, path) from None
                raise LocationError(f"{self.uri}: authentication failed for {self.config.username!r} "
                                    f"(connection {self.config.conn_id!r}): {exc}") from None
            except Exception as exc:  # noqa: BLE001 - sorted below
                if _out_of_credits(exc) and waits < _CREDIT_WAITS:
                    _pause(waits)
                    waits += 1
                    continue
                if _is_disconnect(exc) and drops < 2:
                    drops += 1
                    continue
                if isinstance(exc, (OSError, SMBException)):
                    raise self._translate(exc, path) from None
                raise

    def _translate(self, exc: BaseException, path: str) -> BaseException:
        from smbprotocol.exceptions import SMBOSError, SMBResponseException

        shown = f"{self.uri.rstrip('/')}/{path}" if path else self.uri
        if isinstance(exc, SMBOSError):
            code, text = _STATUS_ERRNO.get(exc.ntstatus, (exc.errno or errno.EIO, exc.strerror))
            return OSError(code, f"{text} (NTSTATUS 0x{exc.ntstatus:08x})", shown)
        if isinstance(exc, SMBResponseException):
            code, text = _STATUS_ERRNO.get(exc.status, (errno.EIO, exc.message))
            return OSError(code, f"{text} (NTSTATUS 0x{exc.status:08x})", shown)
        if isinstance(exc, OSError) and not exc.filename:
            return OSError(exc.errno or errno.EIO, exc.strerror or str(exc), shown)
        if isinstance(exc, OSError):
            return exc
        return OSError(errno.ECONNRESET, f"SMB connection problem: {exc}", shown)

    def _unc(self, path: str = "") -> str:
        parts = [self.target.server, self.target.share, *self.target.base]
        if path:
            parts.extend(safe_relpath(path).split("/"))
        return "\\\\" + "\\".join(parts)

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
        except OSError as exc:
            raise LocationError(f"{self.uri}: cannot reach the share: {exc.strerror or exc}") from None
        except ConnectionError as exc:
            raise LocationError(f"{self.uri}: cannot connect to {self.target.server}:{self.port}: {exc}") from None
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
            except OSError as exc:
                raise LocationError(f"{self.uri}: not writable by {self.config.username!r}: {exc.strerror or exc}") from None
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
        from smbclient._io import SMBDirectoryIO

        info_class = _raw_times_dir_info()
        cols: dict[str, list] = {f.name: [] for f in LISTING_SCHEMA if f.name not in ("etag", "meta_known")}

        def add(path, kind, size=None, mtime=None, atime=None, link=None, error=None):
            for name, value in (("path", path), ("type", kind), ("size", size), ("mtime_ns", mtime),
                                ("atime_ns", atime), ("mode", None), ("uid", None), ("gid", None),
                                ("link_target", link), ("error", error)):
                cols[name].append(value)

        def flush():
            batch = listing_batch(cols)
            for v in cols.values():
                v.clear()
            return batch

        def list_dir(rel_dir: str) -> list[tuple]:
            out = []
            with SMBDirectoryIO(self._unc(rel_dir), share_access="rwd", **self._kw()) as fd:
                for info in _query_directory(fd.fd, info_class):
                    raw_name = info["file_name"].get_value()
                    out.append((raw_name, info["file_attributes"].get_value(), info["end_of_file"].get_value(),
                                info["last_write_time"].get_value(), info["last_access_time"].get_value(),
                                info["ea_size"].get_value()))
            return out

        stack = [""]
        while stack:
            rel_dir = stack.pop()
            try:
                entries = self._call(lambda d=rel_dir: list_dir(d), rel_dir)
            except OSError as exc:
                if rel_dir:
                    add(rel_dir, DIR, error=f"cannot list directory: {exc.strerror}")
                    continue
                raise LocationError(f"{self.uri}: cannot list the root: {exc.strerror or exc}") from None
            subdirs = []
            for raw_name, attrs, size, mtime, atime, ea_size in sorted(entries, key=lambda e: e[0].decode("utf-16-le", "surrogatepass")):
                name = raw_name.decode("utf-16-le", "surrogatepass")
                if name in (".", "..") or name.startswith(TEMP_PREFIX):
                    continue
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    shown = name.encode("utf-8", "replace").decode("utf-8")
                    add(f"{rel_dir}/{shown}" if rel_dir else shown, OTHER, error="name is not valid UTF-16; not copied")
                    continue
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if attrs & ATTR_REPARSE_POINT and ea_size == IO_REPARSE_TAG_SYMLINK:
                    try:
                        link = self._readlink(rel)
                        add(rel, SYMLINK, 0, _ns(mtime), _ns(atime), link=link)
                    except OSError as exc:
                        add(rel, SYMLINK, 0, _ns(mtime), _ns(atime), error=f"cannot read link: {exc.strerror}")
                elif attrs & ATTR_DIRECTORY:
                    add(rel, DIR, 0, _ns(mtime), _ns(atime))
                    subdirs.append(rel)
                else:
                    add(rel, FILE, size, _ns(mtime), _ns(atime))
                if len(cols["path"]) >= batch_size:
                    yield flush()
            stack.extend(reversed(subdirs))
        if cols["path"]:
            yield flush()

    def _readlink(self, path: str) -> str:
        import smbclient

        target = self._call(lambda: smbclient.readlink(self._unc(path), **self._kw()), path)
        return target.replace("\\", "/")

    def _stat_unc(self, unc: str, path: str):
        import smbclient

        def go():
            try:
                found = _quick_lstat(unc, self._kw())
                if found is None:  # a reparse point: the full query reports its tag
                    found = smbclient.lstat(unc, **self._kw())
                return found
            except OSError as exc:
                if getattr(exc, "errno", None) == errno.ENOENT:
                    return None
                raise

        return self._call(go, path)

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
                          creation_ns=s.st_ctime_ns, attributes=s.st_file_attributes & COPIED_ATTRIBUTES)

    def open_read(self, path: str) -> IO[bytes]:
        return io.BufferedReader(_ReconnectingReader(self, path), buffer_size=1 << 20)

    # -- security descriptors -----------------------------------------------------------------------
    def get_security_descriptor(self, path: str, flags: str) -> bytes | None:
        info = SECURITY_FLAGS.get(flags)
        if info is None:
            return None
        access = _READ_CONTROL | (_ACCESS_SYSTEM_SECURITY if info & SACL_SECURITY_INFORMATION else 0)
        return self._call(lambda: _query_security(self._unc(path), info, access, self._kw()), path)

    def set_security_descriptor(self, path: str, descriptor: bytes | None, flags: str) -> None:
        info = SECURITY_FLAGS.get(flags)
        if info is None or not descriptor:
            return
        access = _WRITE_DAC | _WRITE_OWNER | (_ACCESS_SYSTEM_SECURITY if info & SACL_SECURITY_INFORMATION else 0)
        self._call(lambda: _set_security(self._unc(path), info, access, descriptor, self._kw()), path)

    # -- writing ----------------------------------------------------------------------------------
    def _check_dest_path(self, path: str) -> None:
        safe_relpath(path)
        check_windows_path(self.uri, path)

    def _ensure_dir(self, rel_dir: str) -> None:
        import smbclient

        if rel_dir in self._known_dirs:
            return
        self._ensure_dir(os.path.dirname(rel_dir))

        def make():
            try:
                smbclient.mkdir(self._unc(rel_dir), **self._kw())
            except OSError as exc:
                if getattr(exc, "errno", None) != errno.EEXIST:
                    raise

        self._call(make, rel_dir)
        s = self.stat(rel_dir)
        if s is None or s.type != DIR:
            raise LocationError(f"{self.uri}: {rel_dir!r} exists at the destination and is not a directory.")
        with self._lock:
            self._known_dirs.add(rel_dir)

    def _temp_for(self, path: str, tag: str) -> str:
        head, name = os.path.split(path)
        tmp = f"{TEMP_PREFIX}{tag}-{zlib.crc32(name.encode()):08x}"
        return f"{head}/{tmp}" if head else tmp

    def _create_temp(self, tmp: str, extra_access: int = 0):
        """Create (or truncate) ``tmp`` exclusively and return the open handle (an ``SMBFileIO``)."""
        from smbclient._io import SMBFileIO
        from smbprotocol.file_info import FileAttributes
        from smbprotocol.open import FilePipePrinterAccessMask as Access

        access = Access.FILE_WRITE_DATA | Access.FILE_WRITE_ATTRIBUTES | Access.FILE_WRITE_EA | extra_access
        return self._call(lambda: _opened(SMBFileIO(self._unc(tmp), mode="wb", share_access="", desired_access=access,
                                                    file_attributes=FileAttributes.FILE_ATTRIBUTE_NORMAL,
                                                    **self._kw())), tmp)

    def _write_chunks(self, raw, tmp: str, chunks: Iterator[bytes]) -> int:
        """Stream ``chunks`` into the open ``raw`` handle, looping on short writes (capped at the max write size)."""
        written = 0
        for chunk in chunks:
            view = memoryview(chunk)
            waits = 0
            while view:
                try:
                    n = raw.write(view)  # at most the negotiated max write size (and the credits at hand)
                except Exception as exc:  # noqa: BLE001 - translated; a dropped connection is retryable
                    if _out_of_credits(exc) and waits < _CREDIT_WAITS:
                        n = 0
                    else:
                        raise self._translate(exc, tmp) from None
                if n <= 0:  # no credits left for this request right now: wait for others to return theirs
                    if waits >= _CREDIT_WAITS:
                        raise OSError(errno.EIO, "the server accepted no bytes", self._unc(tmp))
                    _pause(waits)
                    waits += 1
                    continue
                view = view[n:]
                written += n
                waits = 0
        return written

    def _write_temp(self, tmp: str, chunks: Iterator[bytes]) -> int:
        """Create ``tmp``, stream ``chunks`` into it and close it."""
        raw = self._create_temp(tmp)
        try:
            return self._write_chunks(raw, tmp, chunks)
        finally:
            _close_quietly(raw)

    def _on_handle(self, raw, fn: Callable[[], Any], path: str) -> Any:
        """Run one request on the open temp handle, waiting for credits; errors come back translated, and a
        dropped connection as :class:`_HandleLost` (the caller goes on by path)."""
        waits = 0
        while True:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - sorted below
                if _out_of_credits(exc) and waits < _CREDIT_WAITS:
                    _pause(waits)
                    waits += 1
                    continue
                if _is_disconnect(exc):
                    raise _HandleLost() from None
                from smbprotocol.exceptions import SMBException

                if isinstance(exc, (OSError, SMBException)):
                    raise self._translate(exc, path) from None
                raise

    def write(self, path: str, chunks: Iterator[bytes], meta: Metadata, *, tag: str,
              before_commit: Callable[[int], None] | None = None, overwrite: bool = True) -> int:
        """One handle per file: create the temp → write(s) → SET_INFO security + basic info → ``before_commit`` →
        SET_INFO rename (ReplaceIfExists per ``overwrite``) → close: no request on the final path unless the
        rename fails (a directory or a read-only file in the way is then looked at)."""
        self._check_dest_path(path)
        self._ensure_dir(os.path.dirname(path))
        tmp = self._temp_for(path, tag)
        sd = getattr(meta, "security_descriptor", None)
        sd_info = SECURITY_FLAGS.get(getattr(meta, "security_flags", None) or "OWNER_DACL") if sd else None
        extra = _DELETE
        if sd_info:
            extra |= _WRITE_DAC | _WRITE_OWNER | (_ACCESS_SYSTEM_SECURITY if sd_info & SACL_SECURITY_INFORMATION else 0)
        raw = self._create_temp(tmp, extra)
        handle = True  # False once the connection under the handle dropped: the rest goes by path
        committed = False
        try:
            written = self._write_chunks(raw, tmp, chunks)
            try:
                self._on_handle(raw, lambda: _set_info_on(raw, *self._meta_infos(meta, sd, sd_info, is_dir=False)), tmp)
            except _HandleLost:
                handle = False
                self._apply(tmp, meta, is_dir=False)
            if before_commit is not None:
                before_commit(written)
            if handle:
                try:
                    self._rename_handle(raw, tmp, path, overwrite)
                except _HandleLost:
                    handle = False
            if not handle:
                self._replace(tmp, path, overwrite=overwrite)
            committed = True
        except BaseException:
            if handle and _delete_on_close(raw):
                handle = False
            else:
                _close_quietly(raw)
                try:
                    self._remove(tmp, is_dir=False)
                except Exception:  # noqa: BLE001 - best effort; scans never list temporary names
                    pass
            raise
        finally:
            if committed:
                _close_quietly(raw)
        return written

    def _meta_infos(self, meta: Metadata, sd: bytes | None, sd_info: int | None, *, is_dir: bool) -> list:
        """The SET_INFO requests that apply ``meta``: the security descriptor first (writing an owner or ACL may
        update the change time, never the write time), then the times and attributes."""
        from smbprotocol.file_info import FileBasicInformation

        out = []
        if sd and sd_info:
            out.append((_SECURITY, sd_info, sd))
        creation, atime_ft, mtime, attrs = _basic_info(meta, is_dir=is_dir)
        if creation or atime_ft or mtime or attrs:
            basic = FileBasicInformation()
            basic["creation_time"] = creation
            basic["last_access_time"] = atime_ft
            basic["last_write_time"] = mtime
            basic["change_time"] = 0
            basic["file_attributes"] = attrs
            out.append(basic)
        return out

    def _rename_handle(self, raw, tmp: str, path: str, overwrite: bool) -> None:
        """SET_INFO FileRenameInformation on the open temp handle. On failure the final path is looked at once:
        a directory there is a clear :class:`LocationError`; a read-only file (which Windows refuses to
        replace) loses its read-only attribute and the rename is tried again."""
        from smbclient._io import SMBRawIO
        from smbprotocol.file_info import FileRenameInformation

        target = SMBRawIO(self._unc(path), **self._kw()).fd  # resolves the tree (no request)
        dst_name = target.file_name
        tree = target.tree_connect
        if tree.is_dfs_share and dst_name.startswith(tree.share_name[2:]):
            dst_name = dst_name[len(tree.share_name) - 1:]
        info = FileRenameInformation()
        info["replace_if_exists"] = overwrite
        info["file_name"] = dst_name
        for attempt in range(2):
            try:
                self._on_handle(raw, lambda: _set_info_on(raw, info), path)
                return
            except OSError:
                existing = self.stat(path)
                if existing is not None and existing.type == DIR:
                    raise LocationError(f"{self.uri}: {path!r} is a directory at the destination and a file at the "
                                        "source.") from None
                if (attempt == 0 and overwrite and existing is not None
                        and (existing.attributes or 0) & ATTR_READONLY):
                    self._set_basic(path, attributes=ATTR_NORMAL)  # a read-only file cannot be replaced
                    continue
                raise

    def _replace(self, src: str, dst: str, *, overwrite: bool = True) -> None:
        """Rename ``src`` over ``dst`` (one SET_INFO FileRenameInformation); ``overwrite=False`` never replaces:
        an entry that appeared meanwhile raises :class:`FileExistsError`."""
        import smbclient

        move = smbclient.replace if overwrite else smbclient.rename
        self._call(lambda: move(self._unc(src), self._unc(dst), **self._kw()), dst)

    def _set_basic(self, path: str, *, creation: int = 0, atime: int = 0, mtime: int = 0, attributes: int = 0) -> None:
        from smbclient._os import _set_basic_information

        if not (creation or atime or mtime or attributes):
            return
        self._call(lambda: _set_basic_information(self._unc(path), creation_time=creation, last_access_time=atime,
                                                  last_write_time=mtime, file_attributes=attributes,
                                                  follow_symlinks=False, **self._kw()), path)

    def _apply(self, path: str, meta: Metadata, *, is_dir: bool) -> None:
        sd = getattr(meta, "security_descriptor", None)
        if sd:
            # Before the times: writing an owner or ACL may update the change time, never the write time.
            self.set_security_descriptor(path, sd, getattr(meta, "security_flags", None) or "OWNER_DACL")
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
        except OSError as exc:
            try:
                self._remove(tmp, is_dir=False)
            except OSError:
                pass
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.EACCES):
                self._symlinks_refused = (
                    f"{self.uri}: the SMB server does not support symbolic links (reparse points) here "
                    f"({exc.strerror}); symlink {path!r} → {target!r} not copied. Samba refuses them; Windows needs "
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

        def go():
            try:
                (smbclient.rmdir if is_dir else smbclient.remove)(self._unc(path), **self._kw())
            except OSError as exc:
                if getattr(exc, "errno", None) != errno.ENOENT:
                    raise

        self._call(go, path)

    def delete(self, path: str, *, is_dir: bool) -> None:
        safe_relpath(path)
        try:
            self._remove(path, is_dir=is_dir)
        except OSError as exc:
            if exc.errno == errno.ENOTEMPTY:
                raise DirectoryNotEmptyError(f"{self.uri}: directory {path!r} still holds entries (excluded by filters, "
                                             "or new); kept") from None
            raise
        with self._lock:
            self._known_dirs.discard(path)

    def close(self) -> None:
        """Sessions stay pooled for the next location in this process; nothing per-location to release."""


class _HandleLost(Exception):
    """The connection under an open handle dropped; the handle is gone with it."""


_DELETE = 0x00010000
_SECURITY = "security"


def _close_quietly(raw) -> None:
    try:
        raw.close()
    except Exception:  # noqa: BLE001 - the connection may be gone; the caller removes the temp file
        pass


def _set_info_on(raw, *infos) -> None:
    """SET_INFO requests on an open handle, compounded into one round trip; the first failure is raised
    (the server runs them in order)."""
    from smbclient._io import SMBFileTransaction, set_info
    from smbprotocol.file_info import InfoType
    from smbprotocol.open import SMB2SetInfoRequest, SMB2SetInfoResponse

    if not infos:
        return
    transaction = SMBFileTransaction(raw)
    for info in infos:
        if isinstance(info, tuple) and info and info[0] is _SECURITY:
            req = SMB2SetInfoRequest()
            req["info_type"] = InfoType.SMB2_0_INFO_SECURITY
            req["additional_information"] = info[1]
            req["file_id"] = raw.fd.file_id
            req["buffer"] = info[2]

            def receive(request):
                resp = SMB2SetInfoResponse()
                resp.unpack(raw.fd.connection.receive(request)["data"].get_value())
                return resp

            transaction += (req, receive)
        else:
            set_info(transaction, info)
    transaction.commit()


def _delete_on_close(raw) -> bool:
    """Mark the open handle delete-on-close and close it (the temp file goes with it); False if that failed."""
    from smbprotocol.file_info import FileDispositionInformation

    try:
        info = FileDispositionInformation()
        info["delete_pending"] = True
        _set_info_on(raw, info)
    except Exception:  # noqa: BLE001 - the caller falls back to closing and removing by path
        return False
    try:
        raw.close()
    except Exception:  # noqa: BLE001 - delete is pending; a dropped connection closes the handle anyway
        pass
    return True


def _quick_lstat(unc: str, kw: dict):
    """``lstat`` in one compound of two requests (create + close): the create response already carries the times,
    size and attributes (smbclient's lstat adds five queries). ``None`` for a reparse point (the caller asks
    for its tag)."""
    import struct
    from types import SimpleNamespace

    from smbclient._io import SMBFileTransaction, SMBRawIO
    from smbprotocol.open import CreateOptions
    from smbprotocol.open import FilePipePrinterAccessMask as Access

    raw = SMBRawIO(unc, mode="r", share_access="rwd", desired_access=Access.FILE_READ_ATTRIBUTES,
                   create_options=CreateOptions.FILE_OPEN_REPARSE_POINT, **kw)
    transaction = SMBFileTransaction(raw)
    raw.open(transaction=transaction)
    create_msg, create_recv = transaction._actions[0]
    fields = {}

    def receive(request):
        out = create_recv(request)
        body = request.response["data"].get_value()
        fields["v"] = struct.unpack_from("<qqqqqqI", body, 8)
        return out

    transaction._actions[0] = (create_msg, receive)
    raw.close(transaction=transaction)
    transaction.commit()
    if "v" not in fields:  # a DFS referral re-sent the create with smbclient's own receiver
        return None
    creation, atime, mtime, _change, _alloc, size, attrs = fields["v"]
    if attrs & ATTR_REPARSE_POINT:
        return None
    if attrs & ATTR_DIRECTORY:
        mode = st.S_IFDIR | 0o111
    else:
        mode = st.S_IFREG
    mode |= 0o444 if attrs & ATTR_READONLY else 0o666
    return SimpleNamespace(st_mode=mode, st_size=size, st_mtime_ns=(mtime - EPOCH_FILETIME) * 100,
                           st_atime_ns=(atime - EPOCH_FILETIME) * 100, st_ctime_ns=(creation - EPOCH_FILETIME) * 100,
                           st_file_attributes=attrs)


def _opened(raw):
    raw.open()
    return raw


class _ReconnectingReader(io.RawIOBase):
    """Streams a file in chunks; if the connection drops, re-opens the file and goes on at the same offset."""

    def __init__(self, location: SmbLocation, path: str) -> None:
        super().__init__()
        self._loc, self._path, self._offset = location, path, 0
        self._raw = self._open()

    def _open(self):
        from smbclient._io import SMBFileIO

        raw = self._loc._call(lambda: _opened(SMBFileIO(self._loc._unc(self._path), mode="rb", share_access="rw",
                                                        **self._loc._kw())), self._path)
        if self._offset:
            raw.seek(self._offset)
        return raw

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        drops = waits = 0
        while True:
            try:
                n = self._raw.readinto(b)  # at most the max read size and the credits at hand
            except Exception as exc:  # noqa: BLE001 - sorted below
                if _out_of_credits(exc) and waits < _CREDIT_WAITS:
                    n = 0
                elif _is_disconnect(exc) and drops < 2:
                    drops += 1
                    self._loc._session(fresh=True)
                    self._raw = self._open()
                    continue
                else:
                    raise self._loc._translate(exc, self._path) from None
            if n == 0 and len(b) and self._offset < self._raw.fd.end_of_file and waits < _CREDIT_WAITS:
                _pause(waits)  # zero credits gave a zero-length read before the end: not EOF, wait
                waits += 1
                continue
            self._offset += n
            return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            except Exception:  # noqa: BLE001 - closing a handle on a dropped connection
                pass
        super().close()


def _query_security(unc: str, info: int, access: int, kw: dict) -> bytes:
    from smbclient._io import SMBFileTransaction, SMBRawIO
    from smbprotocol.file_info import InfoType
    from smbprotocol.open import CreateOptions, SMB2QueryInfoRequest, SMB2QueryInfoResponse

    raw = SMBRawIO(unc, mode="r", share_access="rwd", desired_access=access,
                   create_options=CreateOptions.FILE_OPEN_REPARSE_POINT, **kw)
    with SMBFileTransaction(raw) as transaction:
        req = SMB2QueryInfoRequest()
        req["info_type"] = InfoType.SMB2_0_INFO_SECURITY
        req["output_buffer_length"] = 65536
        req["additional_information"] = info
        req["file_id"] = raw.fd.file_id

        def receive(request):
            resp = SMB2QueryInfoResponse()
            resp.unpack(raw.fd.connection.receive(request)["data"].get_value())
            return resp["buffer"].get_value()

        transaction += (req, receive)
    return transaction.results[0]


def _set_security(unc: str, info: int, access: int, descriptor: bytes, kw: dict) -> None:
    from smbclient._io import SMBFileTransaction, SMBRawIO
    from smbprotocol.file_info import InfoType
    from smbprotocol.open import CreateOptions, SMB2SetInfoRequest, SMB2SetInfoResponse

    raw = SMBRawIO(unc, mode="r", share_access="rwd", desired_access=access,
                   create_options=CreateOptions.FILE_OPEN_REPARSE_POINT, **kw)
    with SMBFileTransaction(raw) as transaction:
        req = SMB2SetInfoRequest()
        req["info_type"] = InfoType.SMB2_0_INFO_SECURITY
        req["additional_information"] = info
        req["file_id"] = raw.fd.file_id
        req["buffer"] = descriptor

        def receive(request):
            resp = SMB2SetInfoResponse()
            resp.unpack(raw.fd.connection.receive(request)["data"].get_value())
            return resp

        transaction += (req, receive)
