"""The property-based test of issue 13: random trees × random options, synced by ``engine.run_execution``,
the destination compared with what the model of DataSync semantics (tests/faults/model.py) says it must
hold, with hypothesis shrinking a failure to a small example.

Per example: a source tree (names, sizes, modes, mtimes, owners, symlinks, FIFOs), a prior destination
that overlaps it (same entries, other bytes of the same size and mtime, other sizes, times, modes, owners,
another type at the same path, extra entries), options drawn from the valid combinations. After the run:
every entry the model expects is there with the bytes and the metadata the options keep, nothing else
is (no temporary either), the status is the model's, failed entries are reported, and a second run of a
successful CHANGED execution plans nothing.

Profiles: ``make test`` runs local → local on a few dozen examples; ``make faults`` (marker ``faults``) runs
more, and local → S3 and S3 → local on SeaweedFS. ``DATASYNC_MODEL_SEED`` replays another seed,
``DATASYNC_MODEL_EXAMPLES`` scales the example counts (both are in the recorded figures).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import uuid
from dataclasses import dataclass, fields
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st

from airflow_datasync.engine import LocationSpec, run_execution
from tests.faults import model_trees as mt
from tests.faults.figures import Figure, record
from tests.faults.model import Entry, Expectation, Options, Side, Tree, expect
from tests.fixtures_servers import S3_CONN_ID

SEED = int(os.environ.get("DATASYNC_MODEL_SEED", "13"))
SCALE = float(os.environ.get("DATASYNC_MODEL_EXAMPLES", "1"))
NAMED_UIDS = {p.pw_uid for p in pwd.getpwall()}
NAMED_GIDS = {g.gr_gid for g in grp.getgrall()}


def _umask() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))


LOCAL = Side(posix_metadata=True, directory_metadata=True, default_owner=(os.geteuid(), os.getegid()),
             default_modes=(0o666 & ~_umask(), 0o777 & ~_umask()), atime_survives_reads=False,
             chown_clears_setid=True)
#: S3 keeps mode, owner and times in user metadata; directory markers lose theirs on SeaweedFS.
S3 = Side(posix_metadata=True, directory_metadata=False, atime_survives_reads=True)


@dataclass(frozen=True)
class Case:
    src: Tree
    dst: Tree
    options: Options
    engine: dict


@st.composite
def cases(draw, *, fifos: bool = True, owners=("INT_VALUE", "NAME", "BOTH", "NONE"), max_entries: int = 30,
          dirs_over_files: bool = True) -> Case:
    src = draw(mt.trees(max_entries=max_entries, fifos=fifos))
    dst = draw(mt.prior_destinations(src, dirs_over_files=dirs_over_files))
    opts = draw(mt.options(src, dst, owners=owners))
    engine = draw(mt.engine_settings)
    if opts.PreserveDeletedFiles == "REMOVE":
        # The deletion cap and the empty-source refusal are the deletion-cap cases' business: lifted here,
        # so that small random trees may delete most of a destination as the rules say.
        engine = {**engine, "max_delete_percent": 100, "allow_empty_source_delete": True}
    return Case(src, dst, opts, engine)


def differences(expected: Tree, actual: Tree) -> list[str]:
    out = []
    for path in sorted(set(expected) | set(actual)):
        e, a = expected.get(path), actual.get(path)
        if e is None:
            out.append(f"{path!r}: unexpected {a.kind} at the destination")
        elif a is None:
            out.append(f"{path!r}: {e.kind} missing at the destination")
        elif e.kind != a.kind:
            out.append(f"{path!r}: a {a.kind} where a {e.kind} was expected")
        else:
            if e.data is not None and e.data != a.data:
                out.append(f"{path!r}: content differs ({len(a.data)} bytes, {len(e.data)} expected)")
            for f in fields(Entry):
                if f.name in ("kind", "data"):
                    continue
                want, got = getattr(e, f.name), getattr(a, f.name)
                if want is not None and want != got:
                    shown = (oct(want), oct(got) if got is not None else None) if f.name == "mode" else (want, got)
                    out.append(f"{path!r}: {f.name} {shown[1]!r}, expected {shown[0]!r}")
    return out


@dataclass
class Tally:
    runs: int = 0
    files_checked: int = 0
    reruns: int = 0


class Pair:
    """Where an example's source and destination live, how to write them and read the destination back."""

    def __init__(self, name: str, base: Path, source_side: Side, destination_side: Side, bucket: str | None = None):
        self.name, self.base, self.bucket = name, base, bucket
        self.source_side, self.destination_side = source_side, destination_side

    def _root(self, tmp: Path, role: str, side: Side) -> tuple[str, str | None]:
        if side is S3:
            return f"s3://{self.bucket}/{tmp.name}/{role}", S3_CONN_ID
        return str(tmp / role), None

    def prepare(self, tmp: Path, case: Case) -> tuple[LocationSpec, LocationSpec]:
        (src_uri, src_conn), (dst_uri, dst_conn) = (self._root(tmp, "src", self.source_side),
                                                    self._root(tmp, "dst", self.destination_side))
        for uri, conn, tree in ((src_uri, src_conn, case.src), (dst_uri, dst_conn, case.dst)):
            if conn is None:
                mt.write_local(Path(uri), tree)
            else:
                mt.write_location(uri, conn, tree)
        return LocationSpec(src_uri, src_conn), LocationSpec(dst_uri, dst_conn)

    def read(self, dst: LocationSpec) -> tuple[Tree, list[str]]:
        if dst.conn_id is None:
            return mt.read_local(Path(dst.uri)), []
        return mt.read_location(dst.uri, dst.conn_id)


