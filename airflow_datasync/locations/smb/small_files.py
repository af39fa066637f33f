"""Writing a small file in one round trip, and a new directory in one (:mod:`.compound` builds the requests).

A small file is read whole first, so the source check (``before_commit``) runs before anything is sent;
then one related compound creates the temporary, writes it, sets its metadata, renames it over the final
name and closes it. Where the server stopped decides the rest, as the streaming path would:

- the create failed: nothing exists, the error is raised;
- the rename failed: the temporary is complete; the final path is looked at on a handle of it (a directory
  in the way, a read-only file to replace, an entry that appeared with overwrite=False) as in
  :meth:`SmbLocation._rename_handle`, and it is deleted on close if that fails;
- the write or a SET_INFO failed: MS-SMB2 servers fail the related requests after it (Windows does), so
  the temporary is deleted; a server that still ran the rename (Samba fails only what follows a failed
  create) put the file at its final name: a short write is removed from there, missing times are set
  again by path.

A security descriptor goes in a first compound (create + write + SET_INFOs) and the rename in a second
(rename + close): a refused descriptor (a foreign owner, no SeSecurityPrivilege) must never reach the
final name with the folder's inherited ACL, whatever the server does after a failure.

A dropped connection leaves the state unknown: the temporary is removed by path on the new connection and
the compound sent again (the final name gets a complete file or nothing; a leftover temporary is
also found by the leftovers cleaner).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from airflow_datasync.errors import NotFoundError
from airflow_datasync.locations.base import LocationError, Written
from airflow_datasync.locations.smb.compound import (
    STATUS_SUCCESS,
    CompoundWrite,
    CreditWindowTooSmall,
    ensure_directory,
    small_file_limit,
    write_small,
)
from airflow_datasync.locations.smb.protocol import close_quietly, delete_on_close, open_temp_again

if TYPE_CHECKING:
    from airflow_datasync.locations.smb.location import SmbLocation


def peek_small(chunks: Iterator[bytes], limit: int) -> tuple[bytes | None, Iterator[bytes]]:
    """The whole data when it ends within ``limit`` bytes (and the iterator, spent); else None and an
    iterator giving every chunk, the ones already read first."""
    head: list[bytes] = []
    size = 0
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size > limit:
            return None, itertools.chain(head, chunks)
    return b"".join(head), iter(())


def limit_for(loc: SmbLocation) -> int:
    """The small-file limit of the location's connection (the negotiated max write size caps it)."""
    return small_file_limit(loc._mapped(loc._session, "", setting_up=True).connection)


def temp_handle(unc: str, access: int, kw: dict):
    """The SMBRawIO of a temporary written by a compound (no request): what a follow-up sends on."""
    from smbclient._io import SMBRawIO

    return SMBRawIO(unc, mode="wb", share_access="", desired_access=access, **kw)


def _raise_status(loc: SmbLocation, status: int, unc: str, path: str) -> None:
    from smbprotocol.exceptions import SMBOSError

    def fail() -> None:
        raise SMBOSError(status, unc)

    loc._mapped(fail, path)


def write_small_file(loc: SmbLocation, tmp: str, path: str, data: bytes, access: int,
                     times: tuple[int, int, int, int] | None, security: tuple[int, bytes] | None, overwrite: bool,
                     before_commit: Callable[[int], None] | None, meta_again: Callable[[], None]) -> Written | None:
    """Write ``data`` to ``path`` through the temporary ``tmp`` in one compound (two with ``security``); None
    when the path is behind a DFS link (the streaming path follows referrals) or the server grants fewer
    credits than a compound needs: the caller streams it then."""
    if before_commit is not None:
        before_commit(len(data))
    tmp_unc, final_name = loc._unc(tmp), path.rsplit("/", 1)[-1]
    attempts = itertools.count()

    def send() -> CompoundWrite:
        if next(attempts):  # the connection dropped under an earlier try: what it did is unknown
            try:
                loc._remove(tmp, is_dir=False)
            except NotFoundError:
                pass
        return write_small(*loc._tree(tmp), lambda: temp_handle(tmp_unc, access, loc._kw()), data, access, times,
                           security, final_name, overwrite)

    try:
        out = loc._call(send, tmp)
    except CreditWindowTooSmall:
        return None
    failed = out.failed()
    if failed is None:
        return Written(size=len(data))
    role, status = failed
    if role == "create":
        if status == _PATH_NOT_COVERED:
            return None
        _raise_status(loc, status, tmp_unc, tmp)
    if role == "close":  # renamed: the server closes the handle with the session at worst
        close_quietly(out.raw)
        return Written(size=len(data))
    if role == "rename":
        return _after_refused_rename(loc, out, tmp, path, overwrite, status, len(data))
    if out.statuses.get("rename") == STATUS_SUCCESS:  # a server that renamed after a failed request
        if role == "write":
            loc._remove(path, is_dir=False)  # never a short file at a final name
            _raise_status(loc, status, loc._unc(path), path)
        meta_again()  # the data is whole; the times go on by path
        return Written(size=len(data))
    _discard(loc, out, tmp)
    _raise_status(loc, status, tmp_unc, tmp)
    raise AssertionError("unreachable")


def _after_refused_rename(loc: SmbLocation, out: CompoundWrite, tmp: str, path: str, overwrite: bool,
                          status: int, size: int) -> Written:
    raw = out.raw
    if not out.handle_open:  # the server closed it after the refused rename (Samba): a handle again
        try:
            raw = loc._call(lambda: open_temp_again(loc._unc(tmp), loc._kw()), tmp)
        except LocationError:
            _discard(loc, out, tmp)
            raise
    try:
        refused = _as_error(loc, status, loc._unc(path), path)
        loc._rename_handle(raw, tmp, path, overwrite, refused=refused)
    except BaseException:
        _discard(loc, CompoundWrite.of_handle(raw), tmp)
        raise
    close_quietly(raw)
    return Written(size=size)


def _as_error(loc: SmbLocation, status: int, unc: str, path: str) -> LocationError:
    try:
        _raise_status(loc, status, unc, path)
    except LocationError as exc:
        return exc
    raise AssertionError("unreachable")


def _discard(loc: SmbLocation, out: CompoundWrite, tmp: str) -> None:
    """No temporary left: delete on close through the open handle, else by path."""
    if out.handle_open and delete_on_close(out.raw):
        return
    close_quietly(out.raw)
    try:
        loc._remove(tmp, is_dir=False)
    except Exception:  # best effort; scans never list temporary names, the leftovers cleaner finds it
        pass


def make_directory(loc: SmbLocation, rel_dir: str) -> None:
    """Create ``rel_dir`` (its parent exists) or find it there: one create + close."""
    status, is_dir = loc._call(lambda: ensure_directory(loc._unc(rel_dir), loc._kw()), rel_dir)
    if status == STATUS_SUCCESS and is_dir:
        return
    if status not in (STATUS_SUCCESS, _NOT_A_DIRECTORY, _COLLISION):
        _raise_status(loc, status, loc._unc(rel_dir), rel_dir)
    raise LocationError(f"{loc.uri}: {rel_dir!r} exists at the destination and is not a directory.")


_PATH_NOT_COVERED = 0xC0000257  # a DFS link: the server refers the client elsewhere
_NOT_A_DIRECTORY = 0xC0000103  # STATUS_NOT_A_DIRECTORY: a file where the directory goes
_COLLISION = 0xC0000035  # STATUS_OBJECT_NAME_COLLISION
