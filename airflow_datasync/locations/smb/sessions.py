"""SMB sessions pooled per worker process, per connection settings and per lane.

smbclient's connection cache, one per settings tuple and pid, so that a forked worker never shares a
socket with its parent; a dropped connection is re-opened on the next use. :class:`ThreadLanes` keeps
what a location's thread looked up (its keyword arguments, its session, its trees) and checks that it is
still the pool's, so a copy does not look them up again per request.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import ntpath
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from airflow_datasync.locations.smb.error_table import is_connection_busy
from airflow_datasync.locations.smb.protocol import connection_alive
from airflow_datasync.retry import retrying

T = TypeVar("T")

# smbprotocol logs every open/close at INFO: thousands of lines per shard in a task log. Quiet it unless
# the user configured its level.
if logging.getLogger("smbprotocol").level == logging.NOTSET:
    logging.getLogger("smbprotocol").setLevel(logging.WARNING)
    logging.getLogger("smbclient").setLevel(logging.WARNING)

_POOL_LOCK = threading.RLock()
_POOLS: dict[tuple, dict] = {}
#: Connections per server and worker process. A server handles one connection's requests mostly one at a
#: time (Samba forks one smbd per connection), so copy threads are spread over several connections
#: ("lanes"): over one connection, 16 copy threads are no faster than one.
MAX_LANES = 8
_LANE = threading.local()
_LANES = itertools.count()


def _lane() -> int:
    lane = getattr(_LANE, "id", None)
    if lane is None:
        lane = _LANE.id = next(_LANES) % MAX_LANES
    return lane


@functools.lru_cache(maxsize=64)
def _secret(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def _pool_key(server: str, port: int, config) -> tuple:
    # A digest of the password, so a changed or wrong password never reuses a session opened with another.
    secret = _secret(config.password or "")
    return (os.getpid(), _lane(), server.lower(), port, config.username, secret, config.encrypt,
            config.require_signing, config.auth_protocol, config.dialect)


#: One lock per pool key, held while that lane's connection and session are opened: lanes open theirs at
#: the same time (a negotiate waits for the server to fork an smbd), two threads of one lane never both.
_OPEN_LOCKS: dict[tuple, threading.Lock] = {}


def pool(server: str, port: int, config) -> dict:
    """The connection cache of this thread's lane for ``server:port`` with ``config``."""
    with _POOL_LOCK:
        return _POOLS.setdefault(_pool_key(server, port, config), {})


def _open_lock(server: str, port: int, config) -> threading.Lock:
    with _POOL_LOCK:
        return _OPEN_LOCKS.setdefault(_pool_key(server, port, config), threading.Lock())


def open_session(server: str, port: int, config):
    """The pooled session for ``server:port`` with ``config`` (opened, or re-opened if its connection dropped)."""
    import smbclient

    from airflow_datasync.locations.smb.receive import LeanConnection

    cache = pool(server, port, config)
    key = f"{server.lower()}:{port}"
    with _open_lock(server, port, config):
        conn = cache.get(key)
        if conn is None or not connection_alive(conn):
            with _POOL_LOCK:
                cache.pop(key, None)
            if conn is not None:
                _quiet_disconnect(conn)
            # A client GUID of its own per connection: Samba hands every connection announcing a GUID it
            # already serves to that one smbd process (for multichannel), so eight lanes sharing smbclient's
            # GUID were served by one process on one core.
            # Our own receiver thread (.receive): responses handed over without smbprotocol's per-message structures.
            conn = LeanConnection(uuid.uuid4(), server, port, require_signing=config.require_signing)
            try:
                conn.connect(dialect=config.dialect, timeout=30)
            except ValueError as exc:  # smbprotocol wraps socket errors in ValueError("Failed to connect …")
                raise ConnectionError(str(exc)) from None
            with _POOL_LOCK:
                cache[key] = conn
        return smbclient.register_session(
            server, username=config.username, password=config.password, port=port,
            encrypt=True if config.encrypt else None, connection_cache=cache,
            auth_protocol=config.auth_protocol, require_signing=config.require_signing)


def _quiet_disconnect(conn: Any) -> None:
    try:
        conn.disconnect(close=True, timeout=5)
    except Exception:  # the connection is already broken, or a tree the server deleted refused its logoff
        try:
            conn.disconnect(close=False)  # smbprotocol closes the socket only once every logoff passed
        except Exception:
            pass


def reset_pools() -> None:
    """Close every pooled SMB connection of this process (tests use it to simulate a dropped connection)."""
    with _POOL_LOCK:
        for cache in _POOLS.values():
            for conn in list(cache.values()):
                _quiet_disconnect(conn)
            cache.clear()


