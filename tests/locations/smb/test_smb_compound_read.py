"""SMB reads and listings in as few sends as the protocol allows, against a real smbd: a small file is
read whole by one CREATE + READ + CLOSE compound (whose create and close responses stand in for the stats
before and after a copy), a directory is listed by one CREATE + QUERY_DIRECTORY ×2 + CLOSE compound, and
a re-run with nothing changed sends nothing per file. The sends are counted at smbprotocol's
``LeanConnection._send`` (one call per TCP message, a compound being one)."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_datasync import checksum
from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations.base import TEMP_PREFIX
from airflow_datasync.locations.smb import SmbLocation, reset_pools, sessions
from airflow_datasync.locations.smb.dir_query import LOOKAHEAD, list_directory
from airflow_datasync.locations.smb.receive import LeanConnection
from airflow_datasync.locations.smb.whole_read import SMALL_FILE_BYTES
from tests.in_flight import being_written

from .conftest import CONN_ID

MIB = 1 << 20
SETUP = {"SMB3Negotiate", "SessionSetup", "TreeConnect", "Negotiate", "Echo"}
READ_COMPOUND = ("Create", "Read", "Close")
LIST_COMPOUND = ("Create", "QueryDirectory", "QueryDirectory", "Close")


class Sends:
    """Every ``LeanConnection._send`` while installed: the commands of each send, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, ...]] = []
        self._lock = threading.Lock()

    def record(self, messages) -> None:
        names = tuple(type(m).__name__.removeprefix("SMB2").removesuffix("Request") for m in messages)
        with self._lock:
            self.log.append(names)

    def clear(self) -> None:
        with self._lock:
            self.log.clear()

    def work(self) -> list[tuple[str, ...]]:
        """The sends other than session set-up."""
        return [s for s in self.log if not set(s) <= SETUP]

    def kinds(self) -> Counter:
        return Counter(self.work())


@pytest.fixture
def sends(monkeypatch) -> Sends:
    counted = Sends()
    original = LeanConnection._send  # our connections' own framing, smbprotocol's behind it

    def _send(self, messages, *args, **kwargs):
        counted.record(messages)
        return original(self, messages, *args, **kwargs)

    monkeypatch.setattr(LeanConnection, "_send", _send)
    return counted


def crc(data: bytes) -> str:
    h = checksum.new_hasher()
    h.update(data)
    return h.hexdigest()


