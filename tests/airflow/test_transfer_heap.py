"""The transfer task's frozen host heap: frozen only while the shard copies, unfrozen after, even when the
copy raises, so no garbage that existed before the shard outlives it."""

from __future__ import annotations

import gc

import pytest

from airflow_datasync.operators.phases import _host_heap_frozen


def test_heap_frozen_only_during_the_shard():
    assert gc.get_freeze_count() == 0
    with _host_heap_frozen():
        assert gc.get_freeze_count() > 0  # what existed before the shard: left out of collections
    assert gc.get_freeze_count() == 0


def test_heap_unfrozen_when_the_copy_raises():
    with pytest.raises(RuntimeError), _host_heap_frozen():
        raise RuntimeError("shard failed")
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_before_stays_frozen():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with _host_heap_frozen():
            pass
        assert gc.get_freeze_count() == frozen  # not unfrozen under whoever froze it
    finally:
        gc.unfreeze()
