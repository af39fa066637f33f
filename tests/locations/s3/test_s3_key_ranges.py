"""A listing with hints is cut into key ranges listed at once (``locations/s3/key_ranges.py``): on a real
S3-compatible server it gives exactly the keys a plain listing gives, whatever was written or deleted since
the listing the hints come from, in the same pages when nothing changed; a store that ignores
``start-after`` still gets a complete listing."""

from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_datasync.locations import open_location
from airflow_datasync.locations.base import ScanHints
from airflow_datasync.locations.s3 import key_ranges, settings_for
from tests.locations.s3.conftest import CONN_ID

NAMES = [f"d{i // 4}/f{i:02d}" for i in range(14)] + ["top.txt"]


def _listing(loc, hints=None) -> list[tuple[str, str, str]]:
    return [(r["path"], r["type"], r["etag"]) for b in loc.scan(hints=hints) for r in b.to_pylist()]


def _plain(s3, bucket) -> list[str]:
    return [o["Key"][5:] for o in s3.list_objects_v2(Bucket=bucket, Prefix="data/")["Contents"]]


@pytest.fixture
def small_ranges(monkeypatch):
    """Ranges of 3 keys, so a tree of a few objects is cut into several."""
    monkeypatch.setattr(key_ranges, "KEYS_PER_RANGE", 3)


@pytest.fixture
def sent_pages(monkeypatch) -> list[str | None]:
    """The ``start-after`` of every LIST page sent from now on (None: from the start or a continuation)."""
    transport = settings_for(CONN_ID).transport
    real, starts = transport.list_page, []

    def recording(bucket, prefix, token=None, **kwargs):
        starts.append(kwargs.get("start_after"))
        return real(bucket, prefix, token, **kwargs)

    monkeypatch.setattr(transport, "list_page", recording)
    return starts


def test_ranges_list_every_key_once_as_the_tree_is_now(s3, bucket, small_ranges, sent_pages):
    for name in NAMES:
        s3.put_object(Bucket=bucket, Key=f"data/{name}", Body=name.encode())
    s3.put_object(Bucket=bucket, Key="data/d1/", Body=b"")
    loc = open_location(f"s3://{bucket}/data", CONN_ID)
    first = pa.Table.from_batches(list(loc.scan()))
    hints = ScanHints(first)
    sent_pages.clear()

    unchanged = _listing(loc, hints)
    ranged = list(sent_pages)
    assert unchanged == _listing(loc) and [p for p, *_ in unchanged] == [k.rstrip("/") for k in _plain(s3, bucket)]
    # Cut into ranges, and as many pages as a listing of 3 keys a page would send.
    assert sum(1 for s in ranged if s is not None) >= 4 and len(ranged) == -(-first.num_rows // 3)

    # Keys deleted (range bounds among them), written before, between and after the known ones.
    for name in ("d0/f02", "d1/f05", "d2/f08", "top.txt"):
        s3.delete_object(Bucket=bucket, Key=f"data/{name}")
    for name in ("0first", "d1/f05a", "d1/f05b", "d1/f05c", "d1/f05d", "d2/f10x", "zz/last"):
        s3.put_object(Bucket=bucket, Key=f"data/{name}", Body=b"new")
    s3.put_object(Bucket=bucket, Key="data/d0/f00", Body=b"rewritten")
    changed = _listing(loc, hints)
    assert [p for p, *_ in changed] == [k.rstrip("/") for k in _plain(s3, bucket)]
    assert changed == _listing(loc)


def test_a_store_that_ignores_start_after_still_gets_every_key_once(s3, bucket, small_ranges, monkeypatch):
    for name in NAMES:
        s3.put_object(Bucket=bucket, Key=f"data/{name}", Body=name.encode())
    loc = open_location(f"s3://{bucket}/data", CONN_ID)
    hints = ScanHints(pa.Table.from_batches(list(loc.scan())))
    transport = settings_for(CONN_ID).transport
    real = transport.list_page
    monkeypatch.setattr(transport, "list_page", lambda bucket, prefix, token=None, start_after=None, **kw:
                        real(bucket, prefix, token, **kw))
    assert [p for p, *_ in _listing(loc, hints)] == _plain(s3, bucket)