def seed(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def tree_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run(src, dst, store: Path, options=None) -> dict:
    return run_execution(src, dst, options or {}, store=str(store))


def test_small_files_are_read_in_one_send_and_larger_ones_stream(smb_folder, sends):
    folder = smb_folder()
    rng = random.Random(14)
    sizes = {"empty": 0, "one": 1, "small": 4096, "at-limit": SMALL_FILE_BYTES, "over-limit": SMALL_FILE_BYTES + 1,
             "multi-mib": 3 * MIB + 17}
    payloads = {name: rng.randbytes(size) for name, size in sizes.items()}
    seed(folder.disk, payloads)
    loc = SmbLocation(folder.uri, CONN_ID)
    assert loc.stat("empty") is not None  # the session is set up before the counting starts
    for name, payload in payloads.items():
        sends.clear()
        with loc.open_read(name) as fh:
            data = fh.read()
        assert data == payload, name
        if len(payload) <= SMALL_FILE_BYTES:
            assert sends.work() == [READ_COMPOUND], (name, sends.work())
        else:  # the compound told the size; the rest streams from offset 0
            assert sends.work()[0] == READ_COMPOUND and len(sends.work()) > 1, (name, sends.work())
        with loc.open_read(name) as fh:
            assert checksum.file_checksum(fh) == crc(payload), name


def test_a_copy_from_smb_sends_one_compound_per_small_file(smb_folder, sends, tmp_path):
    folder = smb_folder()
    files = {f"d{d}/f{i:03d}.bin": os.urandom(100 + i) for d in range(2) for i in range(40)}
    files["empty.bin"] = b""
    seed(folder.disk, files)
    # (Samba answers a new file's first open with its birth time, later ones with the time it then stored.)
    unchanged = SmbLocation(folder.uri, CONN_ID).stat("d0/f000.bin")
    opened = SmbLocation(folder.uri, CONN_ID).open_for_copy("d0/f000.bin")  # as the copy sees a file
    sends.clear()
    assert (opened.before.size, opened.before.mtime_ns) == (unchanged.size, unchanged.mtime_ns)
    after = opened.after()  # (reading moved the access time: the copy keeps the one seen at open)
    assert (after.size, after.mtime_ns) == (opened.before.size, opened.before.mtime_ns)
    assert opened.before.extras == unchanged.extras
    assert sends.work() == []  # the close response told it: no stat after the read

    out = run(LocationSpec(folder.uri, folder.conn_id), str(tmp_path / "dst"), tmp_path / "store",
              {"VerifyMode": "POINT_IN_TIME_CONSISTENT"})
    assert out["Status"] == "SUCCESS", out
    assert tree_of(tmp_path / "dst") == files
    kinds = sends.kinds()
    # POINT_IN_TIME_CONSISTENT takes the source checksum of a file this execution just copied from the copy
    # while the listing still shows the size and mtime the copy read (phases/verify_listings.py): one read each.
    assert kinds[READ_COMPOUND] == len(files), kinds
    assert not any("Read" in s for s in kinds if s != READ_COMPOUND), kinds
    per_file = sum(n for s, n in kinds.items() if s not in (READ_COMPOUND, LIST_COMPOUND))
    assert per_file <= 4, kinds  # the location checks (a stat or two of the root), nothing per file


def test_a_file_changing_during_a_copy_from_smb_is_not_published(smb_folder, tmp_path):
    folder = smb_folder()
    big = 4 * MIB  # streamed: bigger than one READ
    v1, v2 = random.Random(1).randbytes(big), random.Random(2).randbytes(big)
    seed(folder.disk, {"big.bin": v1, "a.txt": b"alpha"})
    dst, store = tmp_path / "dst", tmp_path / "store"
    assert run(LocationSpec(folder.uri, folder.conn_id), str(dst), store)["Status"] == "SUCCESS"
    (folder.disk / "big.bin").write_bytes(v2)
    (folder.disk / "a.txt").write_bytes(b"alpha 2")  # small: read whole, its new version published

    fired = threading.Event()
    stop = threading.Event()

    def change_when_copying() -> None:
        while not stop.is_set():
            if being_written(dst, str(os.getpid())) >= MIB:
                with open(folder.disk / "big.bin", "r+b") as fh:  # in place, as another writer
                    fh.seek(big - MIB)
                    fh.write(b"\xee" * MIB)
                fired.set()
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=change_when_copying, daemon=True)
    watcher.start()
    out = run(LocationSpec(folder.uri, folder.conn_id), str(dst), store, {"BytesPerSecond": MIB})
    stop.set()
    watcher.join()
    assert fired.is_set(), "the copy ended before the change could land"
    rows = {r["path"]: r for r in pq.read_table(out["ReportUri"]).to_pylist()}
    assert rows["big.bin"]["status"] == "FAILED" and "changed during the copy" in rows["big.bin"]["error"], rows
    assert (dst / "big.bin").read_bytes() == v1 and (dst / "a.txt").read_bytes() == b"alpha 2"
    assert list(dst.glob(f"{TEMP_PREFIX}*")) == []
    again = run(LocationSpec(folder.uri, folder.conn_id), str(dst), store)
    assert again["Status"] == "SUCCESS", again
    assert tree_of(dst) == tree_of(folder.disk)


def test_directories_are_listed_in_one_send_and_long_ones_completely(smb_folder, sends):
    folder = smb_folder()
    names = ["café ✓.txt", "日本語.bin", "emoji 😀.txt", "plain.txt", "Ünïcödé-ß.dat"]
    seed(folder.disk, {f"few/{n}": n.encode() for n in names})
    many = {f"many/a-file-with-a-rather-longer-name-{i:05d}.dat": b"x" * (i % 7) for i in range(3000)}
    seed(folder.disk, many)  # ~3000 × 160 bytes of entries: more than the first compound's two buffers
    loc = SmbLocation(folder.uri, CONN_ID)
    assert loc.stat("") is not None

    sends.clear()
    entries = loc._call(lambda: list_directory(loc._unc("few"), loc._kw()))
    assert sends.work() == [LIST_COMPOUND]
    listed = {e[0].decode("utf-16-le", "surrogatepass") for e in entries} - {".", ".."}
    assert listed == set(names)

    sends.clear()
    rows = [r for batch in loc.scan(batch_size=1000) for r in batch.to_pylist()]
    by_path = {r["path"]: r for r in rows}
    assert {f"few/{n}" for n in names} <= set(by_path)
    assert {p: by_path[p]["size"] for p in many} == {p: len(d) for p, d in many.items()}
    assert len(rows) == 2 + len(names) + len(many)  # the two directories, and every file once
    assert sends.kinds()[LIST_COMPOUND] == 3  # root, few, many (many then streamed on its own)


