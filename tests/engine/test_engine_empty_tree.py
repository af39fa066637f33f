"""An execution with nothing to do (issue 16's fixed cost): it writes every file a planned one writes, with
the same schemas, and reading a manifest store's Parquet keeps its semantics whichever way it is read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_datasync.engine import run_execution
from airflow_datasync.locations.base import LISTING_SCHEMA
from airflow_datasync.manifest import MANIFEST_SCHEMA, VERIFY_SCHEMA, ExecutionDir, read_table
from airflow_datasync.phases.report import REPORT_SCHEMA

#: What a later resume, audit or report reads of an execution that copied nothing.
FILES = ("launch.json", "partitions.json", "source.parquet", "destination.parquet", "manifest.parquet",
         "prepare.json", "deletes.parquet", "finalize.json", "verify.parquet", "verify.json", "report.parquet",
         "report.json")


def _schema(path) -> pa.Schema:
    return pq.read_schema(path).remove_metadata()


def test_an_empty_tree_writes_what_a_planned_execution_writes_with_the_same_schemas(tmp_path, make_tree, store):
    (tmp_path / "empty").mkdir()
    empty = run_execution(str(tmp_path / "empty"), str(tmp_path / "dst-empty"), task_name="empty", store=str(store))
    assert (empty["Status"], empty["ShardCount"], empty["FilesTransferred"]) == ("SUCCESS", 0, 0)
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d": {"b.txt": "bb"}})
    full = run_execution(str(src), str(tmp_path / "dst-full"), task_name="full", store=str(store))
    assert full["Status"] == "SUCCESS" and full["FilesTransferred"] == 3

    planned, nothing = ExecutionDir(full["ExecutionUri"]), ExecutionDir(empty["ExecutionUri"])
    for name in FILES:
        assert Path(nothing.file(name)).exists(), name
    for name, schema in (("manifest.parquet", MANIFEST_SCHEMA), ("source.parquet", LISTING_SCHEMA),
                         ("verify.parquet", VERIFY_SCHEMA), ("report.parquet", REPORT_SCHEMA)):
        assert _schema(nothing.file(name)) == _schema(planned.file(name)), name
        assert _schema(planned.file(name)).equals(schema), name  # the planned run's join gives that schema too
    assert pq.read_table(nothing.file("report.parquet")).num_rows == 0
    assert pq.read_table(planned.file("report.parquet")).num_rows == 3


def test_reading_a_table_conforms_older_files_and_filters_empty_ones(tmp_path):
    # A manifest written before its last column existed: conformed to the schema asked for (a null column).
    older = pa.schema([f for f in MANIFEST_SCHEMA if f.name != "hardlink_to"])
    row = {"path": "a", "type": "file", "size": 1, "action": "copy", "shard": 0}
    pq.write_table(pa.Table.from_pylist([row], schema=older), tmp_path / "old.parquet")
    table = read_table(str(tmp_path / "old.parquet"), MANIFEST_SCHEMA)
    assert table.schema.names == MANIFEST_SCHEMA.names and table["hardlink_to"].to_pylist() == [None]
    # Filters on a file with rows, and on one without: the rows that match, in the file's schema.
    two = pa.Table.from_pylist([row, {**row, "path": "b", "shard": 1}], schema=MANIFEST_SCHEMA)
    pq.write_table(two, tmp_path / "two.parquet")
    assert read_table(str(tmp_path / "two.parquet"), MANIFEST_SCHEMA, filters=[("shard", "=", 1)])["path"].to_pylist() == ["b"]
    pq.write_table(MANIFEST_SCHEMA.empty_table(), tmp_path / "none.parquet")
    none = read_table(str(tmp_path / "none.parquet"), MANIFEST_SCHEMA, filters=[("shard", "=", 1)])
    assert none.num_rows == 0 and none.schema.equals(MANIFEST_SCHEMA)
    assert read_table(str(tmp_path / "missing.parquet"), MANIFEST_SCHEMA).schema.equals(MANIFEST_SCHEMA)
