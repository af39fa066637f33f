"""Server faults (issue 13): a loopback TCP fault proxy between the engine and each real server (resets,
stalls, slow reads, truncated answers, refused connections) and the servers themselves killed with
``kill -9`` and started again mid-shard. What must hold: the execution converges (within the requests'
own retries or on a shard retry) to a destination byte-identical to the source that VERIFYING accepts,
with no partial, duplicate or temporary object and no unfinished multipart upload; a server that stays
down gives a clear error naming it, in a bounded time, without a traceback.

One quick case per backend runs in ``make test``; the others are marked ``faults``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_datasync.engine import LocationSpec
from tests.faults.fault_proxy import FaultProxy
from tests.faults.figures import Figure, record
from tests.faults.server_harness import (  # noqa: F401  (fixtures)
    MIB,
    connection_id,
    in_background,
    make_source,
    private_azurite,
    private_s3,
    private_smb,
    run_through_faults,
    s3_connection,
    set_connection,
)

GROUP = "Server faults"
ROOT = Path(__file__).resolve().parents[2]
S3_HOLDS = ("execution SUCCESS and verified; every object byte-identical; no other key, no .~ds- key, "
            "no unfinished multipart upload")


# -- the proxy itself ------------------------------------------------------------------------------
def test_the_proxy_passes_resets_truncates_and_refuses(s3_server):
    """The proxy's modes do what the cases rely on, against a real HTTP server (SeaweedFS's S3 port)."""
    import http.client

    port = int(s3_server.endpoint.rsplit(":", 1)[1])

    def status(proxy: FaultProxy) -> int | str:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__
        finally:
            conn.close()

    with FaultProxy(port, seed=1) as proxy:
        assert status(proxy) == 403  # unsigned: SeaweedFS refuses, but it answered through the proxy
        proxy.reset(after=0)
        assert status(proxy) in ("ConnectionResetError", "RemoteDisconnected", "BrokenPipeError")
        proxy.truncate(after=20)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := raw.recv(4096):
                answer += chunk
        assert answer == b"HTTP/1.1 403 Forbidd"  # the first 20 bytes, then the end (FIN)
        proxy.refuse()
        assert status(proxy) == "ConnectionRefusedError"
        proxy.accept()
        proxy.pass_through()
        assert status(proxy) == 403
        assert proxy.faults_injected >= 3


# -- S3 --------------------------------------------------------------------------------------------
def s3_objects(client, bucket: str, prefix: str) -> dict[str, bytes]:
    keys = [obj["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])]
    return {key[len(prefix):]: client.get_object(Bucket=bucket, Key=key)["Body"].read()
            for key in keys if not key.endswith("/")}


def assert_s3_converged(client, bucket: str, prefix: str, files: dict[str, bytes], outcome) -> None:
    summary = outcome.summary
    assert summary["Status"] == "SUCCESS", summary
    assert summary["FilesVerified"] >= len(files), summary
    found = s3_objects(client, bucket, prefix)
    assert not [k for k in found if ".~ds-" in k]
    assert set(found) == set(files), sorted(set(found) ^ set(files))[:10]
    assert [k for k in files if found[k] != files[k]] == []  # byte-identical: nothing corrupt or partial
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    assert uploads == [], uploads


def s3_case(tmp_path, monkeypatch, server, bucket: str, *, proxy: FaultProxy, fault, heal, small: int, big: int,
            seed: int, timeout: float = 3.0):
    src = tmp_path / "src"
    files = make_source(src, small=small, big=big, seed=seed)
    conn_id = connection_id("faults_s3")
    set_connection(monkeypatch, conn_id, s3_connection(server, proxy, timeout=timeout))
    prefix = "sync/"
    outcome = run_through_faults(src, LocationSpec(f"s3://{bucket}/sync?part_size=5MiB", conn_id),
                                 tmp_path / "store", fault=fault, heal=heal)
    assert_s3_converged(server.client(), bucket, prefix, files, outcome)
    return files, outcome


def s3_port(server) -> int:
    return int(server.endpoint.rsplit(":", 1)[1])


def test_s3_resets_on_a_third_of_the_connections_converge(tmp_path, monkeypatch, s3_server, bucket):
    """Quick case: a third of the connections reset (RST) after a few KiB, for the whole first try."""
    seed = 1301
    with FaultProxy(s3_port(s3_server), seed=seed) as proxy:
        files, outcome = s3_case(tmp_path, monkeypatch, s3_server, bucket, proxy=proxy, seed=seed, small=40, big=1,
                                 fault=lambda: proxy.reset(after=6000, fraction=0.34), heal=proxy.pass_through)
    record(Figure(case="server/s3-proxy-reset", group=GROUP,
                  fault="TCP resets (RST after 6 KB) on a third of the connections to SeaweedFS during TRANSFERRING",
                  holds=S3_HOLDS, runs=1, faults_injected=proxy.faults_injected, files_checked=len(files),
                  converge_s=round(outcome.seconds, 2), seed=seed,
                  notes=f"{outcome.shard_tries} shard tries; 1 multipart object (3 parts)"))


S3_MODES = {
    # mode: (what the proxy does, how to switch it on, the figure's fault text)
    "reset-mid-upload": (lambda p: p.reset(after=3 * MIB, fraction=0.5, direction="up"),
                         "TCP resets after 3 MiB sent on half the connections (mid-part of multipart uploads)"),
    "truncate": (lambda p: p.truncate(after=40, fraction=0.3),
                 "answers cut after 40 bytes (FIN) on 30% of the connections: requests whose effect may "
                 "have happened"),
    "slow": (lambda p: p.slow(4 * MIB),
             "every connection throttled to 4 MiB/s each way"),
}


@pytest.mark.faults
@pytest.mark.parametrize("mode", sorted(S3_MODES))
def test_s3_proxy_faults_converge(tmp_path, monkeypatch, s3_server, bucket, mode):
    switch, text = S3_MODES[mode]
    seed = 1310 + sorted(S3_MODES).index(mode)
    with FaultProxy(s3_port(s3_server), seed=seed) as proxy:
        files, outcome = s3_case(tmp_path, monkeypatch, s3_server, bucket, proxy=proxy, seed=seed, small=150, big=3,
                                 fault=lambda: switch(proxy), heal=proxy.pass_through)
    record(Figure(case=f"server/s3-proxy-{mode}", group=GROUP, fault=text, holds=S3_HOLDS, runs=1,
                  faults_injected=proxy.faults_injected or (1 if mode == "slow" else 0), files_checked=len(files),
                  converge_s=round(outcome.seconds, 2), seed=seed,
                  notes=f"{outcome.shard_tries} shard tries; 3 multipart objects (3 parts each)"))


@pytest.mark.faults
def test_s3_stall_longer_than_the_read_timeout_is_retried(tmp_path, monkeypatch, s3_server, bucket):
    """Everything stops for 5 s mid-shard; the connection's read timeout is 2 s: attempts time out and
    are tried again (pytest-timeout would show a hang), and the shard converges."""
    seed = 1320
    with FaultProxy(s3_port(s3_server), seed=seed) as proxy:
        trigger = []
        fault = lambda: trigger.append(in_background(lambda: proxy.bytes_up > 8 * MIB, lambda: proxy.stall(5)))  # noqa: E731
        files, outcome = s3_case(tmp_path, monkeypatch, s3_server, bucket, proxy=proxy, seed=seed, small=100, big=2,
                                 fault=fault, heal=lambda: None, timeout=2.0)
        trigger[0].join(5)
    record(Figure(case="server/s3-proxy-stall", group=GROUP,
                  fault="all traffic stalled 5 s mid-shard, read timeout 2 s", holds=S3_HOLDS, runs=1,
                  faults_injected=proxy.faults_injected, files_checked=len(files),
                  converge_s=round(outcome.seconds, 2), seed=seed, notes=f"{outcome.shard_tries} shard tries"))


@pytest.mark.faults
def test_s3_server_killed_and_restarted_mid_shard_converges(tmp_path, monkeypatch, private_s3):
    """``kill -9`` of SeaweedFS once 10 MiB went up (multipart parts in flight), started again 1 s later
    on the same ports and data: the shard's retry converges and no upload is left unfinished."""
    seed = 1330
    client = private_s3.server.client()
    bucket = f"restart-{os.getpid()}"
    client.create_bucket(Bucket=bucket)

    def kill_and_restart() -> None:
        private_s3.kill()
        time.sleep(1)
        private_s3.restart()

    with FaultProxy(private_s3.port, seed=seed) as proxy:
        trigger = []
        fault = lambda: trigger.append(in_background(lambda: proxy.bytes_up > 10 * MIB, kill_and_restart))  # noqa: E731
        heal = lambda: trigger[0].join(120)  # noqa: E731
        files, outcome = s3_case(tmp_path, monkeypatch, private_s3.server, bucket, proxy=proxy, seed=seed,
                                 small=120, big=3, fault=fault, heal=heal)
    record(Figure(case="server/s3-restart", group=GROUP,
                  fault="kill -9 of SeaweedFS mid-shard (multipart uploads in flight), restarted after 1 s",
                  holds=S3_HOLDS, runs=1, faults_injected=1, files_checked=len(files),
                  converge_s=round(outcome.seconds, 2), seed=seed, notes=f"{outcome.shard_tries} shard tries"))


