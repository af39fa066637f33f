"""bench/synthetic.py honours the location contract's reading side: a listing of LISTING_SCHEMA batches,
every directory before its files, the same on every scan, and stat/open_read agreeing with it; it refuses
every write, and only a process that imports it knows the scheme."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest

from airflow_datasync.locations import LocationError, open_location
from airflow_datasync.locations.base import LISTING_SCHEMA, Metadata
from bench import synthetic  # noqa: F401 - registers synthetic:// in this process
from tests.engine.conftest import REPO_ROOT


def listing(uri: str, batch_size: int = 7) -> pa.Table:
    with open_location(uri) as loc:
        batches = list(loc.scan(batch_size=batch_size))
    assert all(b.schema == LISTING_SCHEMA for b in batches)
    return pa.Table.from_batches(batches, schema=LISTING_SCHEMA)


def test_listing_is_the_generated_tree_and_agrees_with_stat_and_reads():
    table = listing("synthetic://50?dirs=4&size=100")
    rows = table.to_pylist()
    assert [r["path"] for r in rows if r["type"] == "dir"] == ["d00000", "d00001", "d00002", "d00003"]
    files = [r for r in rows if r["type"] == "file"]
    assert len(files) == 50 and len({r["path"] for r in files}) == 50
    seen: set[str] = set()
    for r in rows:  # each directory before its files
        if r["type"] == "file":
            assert r["path"].split("/")[0] in seen
        seen.add(r["path"])
    assert table.equals(listing("synthetic://50?dirs=4&size=100", batch_size=1000))  # deterministic
    with open_location("synthetic://50?dirs=4&size=100") as loc:
        for r in files:
            st = loc.stat(r["path"])
            assert (st.type, st.size, st.mtime_ns) == ("file", r["size"], r["mtime_ns"])
            with loc.open_read(r["path"]) as fh:
                assert len(fh.read()) == r["size"]
        assert loc.stat("d00004") is None and loc.stat("d00000/f000000049") is None
        assert loc.stat("d00003/f000000049").type == "file"
        with pytest.raises(LocationError, match="read-only"):
            loc.write("x", iter([b"x"]), Metadata(), tag="t")
        with pytest.raises(LocationError, match="read-only"):
            loc.check(writable=True)


def test_bad_uris_are_refused_by_name():
    for uri in ("synthetic://lots", "synthetic://10?dirz=3", "synthetic://10?dirs=0", "synthetic://10/sub"):
        with pytest.raises(LocationError, match="synthetic://"):
            open_location(uri)


def test_the_scheme_exists_only_where_bench_synthetic_is_imported():
    code = "from airflow_datasync.locations import open_location\nopen_location('synthetic://1')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode != 0 and "unsupported location scheme 'synthetic'" in done.stderr
