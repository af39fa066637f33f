"""Trees of the model test: hypothesis strategies for a source, a prior destination and options, and the
code that writes a tree to a location and reads one back (local directories, S3 prefixes).

The strategies stay inside what the engine documents as valid: names from a varied but safe alphabet
(hostile names are tests/faults' names cases), option combinations TaskOptions accepts.
"""

from __future__ import annotations

import os
import posixpath
import random
import stat
import unicodedata
from pathlib import Path

import pyarrow as pa
from hypothesis import strategies as st

from airflow_datasync.locations import open_location
from airflow_datasync.locations.base import LISTING_SCHEMA, TEMP_PREFIX, Metadata
from tests.faults.model import DIR, FIFO, FILE, LINK, Entry, Options, Tree

#: Spaces, unicode (composed: NFC vs NFD is the hostile-names cases' business), dots, dashes, URL-ish
#: characters; never `/`, `\\`, `|` or `*` (the last two are filter syntax), NUL or control characters.
ALPHABET = "abcxyzABZ0129 ._-+=@#%,;()[]{}'!&$~^éüßñ✓中日Ωя🙂"
UIDS = [0, 1, 1000, 65534, 12345, 23456]   # 12345 and 23456 have no name here
GIDS = [0, 1, 100, 65534, 12345]
NOW_NS = 1_767_225_600 * 10**9  # 2026-01-01: a fixed bound, so a seed draws the same examples on every run
FILE_MODES = [0o644, 0o600, 0o755, 0o640, 0o444, 0o000, 0o4755, 0o2755, 0o6711, 0o777, 0o1644]
DIR_MODES = [0o755, 0o700, 0o775, 0o2775, 0o1777, 0o555, 0o711, 0o3770]


def _valid_name(name: str) -> bool:
    return (name == name.strip() and name not in ("", ".", "..") and not name.startswith(TEMP_PREFIX)
            and len(name.encode()) <= 60)