def test_s3_down_for_good_is_a_clear_error_without_traceback(tmp_path, s3_server, bucket):
    """The endpoint refuses every connection: the CLI names it and exits 2 after its bounded retries."""
    src = tmp_path / "src"
    make_source(src, small=3, seed=1340)
    with FaultProxy(s3_port(s3_server), seed=1340) as proxy:
        proxy.refuse()
        conn_id = connection_id("faults_s3_down")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = __import__("json").dumps(s3_connection(s3_server, proxy))
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "airflow_datasync.cli", "run", str(src), f"s3://{bucket}/down",
                              "--destination-conn-id", conn_id, "--store", str(tmp_path / "store"), "-q"],
                             env=env, capture_output=True, text=True, timeout=120)
        seconds = time.monotonic() - started
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    assert f"127.0.0.1:{proxy.port}" in out.stderr and "cannot reach S3" in out.stderr, out.stderr
    assert s3_server.secret_key not in out.stderr + out.stdout
    record(Figure(case="server/s3-down", group=GROUP, fault="the S3 endpoint refuses every connection",
                  holds="exit 2 with one line naming the endpoint; no traceback; no secret", runs=1,
                  faults_injected=1, files_checked=0, converge_s=round(seconds, 2),
                  notes="time is the whole CLI run to the error (interpreter start included)"))