def failed_paths(summary: dict) -> set[str]:
    if not summary.get("ReportUri"):
        return set()
    rows = pq.read_table(summary["ReportUri"], columns=["path", "action", "status"]).to_pylist()
    return {r["path"] for r in rows if r["action"] == "error" or r["status"] == "FAILED"}


def check_example(pair: Pair, case: Case, tally: Tally) -> None:
    tmp = pair.base / uuid.uuid4().hex[:12]
    tmp.mkdir()
    try:
        src, dst = pair.prepare(tmp, case)
        want: Expectation = expect(case.src, case.dst, case.options, pair.source_side, pair.destination_side,
                                   named_uids=NAMED_UIDS, named_gids=NAMED_GIDS)
        note(f"options: {case.options.as_dict()} {case.engine}")
        note(f"model: status {want.status}, failed {sorted(want.failed)}, deleted {sorted(want.deleted)}, {want.why[:5]}")
        summary = run_execution(src, dst, {**case.options.as_dict(), **case.engine}, store=str(tmp / "store"))
        got, problems = pair.read(dst)
        diffs = problems + differences(want.tree, got)
        assert not diffs, "destination differs from the model:\n" + "\n".join(diffs[:20])
        assert summary["Status"] == want.status, (summary["Status"], summary.get("ErrorCode"),
                                                  summary.get("ErrorDetail"), want.why)
        missing = want.failed - failed_paths(summary)
        assert not missing, f"failed entries not reported as failed: {sorted(missing)}"
        if want.status == "SUCCESS":
            assert summary["FilesDeleted"] == len(want.deleted), (summary["FilesDeleted"], sorted(want.deleted))
        tally.runs += 1
        tally.files_checked += len(want.tree)
        if want.status == "SUCCESS" and case.options.TransferMode == "CHANGED":
            again = run_execution(src, dst, {**case.options.as_dict(), **case.engine}, store=str(tmp / "store"))
            assert (again["Status"], again["EstimatedFilesToTransfer"], again["FilesDeleted"]) == (
                want.status, 0, 0), f"a second run still had work: {_planned(again)}"
            tally.reruns += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _planned(summary: dict) -> list[tuple]:
    rows = pq.read_table(summary["ExecutionUri"] + "/manifest.parquet", columns=["path", "action", "reason"]).to_pylist()
    return [(r["path"], r["action"], r["reason"]) for r in rows if r["action"] != "skip"]


def _settings(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


def _run(pair: Pair, examples: int, strategy) -> Tally:
    tally = Tally()

    @_settings(examples)
    @seed(SEED)
    @given(case=strategy)
    def check(case: Case) -> None:
        check_example(pair, case, tally)

    check()
    return tally


def _record(case_id: str, pair: str, tally: Tally, notes: str = "") -> None:
    record(Figure(
        case=case_id, group="Model (property-based)",
        fault=f"random trees × random options, {pair}, against a model of DataSync semantics",
        holds="destination = model (bytes, kept metadata, deletions, nothing else, no temporaries); status and "
              "failed entries as the model says; a second CHANGED run plans nothing.",
        runs=tally.runs, faults_injected=0, files_checked=tally.files_checked, seed=SEED,
        notes=f"{tally.reruns} second runs. {notes}".strip()))


def test_model_local_to_local_quick(tmp_path_factory):
    tally = _run(Pair("local → local", tmp_path_factory.mktemp("model"), LOCAL, LOCAL), 40, cases(max_entries=15))
    assert tally.runs


@pytest.mark.faults
def test_model_local_to_local(tmp_path_factory):
    tally = _run(Pair("local → local", tmp_path_factory.mktemp("model"), LOCAL, LOCAL), 300, cases())
    _record("model/local-to-local", "local → local", tally)


@pytest.mark.faults
def test_model_local_to_s3(tmp_path_factory, bucket):
    pair = Pair("local → S3", tmp_path_factory.mktemp("model"), LOCAL, S3, bucket)
    tally = _run(pair, 25, cases(owners=("INT_VALUE", "NONE"), max_entries=20, dirs_over_files=False))
    _record("model/local-to-s3", "local → S3 (SeaweedFS)", tally,
            "Uid/Gid INT_VALUE or NONE; type changes between files and symlinks only.")


@pytest.mark.faults
def test_model_s3_to_local(tmp_path_factory, bucket):
    pair = Pair("S3 → local", tmp_path_factory.mktemp("model"), S3, LOCAL, bucket)
    tally = _run(pair, 25, cases(fifos=False, owners=("INT_VALUE", "NONE"), max_entries=20))
    _record("model/s3-to-local", "S3 (SeaweedFS) → local", tally, "Uid/Gid INT_VALUE or NONE.")
