"""What the server-fault cases share: a seeded source tree, an execution run shard try after shard try
while a fault is on, connections that point a backend at a :class:`~tests.faults.fault_proxy.FaultProxy`,
and the private servers a case may kill (fixtures, imported by tests/faults/test_server_faults.py)."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_datasync import engine
from airflow_datasync.engine import LocationSpec
from airflow_datasync.phases.transfer import PermanentShardError, ShardFailedError
from tests.faults.fault_proxy import FaultProxy
from tests.faults.restartable import start_restartable_azurite, start_restartable_s3, start_restartable_smb

MIB = 1 << 20
_ids = itertools.count()


def make_source(root: Path, *, small: int, big: int = 0, big_size: int = 12 * MIB, seed: int) -> dict[str, bytes]:
    """``small`` files of 1–8 KiB in a few folders and ``big`` files of ``big_size`` (multipart on S3 with
    5 MiB parts); returns {relative path: bytes}."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(big):
        files[f"big-{i}.bin"] = rng.randbytes(big_size)
    for i in range(small):
        files[f"d{i % 5}/f{i:04d}.txt"] = rng.randbytes(rng.randint(1024, 8192))
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


@dataclass
class Outcome:
    summary: dict
    shard_tries: int
    #: Seconds from the start of TRANSFERRING (the fault on) to a verified destination.
    seconds: float
    #: What each failed shard try said (the first files' errors).
    failures: list[str]


def run_through_faults(src: Path, dst: LocationSpec, store: Path, *, fault: Callable[[], None],
                       heal: Callable[[], None], shard_tries: int = 3, heal_before: int | None = None,
                       options: dict | None = None) -> Outcome:
    """One execution from ``src`` to ``dst``: LAUNCHING and PREPARING without faults, then ``fault()`` and
    TRANSFERRING, each shard tried again (as Airflow retries a mapped task) while it fails with retryable
    errors; ``heal()`` before try ``heal_before`` (default: the last). A permanent shard failure is not
    retried: it fails the case."""
    heal_before = heal_before or shard_tries
    execution = engine.launch(LocationSpec(str(src)), dst, options or {}, store=str(store))
    shards = engine.prepare(execution)
    started = time.monotonic()
    fault()
    tries, failures = 0, []
    try:
        for shard in shards:
            for attempt in range(1, shard_tries + 1):
                if attempt == heal_before:
                    heal()
                tries += 1
                try:
                    engine.transfer(execution, shard["shard"], try_number=attempt)
                    break
                except PermanentShardError:
                    raise
                except ShardFailedError as exc:
                    failures.append(str(exc)[:400])
                    if attempt == shard_tries:
                        raise
    finally:
        heal()
    engine.finalize(execution)
    engine.verify(execution)
    summary = engine.report(execution)
    return Outcome(summary, tries, time.monotonic() - started, failures)


def in_background(when: Callable[[], bool], then: Callable[[], None]) -> threading.Thread:
    """Run ``then()`` in a thread as soon as ``when()`` holds (a fault injected mid-shard)."""
    def watch() -> None:
        deadline = time.monotonic() + 120
        while not when() and time.monotonic() < deadline:
            time.sleep(0.005)
        then()

    thread = threading.Thread(target=watch, name="inject-fault", daemon=True)
    thread.start()
    return thread


def connection_id(prefix: str) -> str:
    """A connection id no other case used: the backends cache clients per connection id and process."""
    return f"{prefix}_{next(_ids)}_{int(time.time() * 1000) % 10**8}"


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def s3_connection(server, proxy: FaultProxy, *, timeout: float = 3.0) -> dict:
    """An AWS connection to ``server`` through ``proxy``, with short connect/read timeouts (botocore's
    ``config_kwargs``): a stall longer than them must fail the attempt, which is retried."""
    return {"conn_type": "aws", "login": server.access_key, "password": server.secret_key,
            "extra": {"endpoint_url": f"http://{proxy.address}", "region_name": server.region,
                      "config_kwargs": {"connect_timeout": timeout, "read_timeout": timeout}}}


def smb_connection(server, proxy: FaultProxy, *, encrypt: bool) -> dict:
    extra = {"require_signing": True, **({"encrypt": "true", "smb_version": "3.1.1"} if encrypt else {})}
    return {"conn_type": "datasync_smb", "host": "127.0.0.1", "port": proxy.port, "login": server.user,
            "password": server.password, "extra": extra}


def azure_connection(server, proxy: FaultProxy) -> dict:
    return {"conn_type": "wasb", "login": server.account, "password": server.key,
            "host": f"http://{proxy.address}/{server.account}"}


# -- private servers a case may kill ---------------------------------------------------------------
@pytest.fixture(scope="module")
def private_s3():
    server = start_restartable_s3()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_smb():
    server = start_restartable_smb()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_azurite():
    server = start_restartable_azurite()
    yield server
    server.stop()