def test_lean_query_directory_packs_as_smbprotocol_does():
    """The listing compound's QUERY_DIRECTORY gives smbprotocol's bytes (and what its credit charge reads)."""
    from smbprotocol.open import SMB2QueryDirectoryRequest

    from airflow_datasync.locations.smb import messages

    for restart, size, pattern in ((True, 65536, "*"), (False, 1 << 20, "*"), (True, 4096, "ünï*")):
        ref = SMB2QueryDirectoryRequest()
        ref["file_information_class"] = 0x26
        ref["flags"] = 1 if restart else 0
        ref["file_id"] = messages.RELATED_FILE_ID
        ref["output_buffer_length"] = size
        ref["buffer"] = pattern.encode("utf-16-le")
        lean = messages.query_directory_request(0x26, restart=restart, output_size=size, pattern=pattern)
        assert lean.pack() == ref.pack() and lean.COMMAND == ref.COMMAND and len(lean) == len(ref)
        assert len(lean["buffer"]) == len(ref["buffer"])
        assert lean["output_buffer_length"].get_value() == size
        assert isinstance(type(lean)(), SMB2QueryDirectoryRequest)  # what a sent request rehydrates to


def _listings_in_flight(connection) -> int:
    """Listing compounds sent whose answers nobody has read yet (smbprotocol keeps a request outstanding until
    its response is read)."""
    return sum(1 for r in list(connection.outstanding_requests.values())
               if type(r.message).__name__ != "SMB2Echo" and r.message["command"].get_value() == 0x0005)


def test_a_scan_sends_the_next_directories_before_it_reads_them(smb_folder, monkeypatch):
    """The next directories' compounds go out before the scan waits for the one it reads: several listings
    in flight at once, still one compound per directory, every entry listed once, nothing left outstanding."""
    folder = smb_folder()
    files = {f"d{d:02d}/f{i}.bin": b"x" * i for d in range(20) for i in range(3)}
    seed(folder.disk, files)
    seed(folder.disk, {"d05/sub/deeper.bin": b"deep"})
    loc = SmbLocation(folder.uri, CONN_ID)
    assert loc.stat("") is not None
    in_flight: list[int] = []
    original = LeanConnection._send

    def _send(self, messages, *args, **kwargs):
        if tuple(type(m).__name__.removeprefix("SMB2").removesuffix("Request") for m in messages) == LIST_COMPOUND:
            in_flight.append(_listings_in_flight(self) + 1)
        return original(self, messages, *args, **kwargs)

    monkeypatch.setattr(LeanConnection, "_send", _send)
    rows = [r for batch in loc.scan() for r in batch.to_pylist()]
    assert sorted(r["path"] for r in rows if r["type"] == "file") == sorted([*files, "d05/sub/deeper.bin"])
    assert len(in_flight) == 1 + 20 + 1  # the root, its directories, d05/sub: one compound each
    assert max(in_flight) >= 2, in_flight
    assert max(in_flight) <= LOOKAHEAD + 1, in_flight
    connection = next(iter(loc._session().connection.outstanding_requests.values()), None)
    assert connection is None  # every answer read


def test_a_scan_read_on_another_thread_lists_on_the_session_of_the_thread_that_started_it(smb_folder, sends):
    """PREPARING starts both scans on its thread and reads them on threads of their own: the SMB one goes on
    the session LAUNCHING opened there, not on a connection of the reading thread's lane."""
    folder = smb_folder()
    seed(folder.disk, {f"d{d}/f.bin": b"x" for d in range(5)})
    loc = SmbLocation(folder.uri, CONN_ID)
    reset_pools()
    assert loc.stat("") is not None  # this thread's session
    sends.clear()
    scan = loc.scan()
    rows: list[int] = []

    def read_elsewhere() -> None:
        sessions.use_lane((sessions.current_lane() + 1) % sessions.MAX_LANES)  # a lane with no connection yet
        rows.extend(batch.num_rows for batch in scan)

    reader = threading.Thread(target=read_elsewhere)
    reader.start()
    reader.join()
    assert sum(rows) == 10
    assert not [s for s in sends.log if set(s) & SETUP - {"Echo"}], sends.log  # no new connection, no new session


def test_a_scan_ended_early_leaves_no_listing_outstanding(smb_folder):
    folder = smb_folder()
    seed(folder.disk, {f"d{d:02d}/f.bin": b"x" for d in range(30)})
    loc = SmbLocation(folder.uri, CONN_ID)
    scan = loc.scan(batch_size=35)  # the first batch: the root's 30 directories and the files of 5 of them
    assert next(scan).num_rows == 35
    assert _listings_in_flight(loc._session().connection) >= 1  # the next directories, sent ahead
    scan.close()
    assert _listings_in_flight(loc._session().connection) == 0
    assert loc.stat("d00/f.bin") is not None  # the connection serves on


