"""A small model of DataSync semantics: what a destination must hold after one execution.

Written from docs/options.md, docs/concepts.md and DataSync's documentation, never from the engine's code,
so that the property-based test (tests/faults/test_model.py) compares the engine with an independent
reading of the rules. Trees are plain dicts ``path → entry``; the model is pure Python and knows nothing of
Arrow, locations or the manifest.

Where the documents are silent the model says so with ``None`` ("not compared"): a directory created only
because an included file lies below it, times written while ``Mtime=NONE``, the metadata of a directory
something was written into while ``OverwriteMode=NEVER`` protected it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

FILE, DIR, LINK, FIFO = "file", "dir", "symlink", "fifo"


@dataclass(frozen=True)
class Entry:
    """One entry of a tree; fields a kind does not have stay ``None`` (``data`` for files, ``target`` for
    symlinks)."""

    kind: str
    mode: int | None = None
    mtime_ns: int | None = None
    atime_ns: int | None = None
    uid: int | None = None
    gid: int | None = None
    data: bytes | None = None
    target: str | None = None

    @property
    def size(self) -> int | None:
        return None if self.data is None else len(self.data)


Tree = dict[str, Entry]


@dataclass(frozen=True)
class Side:
    """What a location keeps, as its capabilities say (docs/architecture.md's table)."""

    posix_metadata: bool = True
    directory_metadata: bool = True
    #: New entries' owner when none is applied (the worker's ids), None where unknown (object stores).
    default_owner: tuple[int, int] | None = None
    #: New files' and directories' mode when none is applied (the umask default), None where unknown.
    default_modes: tuple[int, int] | None = None
    #: Access times survive a read (object stores keep them as metadata; a file system's move on reads).
    atime_survives_reads: bool = False
    #: A change of owner clears setuid/setgid (a kernel's rule; object stores keep the mode they hold).
    chown_clears_setid: bool = False


@dataclass(frozen=True)
class Options:
    """The options the model reads, with DataSync's names and values."""

    TransferMode: str = "CHANGED"
    OverwriteMode: str = "ALWAYS"
    PreserveDeletedFiles: str = "PRESERVE"
    Mtime: str = "PRESERVE"
    Atime: str = "BEST_EFFORT"
    PosixPermissions: str = "PRESERVE"
    Uid: str = "INT_VALUE"
    Gid: str = "INT_VALUE"
    VerifyMode: str = "ONLY_FILES_TRANSFERRED"
    Includes: str | None = None
    Excludes: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Expectation:
    """The destination after the execution: ``tree`` holds every entry that must be there and nothing else
    may be; a ``None`` field is not compared."""

    tree: Tree
    status: str
    failed: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    #: Why the status is ERROR, for the failure message.
    why: list[str] = field(default_factory=list)


# -- filters (docs/options.md "Includes and Excludes") -------------------------------------------------------
def _glob(pattern: str, name: str) -> bool:
    """``*`` is any run of characters within one component; every other character matches itself."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == name
    if not name.startswith(parts[0]) or not name.endswith(parts[-1]) or len(name) < len(parts[0]) + len(parts[-1]):
        return False
    pos, end = len(parts[0]), len(name) - len(parts[-1])
    for middle in parts[1:-1]:
        found = name.find(middle, pos, end)
        if found < 0:
            return False
        pos = found + len(middle)
    return True


def _components_match(pattern: list[str], components: list[str]) -> bool:
    return len(pattern) == len(components) and all(_glob(p, c) for p, c in zip(pattern, components))


def patterns(value: str | None) -> list[str]:
    return [p.strip() for p in value.split("|")] if value else []


def matches(pattern: str, path: str) -> bool:
    """The entry or one of its ancestors matches (a pattern matches everything below what it matches)."""
    components = path.split("/")
    if pattern.startswith("/"):
        body = pattern.strip("/")
        if not body:
            return True
        want = body.split("/")
        return len(components) >= len(want) and _components_match(want, components[:len(want)])
    want = pattern.rstrip("/").split("/")
    return any(_components_match(want, components[end - len(want):end]) for end in range(len(want), len(components) + 1))


def above_anchored_include(pattern: str, path: str) -> bool:
    """``path`` is a directory above what an anchored include names (``/data/*.csv`` keeps ``data``)."""
    if not pattern.startswith("/"):
        return False
    want, components = pattern.strip("/").split("/"), path.split("/")
    return len(components) < len(want) and _components_match(want[:len(components)], components)


def in_scope(path: str, kind: str, options: Options) -> bool:
    if any(matches(p, path) for p in patterns(options.Excludes)):
        return False
    includes = patterns(options.Includes)
    if not includes:
        return True
    return any(matches(p, path) for p in includes) or (
        kind == DIR and any(above_anchored_include(p, path) for p in includes))


# -- the model ------------------------------------------------------------------------------------------------
def parents(path: str) -> Iterable[str]:
    head = posixpath.dirname(path)
    while head:
        yield head
        head = posixpath.dirname(head)


def _owner_kept(mode: str, owner_id: int | None, named: set[int]) -> bool:
    """Uid/Gid: INT_VALUE keeps the id; NAME keeps it where the id has a name (same user database on both
    sides here); BOTH by name or else the number; NONE never."""
    if owner_id is None or mode == "NONE":
        return False
    return mode != "NAME" or owner_id in named


def expect(src: Tree, dst: Tree, options: Options, source: Side, destination: Side,
           *, named_uids: set[int], named_gids: set[int]) -> Expectation:
    """The destination ``dst`` must hold after one execution from ``src`` with ``options``."""
    keep_mtime = options.Mtime == "PRESERVE" and source.posix_metadata
    keep_atime = keep_mtime and options.Atime == "BEST_EFFORT" and (
        destination.atime_survives_reads or options.VerifyMode == "NONE")
    both_posix = source.posix_metadata and destination.posix_metadata
    keep_mode = options.PosixPermissions == "PRESERVE" and both_posix
    never = options.OverwriteMode == "NEVER"

    def keep_uid(e: Entry) -> bool:
        return both_posix and _owner_kept(options.Uid, e.uid, named_uids)

    def keep_gid(e: Entry) -> bool:
        return both_posix and _owner_kept(options.Gid, e.gid, named_gids)

    def setgid_above(path: str) -> bool:
        """A directory above ``path`` has the setgid bit (before or after the run): entries created below it
        take its group, new directories the bit too (file-system semantics, not the engine's)."""
        return any(t.get(a) is not None and t[a].kind == DIR and (t[a].mode or 0) & 0o2000
                   for a in parents(path) for t in (src, dst))

    def new_entry(s: Entry, path: str) -> Entry:
        """What a copy, or a directory created, leaves at the destination."""
        owner = destination.default_owner or (None, None)
        if setgid_above(path):
            owner = (owner[0], None)
        modes = destination.default_modes
        if s.kind == LINK:
            mode = None  # a symlink's own mode means nothing on Linux
        elif keep_mode:
            mode = s.mode
        else:
            mode = None if modes is None or (s.kind == DIR and setgid_above(path)) else (
                modes[1] if s.kind == DIR else modes[0])
        return Entry(s.kind, mode=mode, mtime_ns=s.mtime_ns if keep_mtime else None,
                     atime_ns=s.atime_ns if keep_atime and s.kind == FILE else None,
                     uid=s.uid if keep_uid(s) else owner[0], gid=s.gid if keep_gid(s) else owner[1],
                     data=s.data, target=s.target)

    def updated(s: Entry, d: Entry) -> Entry:
        """``d`` with the metadata the options keep from ``s`` (a metadata update, or a directory's)."""
        mode = d.mode
        if keep_mode and s.kind != LINK:
            mode = s.mode
        elif destination.chown_clears_setid and d.kind == FILE and mode is not None and ((keep_uid(s) and s.uid != d.uid) or (keep_gid(s) and s.gid != d.gid)):
            # Linux clears setuid (and setgid with group execute) when a file changes owners; with the
            # mode not kept nothing sets them again, as it should not (another owner's setuid program).
            mode &= ~0o4000 & ~(0o2000 if mode & 0o010 else 0)
        return replace(d, mode=mode, atime_ns=None,
                       mtime_ns=s.mtime_ns if keep_mtime else d.mtime_ns,
                       uid=s.uid if keep_uid(s) else d.uid, gid=s.gid if keep_gid(s) else d.gid)

    s_scope = {p: e for p, e in src.items() if e.kind != FIFO and in_scope(p, e.kind, options)}
    d_scope = {p: e for p, e in dst.items() if in_scope(p, e.kind, options)}
    final: Tree = dict(dst)
    failed: set[str] = set()
    written: set[str] = set()
    touched: set[str] = set()  # directories something was written or deleted in: their mtime moved

    def blocked(path: str) -> bool:
        return any(final.get(a) is not None and final[a].kind != DIR for a in parents(path))

    dirs_to_update: dict[str, Entry] = {}
    for path in sorted(s_scope, key=lambda p: (p.count("/"), p)):
        s, d = s_scope[path], d_scope.get(path)
        if blocked(path) or (d is None and path in dst):
            failed.add(path)  # a parent is not a directory at the destination (or an excluded entry is in the way)
            continue
        if d is None:
            action = "create"
        elif never:
            action = "keep"  # OverwriteMode=NEVER: an entry that exists is never modified
        elif d.kind != s.kind:
            # A directory in the way of a file fails; so does a symlink in the way of a directory (the
            # engine never trusts a destination symlink where it is to create a directory).
            action = "fail" if d.kind == DIR or (d.kind == LINK and s.kind == DIR) else "create"
        elif s.kind == DIR:
            action = "dir"
        else:
            differs = options.TransferMode == "ALL" or (
                s.target != d.target if s.kind == LINK else s.size != d.size) or (
                keep_mtime and s.mtime_ns != d.mtime_ns)
            meta = (keep_mode and s.kind != LINK and s.mode != d.mode) or (keep_uid(s) and s.uid != d.uid) or (
                keep_gid(s) and s.gid != d.gid)
            action = "create" if differs else ("meta" if meta else "keep")
        if action == "fail":
            failed.add(path)
        elif action == "create":
            for below in [p for p in final if p.startswith(path + "/")]:
                del final[below]  # what stood there was a file or a symlink: nothing below it
            final[path] = new_entry(s, path)
            written.add(path)
            touched.update(parents(path))
        elif action == "meta":
            final[path] = updated(s, d)
            written.add(path)
        elif action == "dir":
            dirs_to_update[path] = s

    for path in list(written):
        for a in parents(path):
            if a not in final:
                final[a] = Entry(DIR)  # created as needed above an included entry: metadata not compared

    deleted: set[str] = set()
    why: list[str] = [f"{p}: cannot be written" for p in sorted(failed)]
    if options.PreserveDeletedFiles == "REMOVE" and not failed:
        for path in sorted((p for p in d_scope if p not in s_scope and p in final), key=lambda p: -p.count("/")):
            if final[path].kind == DIR and any(q.startswith(path + "/") for q in final):
                continue  # still holds excluded entries: kept
            del final[path]
            deleted.add(path)
            touched.update(parents(path))

    # Directory metadata, applied last (after deletions) to what the source has in scope.
    for path, e in final.items():
        if e.kind != DIR:
            continue
        s = s_scope.get(path)
        existed = path in dst and dst[path].kind == DIR
        if s is not None and s.kind == DIR and (failed or not source.directory_metadata):
            # A copy failed: finalize (directory metadata) may not run, while updates planned as `meta`
            # run in the shards; which of them happened is the failure semantics' business, not compared.
            # A source whose markers keep no metadata (S3) has only a marker's LastModified: not compared.
            final[path] = Entry(DIR)
        elif failed or s is None or s.kind != DIR or not (source.directory_metadata and destination.directory_metadata):
            # Not the source's directory in scope, or its metadata cannot be kept, or finalize may not have
            # run (a copy failed): kept as it was where nothing moved it, else not compared.
            final[path] = replace(e, mtime_ns=None, atime_ns=None) if existed and path in touched else (
                e if existed else Entry(DIR))
        elif not existed:
            final[path] = new_entry(s, path)
        elif path in dirs_to_update:
            final[path] = updated(s, e)
            if not keep_mtime and path in touched:
                final[path] = replace(final[path], mtime_ns=None)
        elif path in touched:  # OverwriteMode=NEVER kept it; what was written inside moved its mtime
            final[path] = replace(e, mtime_ns=None)
        final[path] = replace(final[path], atime_ns=None)

    for path, e in final.items():
        if e.kind == DIR and not destination.directory_metadata:
            final[path] = e = Entry(DIR)  # markers: written, not kept by every store
        if e.atime_ns is not None and (path not in written or e.kind != FILE):
            final[path] = replace(e, atime_ns=None)  # listings and reads move access times: only a copy's is kept

    status = "ERROR" if failed else "SUCCESS"
    if options.VerifyMode == "POINT_IN_TIME_CONSISTENT" and not failed:
        for path, s in s_scope.items():
            d = final.get(path)
            if d is None or d.kind != s.kind or (s.kind == FILE and d.data != s.data) or (
                    s.kind == LINK and d.target != s.target) or (
                    keep_mtime and s.kind != DIR and d.mtime_ns is not None and d.mtime_ns != s.mtime_ns):
                status = "ERROR"
                why.append(f"{path}: differs from the source (point-in-time verification)")
        if options.PreserveDeletedFiles == "REMOVE":
            for path in final:
                if path not in s_scope and path in d_scope:
                    status = "ERROR"
                    why.append(f"{path}: only at the destination (point-in-time verification with REMOVE)")
    return Expectation(final, status, failed, deleted, written, why)


def deletions_planned(src: Tree, dst: Tree, options: Options) -> tuple[int, int]:
    """(entries REMOVE would delete, destination entries in scope), for the deletion cap."""
    s = {p for p, e in src.items() if e.kind != FIFO and in_scope(p, e.kind, options)}
    d = {p for p, e in dst.items() if in_scope(p, e.kind, options)}
    return len(d - s), len(d)
