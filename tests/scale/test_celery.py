"""A real Celery deployment (issue 15): PostgreSQL, Redis, scheduler, dag-processor, triggerer, api-server
and two Celery workers that share no directory (tests/scale/celery_airflow.py), running DAGs built with
``sync_task_group`` whose manifest store is an S3 prefix, between S3 and SMB locations.

What holds: an execution's shards run on both workers and verify; every phase works from the store and
XCom only (no local store anywhere); ``kill -9`` of a worker's whole process tree mid-shard has the shard
retried on the other worker, resuming from its journal in the store, nothing lost or duplicated;
``airflow backfill create`` over three days runs each day's partition; ``max_active_tis_per_dagrun``
(``parallel_shards``) and a pool bound how many tasks run at once (from the task instances' start and end);
a multi-GiB sparse file is striped, its ranges copied by both workers into one temporary that FINALIZE
publishes with the source's CRC64NVME.

DAGs: tests/scale/scale_dags.py. `make scale` runs this module (marked ``scale``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath

import pytest

from airflow_datasync.checksum import file_checksum
from tests.scale.conftest import BUCKET, WORKER_QUEUES, WORKERS, Deployment
from tests.scale.scale_dags import (
    POOL,
    POOL_SLOTS,
    SMB_QUEUE,
    SPREAD_FILES_PER_SHARD,
    SPREAD_PARALLEL_SHARDS,
    STORE_PREFIX,
    STRIPE_BYTES,
    STRIPE_THRESHOLD,
)

pytestmark = pytest.mark.scale



# -- reading the deployment's state ------------------------------------------------------------------------
def wait_runs_done(d: Deployment, dag_id: str, count: int = 1) -> list[tuple]:
    def done():
        rows = d.airflow.query("SELECT run_id, state, run_type, logical_date FROM dag_run WHERE dag_id = %s "
                               "ORDER BY logical_date NULLS LAST, run_id", dag_id)
        return rows if len(rows) >= count and all(r[1] in ("success", "failed") for r in rows) else None
    return d.airflow.wait_for(f"{count} run(s) of {dag_id} to finish", done)


def task_instances(d: Deployment, dag_id: str, run_id: str | None = None) -> list[dict]:
    cols = ("run_id", "task_id", "map_index", "state", "try_number", "hostname", "queue", "pool",
            "start_date", "end_date")
    sql = f"SELECT {', '.join(cols)} FROM task_instance WHERE dag_id = %s"
    rows = d.airflow.query(sql + (" AND run_id = %s" if run_id else ""), *((dag_id, run_id) if run_id else (dag_id,)))
    return [dict(zip(cols, r)) for r in rows]


def ran(tis: list[dict]) -> list[dict]:
    """The task instances that ran: an execution in one partition maps ``prepare_partition`` over nothing,
    which Airflow marks skipped without running it (``prepare`` lists both trees), and nothing else skips."""
    skipped = [t for t in tis if t["state"] == "skipped"]
    assert {t["task_id"] for t in skipped} <= {"sync.prepare_partition"}, skipped
    return [t for t in tis if t["state"] != "skipped"]


def max_overlap(tis: list[dict]) -> int:
    """The most task instances that ran at the same moment (start inclusive, end exclusive)."""
    events = sorted([(t["start_date"], 1) for t in tis] + [(t["end_date"], -1) for t in tis],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def store_keys(d: Deployment, prefix: str) -> list[str]:
    keys = []
    for page in d.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def store_json(d: Deployment, key: str) -> dict:
    return json.loads(d.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def launched(d: Deployment, dag_id: str, run_id: str | None = None) -> dict:
    """The launch task's XCom: the execution's place in the store (``execution``) and its connection."""
    sql = "SELECT value::text FROM xcom WHERE dag_id = %s AND task_id = 'sync.launch' AND key = 'return_value'"
    rows = d.airflow.query(sql + (" AND run_id = %s" if run_id else ""), *((dag_id, run_id) if run_id else (dag_id,)))
    if not rows:
        raise LookupError(f"{dag_id} has not launched yet")
    value = json.loads(rows[0][0])
    return json.loads(value) if isinstance(value, str) else value


def execution_prefix(d: Deployment, dag_id: str, run_id: str | None = None) -> str:
    uri = launched(d, dag_id, run_id)["execution"]
    assert uri.startswith(f"s3://{BUCKET}/{STORE_PREFIX}/"), uri
    return uri.removeprefix(f"s3://{BUCKET}/").rstrip("/")


def put_tree(d: Deployment, prefix: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        d.s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=data)


def s3_tree(d: Deployment, prefix: str) -> dict[str, bytes]:
    out = {}
    for page in d.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                out[obj["Key"][len(prefix) + 1:]] = d.s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
    return out


def disk_tree(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def generated(count: int, size: int, tag: str) -> dict[str, bytes]:
    return {f"{'sub/' if i % 3 == 0 else ''}{tag}-{i:03d}.bin": os.urandom(size) for i in range(count)}


def assert_workers_kept_nothing(d: Deployment) -> None:
    """No manifest store on any component's disk: every phase worked from the S3 store and XCom."""
    for home in [d.airflow.home, *d.airflow.workers.values()]:
        assert not (home / "datasync").exists(), home
        # The worker's TMPDIR holds only the live Celery pool's multiprocessing directory: no copy's temporary.
        leftovers = [p for p in (home / "tmp").rglob("*") if not p.relative_to(home / "tmp").parts[0].startswith("pymp-")]
        assert leftovers == [], leftovers