def test_a_scan_survives_a_connection_dropped_with_listings_in_flight(smb_folder, drop_connections):
    folder = smb_folder()
    files = {f"d{d:02d}/f{i}.bin": b"y" * i for d in range(30) for i in range(2)}
    seed(folder.disk, files)
    loc = SmbLocation(folder.uri, CONN_ID)
    scan = loc.scan(batch_size=35)
    rows = next(scan).to_pylist()
    assert _listings_in_flight(loc._session().connection) >= 1
    assert drop_connections() >= 1  # the compounds sent ahead die with it
    rows += [r for batch in scan for r in batch.to_pylist()]
    assert sorted(r["path"] for r in rows if r["type"] == "file") == sorted(files)
    assert not [r for r in rows if r["error"]]


@pytest.mark.parametrize("direction", ["local-to-smb", "smb-to-local"])
def test_a_rerun_with_nothing_changed_sends_nothing_per_file(smb_folder, sends, tmp_path, direction):
    folder = smb_folder()
    local = tmp_path / "local"
    files = {f"d{d}/f{i:03d}.bin": os.urandom(64) for d in range(3) for i in range(50)}
    seed(local if direction == "local-to-smb" else folder.disk, files)
    smb = LocationSpec(folder.uri, folder.conn_id)
    src, dst = (str(local), smb) if direction == "local-to-smb" else (smb, str(local))
    store = tmp_path / "store"
    assert run(src, dst, store)["Status"] == "SUCCESS"
    reset_pools()  # a fresh process's pools: the re-run opens what it needs
    sends.clear()
    out = run(src, dst, store)
    assert out["Status"] == "SUCCESS" and out["FilesTransferred"] == 0, out
    # One connection: the listing runs on a thread of its own beside the other side's, on the session
    # LAUNCHING opened.
    assert sum(1 for s in sends.log if {"SMB3Negotiate", "Negotiate"} & set(s)) == 1, sends.log
    kinds = sends.kinds()
    assert kinds[LIST_COMPOUND] == 4, kinds  # the root and its three directories
    others = sum(n for s, n in kinds.items() if s != LIST_COMPOUND)
    assert others <= 4, kinds  # the location checks; nothing per file


def test_reads_survive_dropped_connections(smb_folder, drop_connections, tmp_path):
    folder = smb_folder()
    files = {f"d{d}/f{i:03d}.bin": os.urandom(2000 + i) for d in range(4) for i in range(100)}
    seed(folder.disk, files)
    loc = SmbLocation(folder.uri, CONN_ID)
    assert loc.open_read("d0/f000.bin").read() == files["d0/f000.bin"]
    assert drop_connections() >= 1
    assert loc.open_read("d0/f001.bin").read() == files["d0/f001.bin"]  # re-connected, the compound sent again

    dropping = threading.Event()

    def drop_while_copying() -> None:
        for _ in range(6):
            if dropping.wait(0.15):
                return
            drop_connections()

    dropper = threading.Thread(target=drop_while_copying, daemon=True)
    dropper.start()
    dst, store = tmp_path / "dst", tmp_path / "store"
    first = run(LocationSpec(folder.uri, folder.conn_id), str(dst), store)
    dropping.set()
    dropper.join()
    assert first["Status"] in ("SUCCESS", "ERROR"), first
    out = first
    for _ in range(3):  # entries a drop failed for good are copied by the next run
        if out["Status"] == "SUCCESS":
            break
        out = run(LocationSpec(folder.uri, folder.conn_id), str(dst), store)
    assert out["Status"] == "SUCCESS", out
    assert tree_of(dst) == files
    assert list(dst.rglob(f"{TEMP_PREFIX}*")) == []


def test_a_handle_left_open_by_a_failed_compound_is_closed_by_its_id(smb_folder):
    """Windows fails a related CLOSE after a failed READ or QUERY_DIRECTORY (MS-SMB2 3.3.5.2.7.2); the
    handle is then closed on its own. Samba runs such a CLOSE, so the close by id is exercised directly: a
    handle that shares nothing is released (another exclusive open succeeds) and tells the attributes."""
    from airflow_datasync.locations.smb.protocol import create_exclusive
    from airflow_datasync.locations.smb.whole_read import close_by_id

    folder = smb_folder()
    loc = SmbLocation(folder.uri, CONN_ID)
    raw = create_exclusive(loc._unc("held.bin"), 0, loc._kw())
    raw.write(b"12345")
    state = close_by_id(raw.fd)
    assert state is not None and state.size == 5
    again = create_exclusive(loc._unc("held.bin"), 0, loc._kw())  # a sharing violation if still held
    again.close()
