"""Uid/Gid NAME and BOTH through S3 (SeaweedFS): names are stored beside the ids in each object's metadata
(ds-user/ds-group) and read back on the way down; local → S3 → local as root (real engine runs)."""

from __future__ import annotations

import os

import pytest

from airflow_datasync.engine import LocationSpec, run_execution
from tests.engine.test_engine_owner_names import UNNAMED_GID, UNNAMED_UID, owned_tree, owner
from tests.locations.s3.conftest import CONN_ID

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other owners needs root")


@pytest.mark.parametrize("mode, unnamed_owner", [("NAME", (0, 0)), ("BOTH", (UNNAMED_UID, UNNAMED_GID))])
def test_round_trip_through_s3_keeps_owners_by_name(tmp_path, s3, bucket, mode, unnamed_owner):
    daemon = owned_tree(tmp_path / "src")
    store = str(tmp_path / "store")
    options = {"Uid": mode, "Gid": mode}
    up = run_execution(str(tmp_path / "src"), LocationSpec(f"s3://{bucket}/data", CONN_ID), options, store=store)
    assert up["Status"] == "SUCCESS", up
    named = s3.head_object(Bucket=bucket, Key="data/named.txt")["Metadata"]
    assert (named["ds-user"], named["ds-group"]) == ("daemon", "daemon")
    assert (named["ds-uid"], named["ds-gid"]) == tuple(map(str, daemon))
    unnamed = s3.head_object(Bucket=bucket, Key="data/unnamed.txt")["Metadata"]
    assert "ds-user" not in unnamed and ("ds-uid" in unnamed) == (mode == "BOTH")
    again = run_execution(str(tmp_path / "src"), LocationSpec(f"s3://{bucket}/data", CONN_ID), options, store=store)
    assert again["FilesTransferred"] == 0, again
    back = tmp_path / "back"
    down = run_execution(LocationSpec(f"s3://{bucket}/data", CONN_ID), str(back), options, store=store)
    assert down["Status"] == "SUCCESS", down
    assert owner(back / "named.txt") == daemon
    assert owner(back / "unnamed.txt") == unnamed_owner