# -- the cases ---------------------------------------------------------------------------------------------
def test_shards_spread_over_both_workers_verify_and_use_only_the_store_and_xcom(deployment: Deployment):
    d = deployment
    source = generated(24, 8 * 1024, "f")
    put_tree(d, "spread/src", source)
    d.airflow.cli("dags", "trigger", "scale_spread")
    ((run_id, state, _, _),) = wait_runs_done(d, "scale_spread")
    tis = task_instances(d, "scale_spread", run_id)
    assert state == "success", (tis, d.airflow.task_logs("scale_spread"))

    shards = [t for t in tis if t["task_id"] == "sync.transfer"]
    assert len(shards) == len(source) // SPREAD_FILES_PER_SHARD
    assert all(t["state"] == "success" for t in ran(tis)), tis
    # Every phase ran on a Celery worker, and the shards on both of them.
    assert {t["hostname"] for t in ran(tis)} <= set(WORKERS), tis
    assert {t["hostname"] for t in shards} == set(WORKERS), shards
    assert {t["queue"] for t in tis} == {"default"}
    # parallel_shards is max_active_tis_per_dagrun: never more shards of the run at once.
    assert 1 <= max_overlap(shards) <= SPREAD_PARALLEL_SHARDS, shards

    prefix = execution_prefix(d, "scale_spread", run_id)
    report = store_json(d, f"{prefix}/report.json")
    assert report["Status"] == "SUCCESS" and report["FilesTransferred"] == len(source), report
    assert disk_tree(d.smb_disk / "spread") == source

    # What the phases handed over: the execution's place in the S3 store, never a path on a disk.
    xcoms = d.airflow.query("SELECT task_id, map_index, value::text FROM xcom WHERE dag_id = %s AND run_id = %s",
                            "scale_spread", run_id)
    assert launched(d, "scale_spread", run_id)["store_conn_id"] == "datasync_scale_s3"
    text = " ".join(v for _, _, v in xcoms)
    for root in (d.airflow.root, d.smb_disk):
        assert str(root) not in text
    keys = store_keys(d, prefix)
    assert any(k.endswith(".parquet") for k in keys), keys  # the manifests live in the store
    assert_workers_kept_nothing(d)


def journal_entries(d: Deployment, prefix: str) -> int:
    lines = 0
    for key in store_keys(d, prefix):
        if key.startswith(f"{prefix}/shards/shard-00000.journal"):
            lines += len(d.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines())
    return lines


