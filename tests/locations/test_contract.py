"""The location contract, tested once and run by every backend against its real server.

Each test takes ``location`` (a fresh empty root; see ``conftest.py``) and so runs on local paths,
SeaweedFS S3, smbd and Azurite alike. What differs between backends is read from
``location.capabilities``, never from the scheme: a backend passes by keeping what it declares.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from airflow_datasync import checksum, errors
from airflow_datasync.locations.base import (
    DIR,
    FILE,
    LISTING_SCHEMA,
    S3_TAGS,
    S3_USER_METADATA,
    SMB_ATTRIBUTES,
    SMB_CREATION_NS,
    SMB_SECURITY_DESCRIPTOR,
    SMB_SECURITY_FLAGS,
    TEMP_PREFIX,
    TEMPORARY,
    Capabilities,
    Leftover,
    Location,
    Metadata,
    Written,
)

#: A modification time with every nanosecond digit set, so that each backend's resolution shows.
MTIME_NS = 1_700_000_000_123_456_789
UNSAFE_PATHS = ("../x", "a/../../x", "/abs", "a//b", "a/./b", "a\x00b")


class Veto(Exception):
    """Raised by a ``before_commit`` callback: the source changed during the copy."""


def put(loc: Location, path: str, data: bytes = b"data", meta: Metadata | None = None, **kw: Any) -> Written:
    return loc.write(path, iter([data]), meta or Metadata(), tag="conf", **kw)


def read(loc: Location, path: str) -> bytes:
    with loc.open_read(path) as fh:
        return fh.read()


def listed(loc: Location, **kw: Any) -> dict[str, dict]:
    """Path → listing row for every entry below the root."""
    table = pa.Table.from_batches(list(loc.scan(**kw)), schema=LISTING_SCHEMA)
    return {row["path"]: row for row in table.to_pylist()}


def test_capabilities_are_one_frozen_declaration(location):
    caps = location.capabilities
    assert isinstance(caps, Capabilities)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.concurrency = 1  # type: ignore[misc]
    assert caps.mtime_resolution_ns >= 1 and caps.concurrency >= 1
    assert caps.extras_on_request <= caps.extras_read


def test_a_location_is_its_own_context_manager(backend):
    root = backend.root()
    with root.open() as loc:
        assert isinstance(loc, Location)
        loc.check(writable=True)
        put(loc, "x.txt", b"inside")
    with root.open() as again:  # what the first wrote is there for the next opener
        assert read(again, "x.txt") == b"inside"


def test_a_fresh_root_lists_nothing_and_a_missing_path_stats_as_none(location):
    assert listed(location) == {}
    assert location.stat("missing.txt") is None
    assert location.stat("no/such/folder/file.txt") is None


def test_write_returns_what_it_wrote(location):
    written = location.write("w.bin", iter([b"hello ", b"", b"world"]), Metadata(), tag="conf")
    assert isinstance(written, Written)
    assert written.size == 11
    assert read(location, "w.bin") == b"hello world"
    entry = location.stat("w.bin")
    assert entry.type == FILE and entry.size == 11
    assert put(location, "empty.bin", b"").size == 0
    assert location.stat("empty.bin").size == 0 and read(location, "empty.bin") == b""


def test_a_vetoed_commit_leaves_nothing_at_the_name_and_no_temporary(location):
    seen: list[tuple[int, Any, list[str]]] = []

    def veto(size: int) -> None:
        # Before the commit nothing is visible at the name, and the data written so far is not listed.
        seen.append((size, location.stat("v.txt"), sorted(listed(location))))
        raise Veto("source changed during the copy")

    with pytest.raises(Veto):
        location.write("v.txt", iter([b"abc", b"def"]), Metadata(), tag="conf", before_commit=veto)
    assert seen == [(6, None, [])]
    assert location.stat("v.txt") is None
    assert listed(location) == {}


def test_a_vetoed_replacement_keeps_the_old_content(location):
    put(location, "keep.txt", b"old")

    def veto(size: int) -> None:
        assert read(location, "keep.txt") == b"old"
        raise Veto("source changed during the copy")

    with pytest.raises(Veto):
        location.write("keep.txt", iter([b"new content"]), Metadata(), tag="conf", before_commit=veto)
    assert read(location, "keep.txt") == b"old"
    assert sorted(listed(location)) == ["keep.txt"]


def test_a_stream_that_fails_midway_publishes_nothing(location):
    put(location, "keep.bin", b"previous content")

    def failing() -> Iterator[bytes]:
        # Past Samba's 8 MiB largest write and the S3 backend's 16 MiB multipart threshold: the paths
        # that write in pieces must abandon them too.
        yield b"x" * (9 << 20)
        yield b"y" * (9 << 20)
        raise Veto("source read failed")

    for path in ("half.bin", "keep.bin"):
        with pytest.raises(Veto):
            location.write(path, failing(), Metadata(), tag="conf")
    assert location.stat("half.bin") is None
    assert read(location, "keep.bin") == b"previous content"
    assert sorted(listed(location)) == ["keep.bin"]


def test_never_overwrite_keeps_the_entry_in_the_way(location):
    put(location, "x.txt", b"first")
    with pytest.raises(errors.AlreadyExistsError):
        put(location, "x.txt", b"second", overwrite=False)
    assert read(location, "x.txt") == b"first"
    assert sorted(listed(location)) == ["x.txt"]
    assert put(location, "new.txt", b"fresh", overwrite=False).size == 5  # no entry in the way: written


def test_temporary_names_are_never_listed(location):
    location.mkdir("d")
    put(location, f"{TEMP_PREFIX}left-by-a-killed-writer", b"partial")
    put(location, f"d/{TEMP_PREFIX}another", b"partial")
    put(location, "d/real.txt", b"real")
    assert sorted(listed(location)) == ["d", "d/real.txt"]


@pytest.mark.parametrize("path", UNSAFE_PATHS, ids=repr)
def test_unsafe_paths_are_refused_before_any_request(location, path):
    consumed: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        consumed.append(b"started")
        yield b"never"

    calls = {
        "stat": lambda: location.stat(path),
        "open_read": lambda: read(location, path),
        "write": lambda: location.write(path, chunks(), Metadata(), tag="conf"),
        "mkdir": lambda: location.mkdir(path),
        "set_metadata": lambda: location.set_metadata(path, Metadata(mtime_ns=MTIME_NS)),
        "delete": lambda: location.delete(path, is_dir=False),
        "delete dir": lambda: location.delete(path, is_dir=True),
    }
    outcomes = {}
    for name, call in calls.items():
        try:
            call()
            outcomes[name] = "accepted"
        except errors.UnsafePathError:
            outcomes[name] = "refused"
        except Exception as exc:
            outcomes[name] = f"{type(exc).__qualname__}: {exc}"
    assert outcomes == dict.fromkeys(calls, "refused")
    assert consumed == [], "write read its stream before refusing the path"
    assert listed(location) == {}


def test_a_backslash_is_an_ordinary_character_where_the_store_can_hold_it(location):
    """``a\\b.txt`` is one name on POSIX, in S3 keys and blob names: a backend that can hold it
    round-trips it under that very name (never as ``a/b.txt``); one that cannot (SMB, where it separates
    names) says why in ``name_problem`` and refuses to write it."""
    name, nested = "a\\b.txt", "d\\x/c\\d.txt"
    problem = location.name_problem(name)
    if problem is not None:
        assert location.name_problem(nested) is not None
        with pytest.raises(errors.LocationError):
            put(location, name, b"never")
        assert listed(location) == {}
        return
    put(location, name, b"one name")
    location.mkdir("d\\x")
    put(location, nested, b"nested")
    assert sorted(listed(location)) == sorted([name, "d\\x", nested])
    assert location.stat(name).type == FILE and location.stat("a") is None
    assert read(location, name) == b"one name" and read(location, nested) == b"nested"
    location.delete(nested, is_dir=False)
    location.delete(name, is_dir=False)
    location.delete("d\\x", is_dir=True)
    assert listed(location) == {}


def test_deleting_a_directory_that_holds_entries_keeps_it(location):
    location.mkdir("d")
    put(location, "d/f.txt", b"still here")
    with pytest.raises(errors.DirectoryNotEmptyError):
        location.delete("d", is_dir=True)
    assert location.stat("d").type == DIR
    assert read(location, "d/f.txt") == b"still here"
    location.delete("d/f.txt", is_dir=False)
    location.delete("d", is_dir=True)
    assert location.stat("d/f.txt") is None and location.stat("d") is None
    assert listed(location) == {}


def test_mtime_is_kept_at_the_declared_resolution(location):
    caps = location.capabilities
    expected = MTIME_NS // caps.mtime_resolution_ns * caps.mtime_resolution_ns
    put(location, "t.txt", b"time", Metadata(mtime_ns=MTIME_NS, mode=0o640))
    assert location.stat("t.txt").mtime_ns == expected
    assert listed(location)["t.txt"]["mtime_ns"] == expected
    if caps.posix_metadata:
        assert location.stat("t.txt").mode == 0o640
    later = MTIME_NS + 86_400 * 10**9 + 7
    assert location.set_metadata("t.txt", Metadata(mtime_ns=later)) == []
    assert location.stat("t.txt").mtime_ns == later // caps.mtime_resolution_ns * caps.mtime_resolution_ns
    assert read(location, "t.txt") == b"time"  # metadata changes never touch the bytes


def _sample_extras(location: Location, keys: frozenset[str]) -> dict[str, Any]:
    """A value for each extras key that differs from what a fresh entry gets by default."""
    samples: dict[str, Any] = {
        SMB_CREATION_NS: MTIME_NS - MTIME_NS % 100 - 3_600 * 10**9,
        SMB_ATTRIBUTES: 0x2 | 0x20,  # FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_ARCHIVE
        S3_USER_METADATA: {"colour": "blue", "owner-team": "data"},
        S3_TAGS: {"project": "datasync", "tier": "gold"},
        SMB_SECURITY_FLAGS: "OWNER_DACL",
        "azure.metadata": {"colour": "blue", "owner_team": "data"},  # blob metadata other than ours
    }
    if SMB_SECURITY_DESCRIPTOR in keys:  # a real descriptor: the one the server gives a new file
        put(location, "sd-donor.txt", b"donor")
        donor = location.read_extras("sd-donor.txt", {SMB_SECURITY_DESCRIPTOR: "OWNER_DACL"})
        samples[SMB_SECURITY_DESCRIPTOR] = donor[SMB_SECURITY_DESCRIPTOR]
    unknown = keys - samples.keys()
    assert not unknown, f"no sample value for extras {sorted(unknown)}: add one here"
    return {key: samples[key] for key in keys}


def _comparable(key: str, value: Any) -> Any:
    """What a round trip must keep of an extras value. A security descriptor: its owner and its set of
    access entries (Samba keeps a DACL as a POSIX ACL and gives it back in another order or with a
    duplicate entry, so the bytes differ while the meaning is kept)."""
    if key != SMB_SECURITY_DESCRIPTOR or value is None:
        return value
    from smbprotocol.security_descriptor import SMB2CreateSDBuffer

    descriptor = SMB2CreateSDBuffer()
    descriptor.unpack(value)
    aces = {(ace["ace_type"].get_value(), ace["mask"].get_value(), str(ace["sid"].get_value()))
            for ace in descriptor.get_dacl()["aces"].get_value()}
    return str(descriptor.get_owner()), aces


def test_extras_a_backend_reads_and_writes_round_trip(location):
    caps = location.capabilities
    keys = caps.extras_read & caps.extras_write
    extras = _sample_extras(location, keys)
    put(location, "e.txt", b"extras", Metadata(mtime_ns=MTIME_NS, extras=extras))
    on_request = keys & caps.extras_on_request
    wanted = {key: extras.get(SMB_SECURITY_FLAGS, True) if key == SMB_SECURITY_DESCRIPTOR else True
              for key in on_request}
    got = {**location.stat("e.txt").extras, **location.read_extras("e.txt", wanted)}
    for key in keys - {SMB_SECURITY_FLAGS}:  # the flags say how a descriptor was read, not a property kept
        assert _comparable(key, got.get(key)) == _comparable(key, extras[key]), key
    assert read(location, "e.txt") == b"extras"


def test_listing_streams_in_batches(location):
    location.mkdir("sub")
    for i in range(9):
        put(location, f"sub/f{i}.txt" if i % 2 else f"f{i}.txt", b"x" * i)
    batches = list(location.scan(batch_size=3))
    assert len(batches) > 1
    assert all(batch.schema.equals(LISTING_SCHEMA) for batch in batches)
    rows = pa.Table.from_batches(batches).to_pylist()
    assert sorted(r["path"] for r in rows) == sorted(
        ["sub"] + [f"sub/f{i}.txt" if i % 2 else f"f{i}.txt" for i in range(9)])
    by_path = {r["path"]: r for r in rows}
    assert by_path["sub"]["type"] == DIR
    assert by_path["sub/f7.txt"]["type"] == FILE and by_path["sub/f7.txt"]["size"] == 7


def _escaped(exc: BaseException) -> bool:
    """True where an exception is not the vocabulary: neither a LocationError nor a built-in OSError
    (the built-in twins of NotFoundError and the others, raised by code written against the stdlib)."""
    return not (isinstance(exc, errors.LocationError) or (isinstance(exc, OSError) and type(exc).__module__ == "builtins"))


def test_a_missing_file_reads_as_not_found(location):
    with pytest.raises(errors.NotFoundError):
        read(location, "missing.txt")


def test_no_client_exception_escapes(location):
    put(location, "file.txt", b"a file")
    location.mkdir("dir")
    attempts = {
        "open_read of a missing file": lambda: read(location, "missing/deeper.txt"),
        "set_metadata of a missing file": lambda: location.set_metadata("missing.txt", Metadata(mtime_ns=MTIME_NS)),
        "open_read of a directory": lambda: read(location, "dir"),
        "write below a file": lambda: put(location, "file.txt/below.txt"),
        "mkdir below a file": lambda: location.mkdir("file.txt/below"),
        "write over a directory": lambda: put(location, "dir"),
    }
    escaped = {}
    for name, attempt in attempts.items():
        try:
            attempt()
        except Exception as exc:
            if _escaped(exc):
                escaped[name] = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    assert escaped == {}, "client exceptions escaped the backend"


def test_content_round_trips_byte_for_byte(location):
    # 9 MiB and a bit, in 1 MiB chunks: above Samba's 8 MiB largest write (a write loop must handle short
    # writes), several chunks everywhere.
    data = bytes(range(256)) * (9 << 12) + b"tail"
    chunks = [data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    location.mkdir("nested")
    assert location.write("nested/big.bin", iter(chunks), Metadata(), tag="conf").size == len(data)
    assert hashlib.sha256(read(location, "nested/big.bin")).digest() == hashlib.sha256(data).digest()


# -- each declared capability is honoured; an undeclared one keeps the "cannot" default ------------------
def test_case_insensitivity_is_as_declared(location):
    put(location, "Mixed.txt", b"case")
    other_case = location.stat("MIXED.TXT")
    if location.capabilities.case_insensitive:
        assert other_case is not None and other_case.size == 4
    else:
        assert other_case is None


def test_listed_md5s_are_the_md5s_of_the_bytes(location):
    put(location, "a.txt", b"a")
    location.mkdir("d")
    put(location, "d/b.txt", b"bb")
    md5s = location.list_md5s()
    if location.capabilities.listed_md5s:
        assert location.stores_md5(2)
        assert {path: md5s[path] for path in ("a.txt", "d/b.txt")} == \
            {"a.txt": hashlib.md5(b"a").hexdigest(), "d/b.txt": hashlib.md5(b"bb").hexdigest()}
        assert "d" not in md5s and "d/" not in md5s  # directories have no content to prove
    else:
        assert md5s is None and not location.stores_md5(2)


def test_native_checksums_are_the_crc64nvme_of_the_bytes(location):
    data = b"checksum me " * 1000
    put(location, "c.bin", data)
    hasher = checksum.new_hasher()
    hasher.update(data)
    native = location.native_checksum("c.bin")
    if location.capabilities.native_checksums:
        assert native == hasher.hexdigest()
    else:
        assert native is None


def test_versioned_reads_return_the_listed_version_or_refuse(location):
    put(location, "v.txt", b"version one")
    if not location.capabilities.versioned_reads:
        with pytest.raises(NotImplementedError):
            location.open_version("v.txt", "any-etag")
        return
    etag = listed(location)["v.txt"]["etag"]
    assert etag

    def read_version() -> tuple[bytes, Any]:
        stream, entry = location.open_version("v.txt", etag)
        with stream:
            return stream.read(), entry

    data, entry = read_version()
    assert data == b"version one"
    assert entry.size == len(b"version one") and entry.etag == etag
    put(location, "v.txt", b"version two")
    with pytest.raises(errors.ChangedSinceListingError):
        read_version()


def test_ranged_writes_where_declared(location):
    """A file written in ranges out of order (as separate range tasks would) appears only when committed,
    whole and with its metadata; an aborted one leaves nothing (see docs/architecture.md)."""
    stripe = 5 * 1024**2  # S3's smallest part
    data = bytes(range(256)) * (12 * 1024**2 // 256)
    if not location.capabilities.ranged_writes:
        with pytest.raises(NotImplementedError):
            location.begin_ranged("r.bin", len(data), stripe, Metadata(), tag="00000000-1")
        return
    ranged = location.begin_ranged("r.bin", len(data), stripe, Metadata(mtime_ns=MTIME_NS), tag="00000000-1")
    done = [location.write_range(ranged, offset, iter([data[offset:offset + stripe]]))
            for offset in (2 * stripe, 0, stripe)]
    assert location.stat("r.bin") is None and "r.bin" not in listed(location)  # nothing until the commit
    written = location.commit_ranged(ranged, done, Metadata(mtime_ns=MTIME_NS))
    assert written.size == len(data) and read(location, "r.bin") == data
    res = location.capabilities.mtime_resolution_ns
    assert location.stat("r.bin").mtime_ns == MTIME_NS - MTIME_NS % res
    assert not any(TEMP_PREFIX in path for path in listed(location)) and not location.scanned_leftovers()
    dropped = location.begin_ranged("gone.bin", len(data), stripe, Metadata(), tag="00000000-2")
    location.write_range(dropped, 0, iter([data[:stripe]]))
    location.abort_ranged(dropped)
    assert location.stat("gone.bin") is None and not location.scanned_leftovers() and not location.pending_uploads()


def test_server_side_copy_where_declared(backend):
    with backend.root("from").open() as source, backend.root("to").open() as destination:
        source.check(writable=True)
        destination.check(writable=True)
        put(source, "s.txt", b"server side", Metadata(mtime_ns=MTIME_NS))
        if not destination.capabilities.server_side_copy:
            assert destination.can_copy_from(source) is False
            return
        assert destination.can_copy_from(source)
        etag = listed(source)["s.txt"]["etag"]
        written = destination.copy_object(source, "s.txt", lambda entry: Metadata(mtime_ns=entry.mtime_ns),
                                          expect_etag=etag, overwrite=True)
        assert isinstance(written, Written) and written.size == len(b"server side")
        assert read(destination, "s.txt") == b"server side"
        assert destination.stat("s.txt").mtime_ns == source.stat("s.txt").mtime_ns
        with pytest.raises(errors.AlreadyExistsError):
            destination.copy_object(source, "s.txt", lambda entry: Metadata(), expect_etag=etag, overwrite=False)
        put(source, "s.txt", b"changed since the listing")
        with pytest.raises(errors.ChangedSinceListingError):
            destination.copy_object(source, "s.txt", lambda entry: Metadata(), expect_etag=etag, overwrite=True)
        assert read(destination, "s.txt") == b"server side"


def test_sync_and_prepare_writes_are_safe_on_every_backend(location):
    location.prepare_writes(durable=True)
    put(location, "durable.txt", b"durable")
    location.sync()  # a no-op where writes are durable when acknowledged (needs_sync False)
    assert read(location, "durable.txt") == b"durable"


# -- leftovers of killed writes (issue 13) ----------------------------------------------------------------
def test_a_live_writers_temporary_is_never_removed(location):
    """A scan meets a temporary that a writer is still writing: the cleaner keeps it (file systems: the
    writer's lock; SMB: its handle refuses deletion) and the write completes."""
    started, release, done = threading.Event(), threading.Event(), []

    def chunks() -> Iterator[bytes]:
        yield b"a" * 1000
        started.set()
        release.wait(30)
        yield b"b" * 1000

    writer = threading.Thread(target=lambda: done.append(location.write("live.bin", chunks(), Metadata(),
                                                                        tag="0badcafe-1")))
    writer.start()
    try:
        assert started.wait(30)
        assert "live.bin" not in listed(location)
        seen = location.scanned_leftovers()
        assert all(lo.kind == TEMPORARY and lo.path.startswith(TEMP_PREFIX) for lo in seen)
        cleaned = location.remove_leftovers(seen)
        assert cleaned.removed == 0 and cleaned.in_use == len(seen)
    finally:
        release.set()
        writer.join(60)
    assert done and read(location, "live.bin") == b"a" * 1000 + b"b" * 1000
    listed(location)
    assert location.scanned_leftovers() == []


def test_removing_leftovers_never_touches_user_data(location):
    put(location, "user.txt", b"mine")
    put(location, "sub/.x~ds-not-ours", b"mine too")
    cleaned = location.remove_leftovers([Leftover(TEMPORARY, "user.txt"), Leftover(TEMPORARY, "sub/.x~ds-not-ours"),
                                         Leftover(TEMPORARY, "sub")], writers_gone=True)
    assert cleaned.removed == 0
    assert read(location, "user.txt") == b"mine" and read(location, "sub/.x~ds-not-ours") == b"mine too"
    assert location.own_leftovers(["", "sub"], "0badcafe-1") == []
