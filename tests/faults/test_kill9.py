"""kill -9 of a running phase at seeded random moments, then a retry (issue 13, the fault suite's first case).

TRANSFERRING: one shard over a tree of mixed sizes, killed attempt after attempt at points drawn in
(0, the shard's unkilled duration), each retry the same shard as Airflow would run it, then a retry to
the end. After every kill: every file at a final name is whole and the source's bytes. After the retry:
every source file there, no temporary, no unfinished multipart upload, and FINALIZE + VERIFYING + the
report give SUCCESS. Then the same for a kill during PREPARING and during FINALIZE.
"""

from __future__ import annotations

import random
import signal
import uuid
from pathlib import Path

import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec
from tests.faults.figures import Figure, record
from tests.faults.killing import (
    DestinationView,
    DirectoryView,
    S3View,
    Tally,
    Zygote,
    changed_tree,
    check_converged,
    finish_execution,
    kill_delays,
    kill_shard_then_retry,
    mixed_tree,
)
from tests.fixtures_servers import S3_CONN_ID, SMB_CONN_ID

#: Bytes per second of every attempt (the BytesPerSecond option): a shard lasts a few seconds, so kills land
#: in the middle of multi-MiB writes and multipart uploads rather than after them.
RATE = 20 << 20
#: Multipart on S3 above 5 MiB (the smallest part S3 allows): the big file goes in three parts, the 6 MiB one
#: in two.
S3_PART = "5MiB"
SEEDS = {"local": 1301, "s3": 1302, "smb": 1303, "phases": 1304}
KILLS_PER_KIND = 21
KILLS_PER_EXECUTION = 7
HOLDS = ("after each kill: every file at a final name whole, the source's bytes or (an update) its old version's; "
         "after the retry: every file byte-identical, no `.~ds-*` temporary, no unfinished multipart upload, "
         "verify SUCCESS")