names = st.text(ALPHABET, min_size=1, max_size=14).map(lambda s: unicodedata.normalize("NFC", s)).filter(_valid_name)
mtimes = st.one_of(st.integers(10**9, NOW_NS - 3600 * 10**9),             # any nanosecond in the past
                   st.integers(10**9, NOW_NS // 10**9 - 3600).map(lambda s: s * 10**9))   # whole seconds
modes_file = st.one_of(st.sampled_from(FILE_MODES), st.integers(0, 0o7777))
modes_dir = st.one_of(st.sampled_from(DIR_MODES), st.integers(0, 0o7777))
sizes = st.one_of(st.integers(0, 64), st.integers(0, 64 * 1024), st.integers(0, 1 << 20)).filter(
    lambda n: n <= 64 * 1024 or n % 7 == 0)  # a few large ones


@st.composite
def payloads(draw) -> bytes:
    size, seed = draw(sizes), draw(st.integers(0, 2**16))
    return random.Random(seed).randbytes(size)


@st.composite
def entries(draw, kind: str, posix: bool = True) -> Entry:
    base = dict(mtime_ns=draw(mtimes), atime_ns=draw(mtimes), uid=draw(st.sampled_from(UIDS)),
                gid=draw(st.sampled_from(GIDS)))
    if kind == FILE:
        return Entry(FILE, mode=draw(modes_file), data=draw(payloads()), **base)
    if kind == DIR:
        return Entry(DIR, mode=draw(modes_dir), **base)
    if kind == FIFO:
        return Entry(FIFO, mode=0o644, **base)
    return Entry(LINK, **base)


def _link_target(draw, path: str, tree: Tree) -> str:
    """Relative to the link's directory: a file, a directory, something missing, or an absolute path."""
    others = sorted(p for p in tree if p != path)
    choice = draw(st.sampled_from(["entry", "missing", "absolute"] if others else ["missing", "absolute"]))
    if choice == "entry":
        return posixpath.relpath(draw(st.sampled_from(others)), posixpath.dirname(path) or ".")
    if choice == "missing":
        return draw(names) + "/nowhere"
    return "/nonexistent/" + draw(names)


@st.composite
def trees(draw, max_entries: int = 30, fifos: bool = True) -> Tree:
    """0–``max_entries`` entries; every parent of an entry is a directory of the tree."""
    tree: Tree = {}
    kinds = [FILE] * 6 + [DIR] * 3 + [LINK] + ([FIFO] if fifos else [])
    for _ in range(draw(st.integers(0, max_entries))):
        dirs = [""] + sorted(p for p, e in tree.items() if e.kind == DIR)
        path = posixpath.join(draw(st.sampled_from(dirs)), draw(names))
        if path in tree:
            continue
        kind = draw(st.sampled_from(kinds))
        tree[path] = draw(entries(kind))
    for path, e in list(tree.items()):
        if e.kind == LINK:
            tree[path] = Entry(LINK, mtime_ns=e.mtime_ns, atime_ns=e.atime_ns, uid=e.uid, gid=e.gid, target=_link_target(draw, path, tree))
    return tree


@st.composite
def prior_destinations(draw, src: Tree, max_extra: int = 10, dirs_over_files: bool = True) -> Tree:
    """A destination that overlaps the source: same entries, changed content / size / mtime / metadata,
    another type at the same path, and entries only at the destination. ``dirs_over_files=False`` (object
    stores) draws type changes between files and symlinks only."""
    dst: Tree = {}
    for path in sorted(src, key=lambda p: (p.count("/"), p)):
        s = src[path]
        if s.kind == FIFO or any(dst.get(a) is None or dst[a].kind != DIR for a in _parents(path)):
            continue
        how = draw(st.sampled_from(["absent", "same", "same", "content", "size", "mtime", "meta", "type"]))
        if how == "absent":
            continue
        if how == "same":
            dst[path] = s
        elif how == "content" and s.kind == FILE and s.data:
            # Same size and mtime, other bytes: CHANGED does not see it (as DataSync would not).
            dst[path] = Entry(FILE, mode=s.mode, mtime_ns=s.mtime_ns, atime_ns=s.atime_ns, uid=s.uid, gid=s.gid,
                              data=bytes(b ^ 0x5A for b in s.data))
        elif how == "size" and s.kind == FILE:
            dst[path] = Entry(FILE, mode=s.mode, mtime_ns=s.mtime_ns, atime_ns=s.atime_ns, uid=s.uid, gid=s.gid,
                              data=draw(payloads()))
        elif how == "mtime":
            dst[path] = Entry(**{**s.__dict__, "mtime_ns": draw(mtimes)})
        elif how == "meta":
            dst[path] = Entry(**{**s.__dict__, "mode": draw(modes_dir if s.kind == DIR else modes_file)
                                 if s.kind != LINK else None, "uid": draw(st.sampled_from(UIDS)),
                                 "gid": draw(st.sampled_from(GIDS))})
        elif not dirs_over_files and s.kind == DIR:
            dst[path] = s  # an object store holds `d` and `d/x` side by side: no type clash to draw there
        else:  # another type: a file where the source has a directory, a directory or link where it has a file
            kind = draw(st.sampled_from([k for k in (FILE, DIR, LINK) if k != s.kind
                                         and (dirs_over_files or k != DIR)]))
            e = draw(entries(kind))
            dst[path] = Entry(LINK, mtime_ns=e.mtime_ns, atime_ns=e.atime_ns, uid=e.uid, gid=e.gid, target=draw(names)) if kind == LINK else e
    for _ in range(draw(st.integers(0, max_extra))):
        dirs = [""] + sorted(p for p, e in dst.items() if e.kind == DIR)
        path = posixpath.join(draw(st.sampled_from(dirs)), draw(names))
        if path in dst or path in src:
            continue
        kind = draw(st.sampled_from([FILE, FILE, DIR, LINK]))
        e = draw(entries(kind))
        dst[path] = Entry(LINK, mtime_ns=e.mtime_ns, atime_ns=e.atime_ns, uid=e.uid, gid=e.gid, target=draw(names)) if kind == LINK else e
    return dst


def _parents(path: str):
    head = posixpath.dirname(path)
    while head:
        yield head
        head = posixpath.dirname(head)


@st.composite
def filter_strings(draw, tree: Tree) -> str | None:
    """None mostly; else 1–2 DataSync patterns built from the tree's names: anchored paths, `*` globs."""
    if not tree or draw(st.integers(0, 3)):
        return None
    out = []
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(sorted(tree)))
        parts = path.split("/")
        form = draw(st.sampled_from(["anchored", "unanchored", "glob-suffix", "glob-component", "trailing-slash"]))
        if form == "anchored":
            out.append("/" + path)
        elif form == "trailing-slash":
            out.append("/" + path + "/")
        elif form == "unanchored":
            out.append("/".join(parts[draw(st.integers(0, len(parts) - 1)):]))
        elif form == "glob-suffix":
            name = parts[-1]
            out.append("*" + name[draw(st.integers(0, len(name) - 1)):])
        else:
            i = draw(st.integers(0, len(parts) - 1))
            out.append("/" + "/".join(parts[:i] + ["*"] + parts[i + 1:]))
    return "|".join(out)


@st.composite
def options(draw, src: Tree, dst: Tree, owners: tuple[str, ...] = ("INT_VALUE", "NAME", "BOTH", "NONE")) -> Options:
    transfer = draw(st.sampled_from(["CHANGED", "CHANGED", "ALL"]))
    times = draw(st.sampled_from([("PRESERVE", "BEST_EFFORT")] * 3 + [("NONE", "NONE")]))
    return Options(
        TransferMode=transfer,
        OverwriteMode=draw(st.sampled_from(["ALWAYS", "ALWAYS", "NEVER"])),
        PreserveDeletedFiles="PRESERVE" if transfer == "ALL" else draw(st.sampled_from(["PRESERVE", "REMOVE"])),
        Mtime=times[0], Atime=times[1],
        PosixPermissions=draw(st.sampled_from(["PRESERVE", "PRESERVE", "NONE"])),
        Uid=draw(st.sampled_from(owners)), Gid=draw(st.sampled_from(owners)),
        VerifyMode=draw(st.sampled_from(["ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT", "NONE"])),
        Includes=draw(filter_strings({**src, **dst})), Excludes=draw(filter_strings({**src, **dst})),
    )


engine_settings = st.fixed_dictionaries({
    "files_per_shard": st.sampled_from([1, 3, 10_000]),
    "concurrency": st.sampled_from([0, 1, 4]),
    "sync_writes": st.booleans(),
})


# -- writing and reading trees ---------------------------------------------------------------------------------
def write_local(root: Path, tree: Tree) -> None:
    """Create ``tree`` under ``root``; owners before modes (chown clears setuid bits), directory times last."""
    root.mkdir(parents=True, exist_ok=True)
    for path in sorted(tree, key=lambda p: (p.count("/"), p)):
        e, full = tree[path], root / path
        if e.kind == DIR:
            full.mkdir()
        elif e.kind == FILE:
            full.write_bytes(e.data)
        elif e.kind == LINK:
            os.symlink(e.target, full)
        else:
            os.mkfifo(full)
    for path in sorted(tree, key=lambda p: (-p.count("/"), p)):
        e, full = tree[path], root / path
        os.chown(full, e.uid, e.gid, follow_symlinks=False)
        if e.kind != LINK:
            os.chmod(full, e.mode)
        os.utime(full, ns=(e.atime_ns, e.mtime_ns), follow_symlinks=False)


def read_local(root: Path) -> Tree:
    """Every entry below ``root`` (temporaries included: none may be left), without following links."""
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            st_ = os.lstat(full)  # before any read moves the access time
            base = dict(mtime_ns=st_.st_mtime_ns, atime_ns=st_.st_atime_ns, uid=st_.st_uid, gid=st_.st_gid)
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = Entry(LINK, target=os.readlink(full), **base)
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = Entry(DIR, mode=stat.S_IMODE(st_.st_mode), **base)
            elif stat.S_ISREG(st_.st_mode):
                out[rel] = Entry(FILE, mode=stat.S_IMODE(st_.st_mode), data=Path(full).read_bytes(), **base)
            else:
                out[rel] = Entry(FIFO, mode=stat.S_IMODE(st_.st_mode), **base)
    return out


def write_location(uri: str, conn_id: str | None, tree: Tree) -> None:
    """Write ``tree`` through a backend (an S3 prefix): the contract suite checks those writes."""
    with open_location(uri, conn_id) as loc:
        for path in sorted(tree, key=lambda p: (p.count("/"), p)):
            e = tree[path]
            meta = Metadata(mtime_ns=e.mtime_ns, atime_ns=e.atime_ns, mode=e.mode, uid=e.uid, gid=e.gid)
            if e.kind == DIR:
                loc.mkdir(path, meta)
            elif e.kind == FILE:
                loc.write(path, iter([e.data[i:i + 256 * 1024] for i in range(0, len(e.data), 256 * 1024)] or [b""]),
                          meta, tag="model")
            else:
                loc.symlink(path, e.target, meta, tag="model")


def read_location(uri: str, conn_id: str | None) -> tuple[Tree, list[str]]:
    """The tree as the backend lists it, directories implied by keys included; and problems (a path listed
    twice, e.g. an object beside a directory marker of the same name)."""
    out: Tree = {}
    problems: list[str] = []
    with open_location(uri, conn_id) as loc:
        rows = pa.Table.from_batches(list(loc.scan()), schema=LISTING_SCHEMA).to_pylist()
        for row in rows:
            path = row["path"]
            if path in out:
                problems.append(f"{path}: listed twice ({out[path].kind} and {row['type']})")
            base = dict(mtime_ns=row["mtime_ns"], atime_ns=row["atime_ns"], uid=row["uid"], gid=row["gid"])
            if row["type"] == FILE:
                with loc.open_read(path) as fh:
                    out[path] = Entry(FILE, mode=row["mode"], data=fh.read(), **base)
            elif row["type"] == DIR:
                out[path] = Entry(DIR, mode=row["mode"], **base)
            else:
                out[path] = Entry(LINK, target=row["link_target"], **base)
    for path in list(out):
        for a in _parents(path):
            out.setdefault(a, Entry(DIR))
    return out, problems
