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

Modules, one concern each: :mod:`.uri` (what a URI names), :mod:`.names` (Windows name rules),
:mod:`.sessions` (pools, lanes), :mod:`.status` (what a failure means), :mod:`.protocol` (the only code
below smbclient's public API), :mod:`.reader` (a read that survives a reconnect) and :mod:`.location`
(the :class:`SmbLocation` class).
"""

from __future__ import annotations

from airflow_datasync.locations.smb.location import SmbLocation
from airflow_datasync.locations.smb.names import check_windows_path, windows_name_problem
from airflow_datasync.locations.smb.protocol import ATTR_READONLY, COPIED_ATTRIBUTES, EPOCH_FILETIME, SECURITY_FLAGS
from airflow_datasync.locations.smb.sessions import open_session, reset_pools
from airflow_datasync.locations.smb.uri import DEFAULT_PORT, SmbTarget, parse_smb_uri

__all__ = ["ATTR_READONLY", "COPIED_ATTRIBUTES", "DEFAULT_PORT", "EPOCH_FILETIME", "SECURITY_FLAGS", "SmbLocation",
           "SmbTarget", "check_windows_path", "open_session", "parse_smb_uri", "reset_pools", "windows_name_problem"]