class Destinations:
    """Fresh destinations of one kind: ``make()`` → (LocationSpec, a view of what it holds). The servers'
    fixtures are resolved here, before any child is forked: they put the connections in the environment."""

    def __init__(self, kind: str, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.kind, self.tmp = kind, tmp
        if kind == "s3":
            self.bucket, self.s3 = request.getfixturevalue("bucket"), request.getfixturevalue("s3")
        elif kind == "smb":
            self.smb_folder = request.getfixturevalue("smb_folder")

    def make(self) -> tuple[LocationSpec, DestinationView]:
        name = f"d-{uuid.uuid4().hex[:8]}"
        if self.kind == "local":
            (self.tmp / name).mkdir()
            return LocationSpec(str(self.tmp / name)), DirectoryView(self.tmp / name)
        if self.kind == "s3":
            return (LocationSpec(f"s3://{self.bucket}/{name}?part_size={S3_PART}", S3_CONN_ID),
                    S3View(self.s3, self.bucket, name))
        folder = self.smb_folder()
        return LocationSpec(folder.uri, SMB_CONN_ID), DirectoryView(folder.disk, "smb")


def _launch(src: Path, dst: LocationSpec, store: Path, options: dict | None = None):
    return engine.launch(LocationSpec(str(src)), dst, {"BytesPerSecond": RATE, **(options or {})}, store=str(store))


def run_kill_case(kind: str, tmp_path: Path, request: pytest.FixtureRequest, *, kills: int,
                  per_execution: int, tree: dict) -> tuple[Tally, float, int]:
    """The TRANSFERRING kill case for one destination kind; returns the tally, the unkilled shard's
    duration and the seed."""
    seed = SEEDS[kind]
    print(f"kill9/{kind}: seed {seed}")
    rng = random.Random(seed)
    src = tmp_path / "src"
    source = mixed_tree(src, rng, **tree)
    destinations = Destinations(kind, tmp_path, request)
    tally = Tally()
    with Zygote(tmp_path / "logs") as zygote:
        # The unkilled duration, once, on a destination of its own: the kill points are drawn within it.
        dst, view = destinations.make()
        execution = _launch(src, dst, tmp_path / "store")
        (shard,) = engine.prepare(execution)
        duration = zygote.run_to_end("transfer", execution, shard["shard"])
        assert finish_execution(execution)["Status"] == "SUCCESS"
        calibrated = check_converged(view, source)
        assert not (calibrated.lost or calibrated.corrupt), calibrated
        # Every other execution updates the destination the last one converged: the source's files change
        # (same sizes, later mtimes) and are copied again over their old versions, which a kill must leave
        # whole. The others start from an empty destination.
        update = True
        while tally.kills < kills:
            # The first attempt of an execution is always killed (its delay is below the unkilled duration).
            assert tally.executions < kills, f"kills did not land: {tally}"
            previous = None
            if update:
                previous, source = source, changed_tree(src, source, rng)
                tally.updates += 1
            else:
                dst, view = destinations.make()
            update = not update
            execution = _launch(src, dst, tmp_path / "store")
            (shard,) = engine.prepare(execution)
            delays = kill_delays(rng, duration, min(per_execution, kills - tally.kills))
            summary = kill_shard_then_retry(zygote, execution, shard["shard"], view, source, delays, tally, previous)
            assert summary["Status"] == "SUCCESS", (summary, (tmp_path / "logs"))
    print(f"kill9/{kind}: {tally}")
    return tally, duration, seed


def assert_held(tally: Tally, *, leftovers: bool = True) -> None:
    assert not tally.partial, f"partial files at a final name after a kill: {tally.partial}"
    assert not tally.lost, f"files lost after the retry: {tally.lost}"
    assert not tally.corrupt, f"files not the source's bytes after the retry: {tally.corrupt}"
    assert set(tally.statuses) == {"SUCCESS"}, tally.statuses
    if leftovers:
        assert not tally.leftovers, f"left behind after the retry: {tally.leftovers}"


def record_kill_case(case: str, kind: str, tally: Tally, duration: float, seed: int) -> None:
    record(Figure(
        case=case, group="Process kills",
        fault=f"kill -9 of the TRANSFERRING shard process ({kind} destination) at seeded random moments, "
              "then a retry of the same shard",
        holds=HOLDS, runs=tally.executions, faults_injected=tally.kills, files_checked=tally.files_checked,
        lost=len(tally.lost), corrupt=len(tally.corrupt), partial=len(tally.partial), leftovers=len(tally.leftovers),
        converge_s=tally.median_converge_s, seed=seed,
        notes=(f"({tally.executions} executions, {tally.updates} of them updates over the last one's files; "
               f"{tally.attempts} attempts, {tally.finished_before_kill} of them done before their kill point; "
               f"unkilled shard {duration:.1f} s at {RATE >> 20} MiB/s; converge: from an execution's last kill "
               f"to its verified destination; at most {tally.most_leftovers_after_a_kill} temporaries/uploads "
               "right after a kill)")))


def test_kill9_quick_local(tmp_path, request):
    """Three kills of a small local shard: the harness, in ``make test``."""
    tally, duration, seed = run_kill_case("local", tmp_path, request, kills=3, per_execution=3,
                                          tree={"small": 30, "mid_mib": (3,), "big_mib": 4})
    assert_held(tally)
    assert tally.kills == 3
    record_kill_case("kill9/local-quick", "local", tally, duration, seed)


@pytest.mark.faults
@pytest.mark.parametrize("kind", ["local", "s3", "smb"])
def test_kill9_transfer(kind, tmp_path, request):
    tally, duration, seed = run_kill_case(kind, tmp_path, request, kills=KILLS_PER_KIND,
                                          per_execution=KILLS_PER_EXECUTION, tree={})
    assert_held(tally)
    assert tally.kills >= 20
    record_kill_case(f"kill9/{kind}", kind, tally, duration, seed)


# -- PREPARING and FINALIZE -------------------------------------------------------------------------------
def _with_extras(dst: Path, rng: random.Random, count: int) -> None:
    """Files at the destination that the source does not have: what REMOVE deletes in FINALIZE."""
    for i in range(count):
        path = dst / f"old{i % 20}" / f"x{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(64))


#: Deletions FINALIZE makes (PreserveDeletedFiles=REMOVE), each an unlink: it lasts long enough to be killed.
EXTRAS = 400
PHASE_KILLS = 2  #: kills that must land in each of PREPARING and FINALIZE


@pytest.mark.faults
def test_kill9_phases(tmp_path):
    """kill -9 during PREPARING and during FINALIZE (REMOVE with deletions to make), then the phase again."""
    seed = SEEDS["phases"]
    print(f"kill9/phases: seed {seed}")
    rng = random.Random(seed)
    src = tmp_path / "src"
    source = mixed_tree(src, rng, small=300, mid_mib=(), big_mib=0)
    store, options = tmp_path / "store", {"PreserveDeletedFiles": "REMOVE", "BytesPerSecond": -1,
                                           "max_delete_percent": 100}  # the deletions are the point here
    tally, kills, made = Tally(), {"prepare": 0, "finalize": 0}, iter(range(1000))

    def fresh() -> tuple[object, DirectoryView]:
        dst = tmp_path / f"dst{next(made)}"
        _with_extras(dst, rng, EXTRAS)
        return _launch(src, LocationSpec(str(dst)), store, options), DirectoryView(dst)

    def transferred(execution) -> None:
        (shard,) = engine.prepare(execution)
        engine.transfer(execution, shard["shard"])

    with Zygote(tmp_path / "logs") as zygote:
        # Unkilled durations, once each, on an execution of their own.
        execution, _view = fresh()
        prepare_s = zygote.run_to_end("prepare", execution)
        transferred(execution)  # PREPARING again, in this process: it hands out the shards
        finalize_s = zygote.run_to_end("finalize", execution)
        engine.verify(execution)
        assert engine.report(execution)["Status"] == "SUCCESS"
        durations = {"prepare": prepare_s, "finalize": finalize_s}
        for phase in ("prepare", "finalize"):
            while kills[phase] < PHASE_KILLS:
                assert tally.executions < 4 * PHASE_KILLS, f"kills in {phase} did not land: {kills}"
                execution, view = fresh()
                tally.executions += 1
                if phase == "finalize":
                    transferred(execution)
                before = sorted(rel for rel, _read in view.files())
                child = zygote.run(phase, execution)
                rc = zygote.wait(child, rng.uniform(0.0, durations[phase]))
                if rc is None:
                    rc, _at = zygote.kill(child)
                if rc == -signal.SIGKILL:
                    kills[phase] += 1
                else:
                    assert rc == 0, child.output()
                if phase == "prepare":  # PREPARING only reads the destination, killed or not
                    assert sorted(rel for rel, _read in view.files()) == before
                    assert not view.temporaries()
                    transferred(execution)  # the phase again, as its retried task would run it; then the shard
                summary = finish_execution(execution)  # FINALIZE (again, after its kill), VERIFYING, report
                assert summary["Status"] == "SUCCESS", summary
                tally.statuses.append(summary["Status"])
                tally.add(check_converged(view, source))
    assert_held(tally)
    record(Figure(
        case="kill9/phases", group="Process kills",
        fault=f"kill -9 of the PREPARING or FINALIZE process (local destination, REMOVE with {EXTRAS} deletions) "
              "at a seeded random moment, then the phase again",
        holds="PREPARING leaves the destination untouched; the execution ends SUCCESS with exactly the source's "
              "files at the destination (every deletion done), no temporary",
        runs=tally.executions, faults_injected=sum(kills.values()), files_checked=tally.files_checked,
        lost=len(tally.lost), corrupt=len(tally.corrupt), leftovers=len(tally.leftovers), seed=seed,
        notes=f"({kills['prepare']} kills in PREPARING of {prepare_s:.2f} s, {kills['finalize']} in FINALIZE of "
              f"{finalize_s:.2f} s; {tally.executions - sum(kills.values())} phases ended before their kill point)"))