def test_kill_9_of_a_worker_mid_shard_is_retried_on_the_other_worker_and_resumes(deployment: Deployment):
    d = deployment
    source = generated(24, 128 * 1024, "k")  # 3 MiB at 128 KiB/s: the shard copies for about 24 s
    for rel, data in source.items():
        (d.smb_disk / "kill" / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (d.smb_disk / "kill" / "src" / rel).write_bytes(data)
    d.airflow.cli("dags", "trigger", "scale_kill")

    def copying():
        (shard,) = [t for t in task_instances(d, "scale_kill") if t["task_id"] == "sync.transfer"] or [None]
        if not shard or shard["state"] != "running" or not shard["hostname"]:
            return None
        try:
            entries = journal_entries(d, execution_prefix(d, "scale_kill"))
        except LookupError:
            return None
        return (shard, entries) if entries >= 2 else None

    shard, journaled = d.airflow.wait_for("the shard to journal some files", copying)
    victim = shard["hostname"]
    killed = d.airflow.kill_worker(victim)
    assert len(killed) >= 3, killed  # the worker, its pool process, the task's supervisor and runner

    ((run_id, state, _, _),) = wait_runs_done(d, "scale_kill")
    tis = task_instances(d, "scale_kill", run_id)
    assert state == "success", (tis, d.airflow.task_logs("scale_kill"))
    (final,) = [t for t in tis if t["task_id"] == "sync.transfer"]
    (survivor,) = [w for w in WORKERS if w != victim]
    assert final["try_number"] >= 2 and final["hostname"] == survivor, final
    tries = d.airflow.query("SELECT try_number, state, hostname FROM task_instance_history WHERE dag_id = %s "
                            "AND task_id = 'sync.transfer' ORDER BY try_number", "scale_kill")
    assert tries[0][0] == 1 and tries[0][2] == victim and tries[0][1] in ("failed", "up_for_retry"), tries

    prefix = execution_prefix(d, "scale_kill")
    summary = store_json(d, f"{prefix}/shards/shard-00000.json")
    # The retry found what the killed try had journaled in the store, and copied only the rest.
    assert summary["try_number"] == final["try_number"], summary
    entries = len(source) + len({posixpath.dirname(rel) for rel in source} - {""})  # files and directories
    assert journaled <= summary["resumed"] < summary["entries"] == entries, (summary, journaled)
    report = store_json(d, f"{prefix}/report.json")
    assert report["Status"] == "SUCCESS" and report["FilesFailed"] == 0, report
    # Every file once, no temporaries, no unfinished multipart upload.
    assert s3_tree(d, "kill/dst") == source
    assert d.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert_workers_kept_nothing(d)

    d.airflow.start_worker(victim)  # the next case has both workers again
    d.airflow.wait_for(f"worker {victim} back", d.airflow.workers_ready)


def test_backfill_over_three_days_syncs_each_partition_pool_and_queue_bound_it(deployment: Deployment):
    d = deployment
    days = ["2026-01-01", "2026-01-02", "2026-01-03"]
    partitions = {day: generated(3, 4096, day) for day in [*days, "2025-12-31"]}
    for day, files in partitions.items():
        put_tree(d, f"daily/src/dt={day}", files)
    (d.smb_disk / "daily").mkdir()  # each run creates its dt= folder, inside an existing one only
    d.airflow.cli("backfill", "create", "--dag-id", "scale_daily", "--from-date", days[0], "--to-date", days[-1],
                  "--max-active-runs", "3")
    runs = wait_runs_done(d, "scale_daily", count=3)
    assert [(r[1], r[2]) for r in runs] == [("success", "backfill")] * 3, (runs, d.airflow.task_logs("scale_daily"))
    assert [r[3].astimezone(dt.UTC).date().isoformat() for r in runs] == days

    for day in days:
        assert disk_tree(d.smb_disk / "daily" / f"dt={day}") == partitions[day], day
    assert sorted(p.name for p in (d.smb_disk / "daily").iterdir()) == [f"dt={day}" for day in days]

    tis = task_instances(d, "scale_daily")
    assert {t["pool"] for t in tis} == {POOL} and all(t["state"] == "success" for t in ran(tis)), tis
    # Three runs active at once, one pool slot: never two of their tasks at the same moment.
    assert max_overlap(ran(tis)) == POOL_SLOTS, tis
    # The group's queue: only the workers that serve it ran its tasks.
    assert {t["queue"] for t in tis} == {SMB_QUEUE}
    assert {t["hostname"] for t in ran(tis)} == {w for w, queues in WORKER_QUEUES.items() if SMB_QUEUE in queues.split(",")}
    assert_workers_kept_nothing(d)


def sparse_file(path, size: int, islands: dict[int, int]) -> None:
    """A ``size``-byte file of holes, with random data of ``islands[offset]`` bytes at each offset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)
        for offset, length in islands.items():
            fh.seek(offset)
            fh.write(os.urandom(length))


def crc64nvme(path) -> str:
    with open(path, "rb", buffering=0) as fh:
        return file_checksum(fh)


def test_a_sparse_multi_gib_file_is_striped_over_both_workers_and_published_whole(deployment: Deployment):
    d = deployment
    mib = 1024**2
    size = 2 * 1024**3 + 12345  # nine ranges of 256 MiB, the last one short
    source = d.smb_disk / "stripe" / "src" / "volume.img"
    # Data across range borders, at both ends and in the middle; holes between.
    sparse_file(source, size, {0: 3 * mib, STRIPE_BYTES - mib: 2 * mib, 1100 * mib: 4 * mib,
                               size - 3 * mib - 12345: 3 * mib + 12345})
    assert source.stat().st_blocks * 512 < 64 * mib  # sparse on disk: a few MiB of data, the rest holes
    stat_before, expected = source.stat(), crc64nvme(source)
    d.airflow.cli("dags", "trigger", "scale_stripe")
    ((run_id, state, _, _),) = wait_runs_done(d, "scale_stripe")
    tis = task_instances(d, "scale_stripe", run_id)
    assert state == "success", (tis, d.airflow.task_logs("scale_stripe"))
    assert all(t["state"] == "success" for t in ran(tis)), tis

    prefix = execution_prefix(d, "scale_stripe", run_id)
    (striped,) = store_json(d, f"{prefix}/stripes.json")["files"]
    assert striped["path"] == "volume.img" and striped["size"] == size, striped
    ranges = striped["ranges"]
    assert len(ranges) == -(-size // STRIPE_BYTES) == 9 and size >= STRIPE_THRESHOLD, ranges
    assert [r["offset"] for r in ranges] == [i * STRIPE_BYTES for i in range(len(ranges))]
    assert sum(r["length"] for r in ranges) == size

    # Each range was a mapped transfer instance of its own, and both workers ran some.
    labels = dict(d.airflow.query("SELECT map_index, rendered_map_index FROM task_instance WHERE dag_id = %s "
                                  "AND run_id = %s AND task_id = 'sync.transfer'", "scale_stripe", run_id))
    range_tis = [t for t in tis if t["task_id"] == "sync.transfer" and "volume.img @" in (labels[t["map_index"]] or "")]
    assert len(range_tis) == len(ranges), (labels, tis)
    assert {t["hostname"] for t in range_tis} == set(WORKERS), range_tis
    assert 1 <= max_overlap(range_tis) <= 2, range_tis
    done = [k for k in store_keys(d, prefix) if k.startswith(f"{prefix}/stripes/range-")]
    assert sorted(int(k.rsplit("-", 1)[1].removesuffix(".json")) for k in done) == sorted(r["shard"] for r in ranges)

    report = store_json(d, f"{prefix}/report.json")
    assert report["Status"] == "SUCCESS" and report["FilesTransferred"] == 1 and report["FilesFailed"] == 0, report
    # The published file is the source, byte for byte; nothing else at the destination, no temporary left.
    published = d.smb_disk / "stripe" / "dst" / "volume.img"
    assert published.stat().st_size == size
    assert crc64nvme(published) == expected
    assert sorted(p.name for p in (d.smb_disk / "stripe").rglob("*")) == ["dst", "src", "volume.img", "volume.img"]
    # The source untouched.
    stat_after = source.stat()
    assert (stat_after.st_size, stat_after.st_mtime_ns) == (stat_before.st_size, stat_before.st_mtime_ns)
    assert_workers_kept_nothing(d)