def drop_session(server: str, port: int, config) -> None:
    """Forget this lane's connection to ``server:port`` (it dropped): the next :func:`open_session` opens anew."""
    cache = pool(server, port, config)
    with _POOL_LOCK:
        conn = cache.pop(f"{server.lower()}:{port}", None)
    if conn is not None:
        _quiet_disconnect(conn)


class _LaneState:
    __slots__ = ("pid", "lane", "kw", "cache", "connection", "session", "trees")

    def __init__(self, pid: int, lane: int, kw: dict, cache: dict) -> None:
        self.pid, self.lane, self.kw, self.cache = pid, lane, kw, cache
        self.connection = self.session = None
        self.trees: dict[str, Any] = {}  # share UNC -> TreeConnect, for shares whose names map verbatim


class ThreadLanes:
    """One location's view of the pool from each of its threads: the keyword arguments smbclient takes
    (``kw()``), the lane's session (``session()``) and the tree connect of a path (``tree(unc)``), each
    looked up once per thread and reused while the pool still holds that connection, alive, with that
    session and tree. A dropped connection (:func:`drop_session`, :func:`reset_pools`, a failed receiver)
    is seen at the next call, which looks everything up again."""

    def __init__(self, server: str, port: int, config, share: str, base: tuple[str, ...]) -> None:
        self._server, self._port, self._config = server, port, config
        self._share_unc = f"\\\\{server}\\{share}"
        self._base = base
        self._local = threading.local()

    def _state(self) -> _LaneState:
        state = getattr(self._local, "state", None)
        if state is None or state.pid != os.getpid() or state.lane != _lane():  # a fork, or use_lane
            c = self._config
            cache = pool(self._server, self._port, c)
            kw = {"username": c.username, "password": c.password, "port": self._port,
                  "encrypt": True if c.encrypt else None, "connection_cache": cache,
                  "auth_protocol": c.auth_protocol, "require_signing": c.require_signing}
            state = self._local.state = _LaneState(os.getpid(), _lane(), kw, cache)
        return state

    def kw(self) -> dict[str, Any]:
        """smbclient's keyword arguments for this thread's lane (the same dict each call: not to be changed)."""
        return self._state().kw

    def session(self):
        """This lane's session, opened (or re-opened) by :func:`open_session` when the pool's changed."""
        state = self._state()
        connection = state.connection
        if (connection is None or state.cache.get(f"{self._server.lower()}:{self._port}") is not connection
                or not connection_alive(connection) or state.session.session_id not in connection.session_table):
            state.session = open_session(self._server, self._port, self._config)
            state.connection = state.session.connection
            state.trees.clear()
        return state.session

    def tree(self, unc: str, rel: tuple[str, ...]) -> tuple[Any, str]:
        """The tree connect and share-relative name of ``unc`` (this location's root joined with the
        components ``rel``), as smbclient's ``get_smb_tree`` gives them; its answer is kept for the share
        when no DFS is involved (the tree is no DFS share and the name maps as the path reads)."""
        from smbclient._pool import get_smb_tree
        from smbprotocol.exceptions import SMBOSError, SMBResponseException

        state = self._state()
        session = self.session()
        tree = state.trees.get(self._share_unc)
        if tree is not None and tree.tree_connect_id in session.tree_connect_table:
            return tree, "\\".join((*self._base, *rel))
        try:
            tree, name = get_smb_tree(unc, **state.kw)
        except SMBResponseException as exc:  # as smbclient's own opens raise it
            raise SMBOSError(exc.status, unc) from exc
        if (not tree.is_dfs_share and tree.session is session and tree.share_name == self._share_unc
                and name == "\\".join((*self._base, *rel)) and ntpath.normpath(unc) == unc):
            state.trees[self._share_unc] = tree
        return tree, name


#: How many times an operation waits for credits before giving up (about 20 s in all).
CREDIT_WAITS = 300


def wait_for_credits(call: Callable[[], T]) -> T:
    """``call()``, tried again while it fails with :class:`ConnectionBusyError`: other requests on the
    connection return their credits within milliseconds, so the waits are short (at most 0.1 s each)."""
    return retrying(call, attempts=CREDIT_WAITS, first_pause=0.001, max_pause=0.1, retryable=is_connection_busy)


def current_lane() -> int:
    """This thread's lane (assigned on first use)."""
    return _lane()


def use_lane(lane: int) -> None:
    """Put this thread on ``lane``: work handed to it from another thread (a listing started there) goes on
    that thread's session instead of opening one of its own."""
    _LANE.id = lane
