"""PREPARING lists both sides at once when neither listing needs the other (file systems, SMB shares): each
scan below waits, once started, until the other side's scan has started too. Listed in turn, the first would
wait in vain; at once, both go on. Real trees on disk, the real engine; only the scans are observed."""

from __future__ import annotations

import threading

import pytest

from airflow_datasync.engine import run_execution
from airflow_datasync.locations.local import LocalLocation

#: How long a scan waits for the other to start before it records that they did not overlap (a bound on a
#: wait that ends at once when they do, never a measured time).
PATIENCE = 60


@pytest.fixture
def observed_scans(monkeypatch):
    """Per side root: whether the other side's scan had started when this one, started, waited for it."""
    started: dict[str, threading.Event] = {}
    saw_other: dict[str, bool] = {}
    original = LocalLocation.scan

    def scan(self, *args, **kwargs):
        batches = original(self, *args, **kwargs)

        def observed():
            started[self.root].set()
            others = [event for root, event in started.items() if root != self.root]
            saw_other[self.root] = all(event.wait(PATIENCE) for event in others)
            yield from batches
        return observed()

    monkeypatch.setattr(LocalLocation, "scan", scan)
    return started, saw_other


def test_both_sides_are_listed_at_once(tmp_path, make_tree, store, observed_scans):
    """Each side's scan waits, once started, for the other's start: listed in turn, the first would wait in vain."""
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d": {f"f{i}": str(i) for i in range(50)}})
    dst = make_tree(tmp_path / "dst", {"a.txt": "a", "old.txt": "x"})
    started, saw_other = observed_scans
    started.update({str(src): threading.Event(), str(dst): threading.Event()})
    out = run_execution(str(src), str(dst), {"VerifyMode": "NONE"}, store=str(store))
    assert out["Status"] == "SUCCESS", out
    assert saw_other == {str(src): True, str(dst): True}
    assert sorted(p.name for p in (dst / "d").iterdir()) == sorted(f"f{i}" for i in range(50))  # listings whole
    assert (dst / "old.txt").exists()  # PreserveDeletedFiles=PRESERVE by default: listed, kept
