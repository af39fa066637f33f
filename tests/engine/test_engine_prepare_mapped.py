"""PREPARING over partitions of the key space (option prepare_partitions): LAUNCHING groups the top-level
names, each partition task lists only its names on both sides and plans them, one step collects them
into the execution's manifest. Real trees on the local file system and on S3 (SeaweedFS); every result
is compared with the same execution listed in one partition."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_datasync.engine import LocationSpec, launch, prepare, prepare_partition, run_execution
from airflow_datasync.locations.base import LISTING_SCHEMA
from airflow_datasync.phases import key_space
from airflow_datasync.phases.deletion_cap import DeletionCapError
from airflow_datasync.phases.key_space import group_names, part_file, read_partitions
from tests.engine.test_engine_prepare_partitioned import (
    OPTIONS,
    TIMING,
    build_destination,
    build_source,
    by_path,
    check_shards,
    same_record,
)

PARTITION_FIELDS = TIMING + ("partitions",)


@pytest.fixture
def trees(tmp_path):
    src = build_source(tmp_path / "src", odd=True)
    return src, build_destination(src, tmp_path / "dst")


def launched(src, dst, store, options, conn_ids=(None, None)):
    return launch(LocationSpec(str(src), conn_ids[0]), LocationSpec(str(dst), conn_ids[1]), options,
                  task_name="mapped", store=str(store))


def prepared_in_tasks(execution, max_shards: int | None = None):
    """As the DAG runs it: one prepare_partition per partition, then prepare."""
    record = json.loads(Path(execution.file("partitions.json")).read_text())
    results = [prepare_partition(execution, i) for i in range(record["count"])]
    shards = prepare(execution, max_shards=max_shards)
    return record, results, shards, pq.read_table(execution.manifest), execution.read_json(execution.prepare)


def top(path: str) -> str:
    return path.split("/", 1)[0]


def test_partitions_list_only_their_names_and_plan_as_one_listing(trees, store):
    src, dst = trees
    one = launched(src, dst, store, OPTIONS)
    whole_shards = prepare(one)
    whole, whole_record = pq.read_table(one.manifest), one.read_json(one.prepare)

    ex = launched(src, dst, store, {**OPTIONS, "prepare_partitions": 4})
    record, results, shards, parted, prepared = prepared_in_tasks(ex)
    assert record["count"] == 4 and len(results) == 4
    names = read_partitions(ex)
    assert sorted(n for part in names for n in part) == sorted({top(p) for p in os.listdir(src)} | set(os.listdir(dst)))
    # The files directly below the roots form a partition of their own.
    assert names[-1] == sorted(n for n in set(os.listdir(src)) | set(os.listdir(dst)) if not (src / n).is_dir()
                               and not (dst / n).is_dir())
    for i, part in enumerate(names):
        for side in ("source", "destination"):
            listed = ex.read_table(part_file(ex, i, f"{side}.parquet"), LISTING_SCHEMA)["path"].to_pylist()
            assert {top(p) for p in listed} <= {n.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                                                for n in part}, (i, side)
    # Every entry listed exactly once over the partitions, as the one listing lists them.
    for side in ("source", "destination"):
        listing = ex.read_table(getattr(ex, f"{side}_listing"), LISTING_SCHEMA)
        alone = one.read_table(getattr(one, f"{side}_listing"), LISTING_SCHEMA)
        assert Counter(listing["path"].to_pylist()) == Counter(alone["path"].to_pylist())

    assert by_path(parted) == by_path(whole)
    assert same_record(prepared, whole_record, PARTITION_FIELDS) and prepared["partitions"] == 4
    # Shards cut over the partitions as over one plan (rows in partition order, so other rows per shard).
    assert [s["files"] for s in shards] == [s["files"] for s in whole_shards]
    check_shards(ex, shards, parted, prepared)


def test_run_execution_in_partitions_deletes_across_them_and_converges(tmp_path, store, snapshot):
    src = build_source(tmp_path / "src")
    dst = build_destination(src, tmp_path / "dst")
    options = {**OPTIONS, "prepare_partitions": 3}
    summary = run_execution(str(src), str(dst), options, store=str(store), task_name="mapped")
    assert summary["Status"] == "SUCCESS", summary
    assert summary["FilesDeleted"] == 4  # t5/old.txt, gone, gone/x, gone/x/y.txt: two partitions
    (execution,) = [p for p in (store / "mapped").iterdir()]
    assert json.loads((execution / "partitions.json").read_text())["count"] == 3
    assert not (dst / "gone").exists() and not (dst / "t5" / "old.txt").exists()

    def excluded(path: str) -> bool:
        return path.endswith(".tmp") or path == "skipme" or path.startswith("skipme/")
    assert {p: v for p, v in snapshot(dst).items() if not excluded(p)} == \
        {p: v for p, v in snapshot(src).items() if not excluded(p)}
    again = run_execution(str(src), str(dst), options, store=str(store), task_name="mapped")
    assert again["Status"] == "SUCCESS" and again["EstimatedFilesToTransfer"] == again["FilesDeleted"] == 0


def test_the_deletion_cap_counts_the_deletions_of_all_partitions(trees, store):
    src, dst = trees
    ex = launched(src, dst, store, {**OPTIONS, "prepare_partitions": 4, "max_deletes": 3})
    parts = read_partitions(ex)
    deleting = [i for i, part in enumerate(parts) if {"gone", "t5"} & set(part)]
    assert len(deleting) == 2  # 3 deletions below gone/, 1 below t5/: no partition alone exceeds the cap
    for i in range(len(parts)):
        prepare_partition(ex, i)
    with pytest.raises(DeletionCapError, match="would delete 4 entries, more than max_deletes=3"):
        prepare(ex)
    assert ex.read_json(ex.prepare) is None and ex.read_json(ex.prepare_refused)["EstimatedFilesToDelete"] == 4


def test_small_shards_of_all_partitions_merge_to_fit_max_shards(trees, store):
    src, dst = trees
    options = {**OPTIONS, "files_per_shard": 1}
    one = launched(src, dst, store, options)
    whole_shards = prepare(one, max_shards=3)
    ex = launched(src, dst, store, {**options, "prepare_partitions": 4})
    record, _results, shards, parted, prepared = prepared_in_tasks(ex, max_shards=3)
    assert record["count"] == 4
    assert len(shards) == prepared["shard_count"] <= 3 < prepared["EstimatedFilesToTransfer"]
    assert [s["files"] for s in shards] == [s["files"] for s in whole_shards]
    # A shard holds rows of several partitions.
    tops: dict[int, set[str]] = {}
    for row in parted.select(["path", "shard"]).to_pylist():
        tops.setdefault(row["shard"], set()).add(top(row["path"]))
    assert any(len({i for i, part in enumerate(read_partitions(ex)) if set(part) & t}) > 1
               for shard, t in tops.items() if shard >= 0)
    check_shards(ex, shards, parted, prepared)


@pytest.mark.parametrize(("options", "reason"), [
    ({"preserve_hard_links": True}, "preserve_hard_links"),
    ({"ManifestConfig": {"Action": "TRANSFER", "Format": "CSV", "Source": {"Uri": "/nonexistent.csv"}}},
     "ManifestConfig"),
])
def test_what_a_partition_cannot_decide_keeps_one_partition(trees, store, options, reason):
    src, dst = trees
    ex = launched(src, dst, store, {**options, "prepare_partitions": 4})
    record = json.loads(Path(ex.file("partitions.json")).read_text())
    assert record["count"] == 1 and reason in record["reason"] and read_partitions(ex) is None


def test_a_location_without_partial_scans_keeps_one_partition(trees, store, monkeypatch):
    import dataclasses

    from airflow_datasync.locations.local import LocalLocation

    opened = LocalLocation.__init__

    def whole_scans_only(self, *args, **kwargs):  # as SMB and Azure Blob declare it
        opened(self, *args, **kwargs)
        self.capabilities = dataclasses.replace(self.capabilities, partial_scans=False)

    monkeypatch.setattr(LocalLocation, "__init__", whole_scans_only)
    src, dst = trees
    ex = launched(src, dst, store, {**OPTIONS, "prepare_partitions": 4})
    record = json.loads(Path(ex.file("partitions.json")).read_text())
    assert record["count"] == 1 and "cannot list part of its tree" in record["reason"]
    summary = run_execution(str(src), str(dst), {**OPTIONS, "prepare_partitions": 4}, store=str(store))
    assert summary["EstimatedFilesToDelete"] == 4  # planned; skipped as the names that are not UTF-8 fail


def test_hard_links_across_partitions_are_counted_when_not_kept(trees, store):
    src, dst = trees
    os.link(src / "t0" / "s0" / "f1.txt", src / "t3" / "same.txt")
    ex = launched(src, dst, store, {"prepare_partitions": 4})
    _record, _results, _shards, _parted, prepared = prepared_in_tasks(ex)
    assert prepared["partitions"] == 4
    assert prepared["hard_links"] == {"files": 2, "groups": 1, "preserved": False}
    assert any("hard-link group" in w for w in prepared["warnings"])


def test_auto_partitions_follow_the_last_execution(trees, store, monkeypatch):
    src, dst = trees
    monkeypatch.setattr(key_space, "AUTO_ENTRIES_PER_PARTITION", 100)
    first = run_execution(str(src), str(dst), {}, store=str(store), task_name="auto")
    assert first["Status"] in ("SUCCESS", "ERROR")  # the source holds names that are not UTF-8
    executions = sorted((store / "auto").iterdir())
    assert json.loads((executions[0] / "partitions.json").read_text())["count"] == 1  # nothing to go by
    run_execution(str(src), str(dst), {}, store=str(store), task_name="auto")
    second = sorted((store / "auto").iterdir())[-1]
    entries = json.loads((executions[0] / "prepare.json").read_text())["source_entries"]
    assert json.loads((second / "partitions.json").read_text())["wanted"] == -(-entries // 100) == 3


def test_group_names_keep_case_variants_and_deal_directories_evenly():
    src = [("Data", True), ("b", True), ("c", True), ("d", True), ("top.txt", False), ("README", False)]
    dst = [("data", True), ("readme", False), ("e", False)]
    parts = group_names(src, dst, 3)
    assert parts == [["Data", "data", "c"], ["b", "d"], ["README", "readme", "e", "top.txt"]]
    assert group_names([("x", False)], [("x", True)], 5) == [["x"]]  # a file on one side, a folder on the other
    assert group_names([], [], 8) == [[]]
    assert group_names([(f"d{i}", True) for i in range(10)], [], 4) == \
        [[f"d{i}" for i in sorted(range(10), key=str)][j::4] for j in range(4)]


# -- S3 ------------------------------------------------------------------------------------------------------


def test_s3_partitions_list_only_their_prefixes(s3, bucket, store, tmp_path, monkeypatch):
    from tests.fixtures_servers import S3_CONN_ID
    from tests.locations.s3.conftest import list_pages

    src = build_source(tmp_path / "src")
    for p in sorted(src.rglob("*")):
        if p.is_file():
            s3.put_object(Bucket=bucket, Key=f"src/{p.relative_to(src)}", Body=p.read_bytes())
    s3.put_object(Bucket=bucket, Key="dst/t5/old.txt", Body=b"only at the destination")
    s3.put_object(Bucket=bucket, Key="dst/gone/y.txt", Body=b"only at the destination")
    s3.put_object(Bucket=bucket, Key="dst/t0/s0/f1.txt", Body=b"stale")
    uris = (f"s3://{bucket}/src", f"s3://{bucket}/dst")
    conn = (S3_CONN_ID, S3_CONN_ID)
    options = {"PreserveDeletedFiles": "REMOVE", "files_per_shard": 20}

    lists = list_pages(monkeypatch, S3_CONN_ID)
    one = launched(*uris, store, options, conn)
    prepare(one)
    whole = pq.read_table(one.manifest)

    lists.clear()
    ex = launched(*uris, store, {**options, "prepare_partitions": 3}, conn)
    launch_lists = list(lists)
    assert ("src/", "/") in launch_lists and ("dst/", "/") in launch_lists  # the shallow listings
    names = read_partitions(ex)
    assert len(names) == 3
    for i, part in enumerate(names):
        lists.clear()
        prepare_partition(ex, i)
        # Exactly the prefixes of its names that hold keys on that side, each once; the objects directly
        # below the roots from one delimited page per side.
        keys = object_keys(s3, bucket)
        held = [f"{side}/{n}/" for side in ("src", "dst") for n in part
                if any(k.startswith(f"{side}/{n}/") for k in keys)]
        assert sorted(p for p, d in lists if d is None) == sorted(held), (i, lists)
        assert sorted(p for p, d in lists if d == "/") == ["dst/", "src/"]
    lists.clear()
    shards = prepare(ex)
    assert [p for p, d in lists if p.startswith(("src/", "dst/"))] == []  # collecting lists nothing
    assert by_path(pq.read_table(ex.manifest)) == by_path(whole)
    assert sum(s["files"] for s in shards) == ex.read_json(ex.prepare)["EstimatedFilesToTransfer"]


def object_keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
