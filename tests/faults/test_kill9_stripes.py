"""kill -9 of one range of a striped file while its parts upload to S3, then its retry (issue 15).

The range runs in a forked child (the kill harness's :class:`Zygote`, as Airflow's supervisor forks a
task) and is killed once S3 holds some of its parts. Its retry uploads its own parts again under the same
numbers (replacing, never adding: the upload ends with the part numbers 1 to 9), the other ranges are
not copied again, and FINALIZE completes the object with the full-object CRC64NVME of the source.
"""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from airflow_datasync import checksum, engine
from airflow_datasync.engine import LocationSpec
from airflow_datasync.phases import stripes
from tests.faults.killing import Zygote
from tests.fixtures_servers import S3_CONN_ID

MiB = 1024**2
#: Each 16 MiB range goes in three parts of S3's smallest size or more; the rate makes a range last a few
#: seconds, so the kill lands between its parts.
OPTIONS = {"stripe_threshold_bytes": 32 * MiB, "stripe_bytes": 16 * MiB, "BytesPerSecond": 6 * MiB}


def _parts(s3, bucket: str, key: str, upload_id: str) -> list[int]:
    return [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", [])]


@pytest.mark.faults
def test_a_killed_range_is_copied_again_alone(tmp_path, s3_server, s3, bucket):
    store = tmp_path / "store"
    (tmp_path / "src").mkdir()
    big = os.urandom(48 * MiB)
    (tmp_path / "src" / "big.bin").write_bytes(big)
    dst = LocationSpec(f"s3://{bucket}/data?part_size=5MiB", S3_CONN_ID)
    execution = engine.launch(LocationSpec(str(tmp_path / "src")), dst, OPTIONS, task_name="datasync",
                              store=str(store))
    engine.prepare(execution)
    (striped,) = stripes.load(execution).files
    upload_id, ranges = striped["write"]["upload_id"], [r["shard"] for r in striped["ranges"]]
    assert striped["write"]["parts_per_range"] == 3
    first, victim, last = ranges
    with Zygote(tmp_path / "logs") as zygote:
        zygote.run_to_end("transfer", execution, first)
        child = zygote.run("transfer", execution, victim)
        deadline = time.monotonic() + 120
        while not set(_parts(s3, bucket, "data/big.bin", upload_id)) & {4, 5, 6} and time.monotonic() < deadline:
            if zygote.wait(child, 0.02) is not None:
                break
        rc, _at = zygote.kill(child)
        assert rc == -9, f"the range ended before the kill: {child.output()}"
        killed_parts = set(_parts(s3, bucket, "data/big.bin", upload_id)) & {4, 5, 6}
        assert killed_parts and killed_parts != {4, 5, 6}, killed_parts  # killed between its parts
        assert not os.path.exists(execution.file(f"stripes/range-{victim:05d}.json"))
        zygote.run_to_end("transfer", execution, last)
        done_first = os.stat(execution.file(f"stripes/range-{first:05d}.json")).st_mtime_ns
        retry = zygote.run("transfer", execution, victim)  # Airflow's retry of the killed task
        assert zygote.wait(retry, 300) == 0, retry.output()
    summary = json.loads(retry.output().strip().splitlines()[-1])
    assert summary["bytes_written"] == 16 * MiB and not summary["resumed"]
    assert engine.transfer(execution, first)["resumed"]  # the others are not copied again
    assert os.stat(execution.file(f"stripes/range-{first:05d}.json")).st_mtime_ns == done_first
    # Every number once (SeaweedFS lists a part uploaded twice twice; S3 keeps the last): nothing added.
    assert sorted(set(_parts(s3, bucket, "data/big.bin", upload_id))) == list(range(1, 10))
    engine.finalize(execution)
    engine.verify(execution)
    assert engine.report(execution)["Status"] == "SUCCESS"
    head = s3.head_object(Bucket=bucket, Key="data/big.bin", ChecksumMode="ENABLED")
    h = checksum.new_hasher()
    h.update(big)
    assert base64.b64decode(head["ChecksumCRC64NVME"]).hex() == h.hexdigest()
    assert s3.get_object(Bucket=bucket, Key="data/big.bin")["Body"].read() == big
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
