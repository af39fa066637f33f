"""Server faults (issue 13): a loopback TCP fault proxy between the engine and each real server (resets,
stalls, slow reads, truncated answers, refused connections) and the servers themselves killed with
``kill -9`` and started again mid-shard. What must hold: the execution converges (within the requests'
own retries or on a shard retry) to a destination byte-identical to the source that VERIFYING accepts,
with no partial, duplicate or temporary object and no unfinished multipart upload; a server that stays
down gives a clear error naming it, in a bounded time, without a traceback.

One quick case per backend runs in ``make test``; the others are marked ``faults``.
"""

from __future__ import annotations

import json
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
    azure_connection,
    connection_id,
    in_background,
    make_source,
    private_azurite,
    private_s3,
    private_smb,
    run_through_faults,
    s3_connection,
    set_connection,
    smb_connection,
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


@pytest.mark.faults
def test_s3_read_timeout_of_a_plain_connection_fails_a_stalled_request(monkeypatch, s3_server, bucket):
    """``config_kwargs.read_timeout`` (botocore's option) is honoured by the SigV4 client itself, which a
    plain connection keeps: a request to a stalled server fails its attempts and is reported as a lost
    connection (retryable) instead of waiting for the stall to end (then it would answer: no such key)."""
    from airflow_datasync.errors import ConnectionLostError
    from airflow_datasync.locations.s3.settings import settings_for
    from airflow_datasync.locations.s3.transport import SigV4Transport

    with FaultProxy(s3_port(s3_server), seed=1325) as proxy:
        conn_id = connection_id("faults_s3_timeout")
        set_connection(monkeypatch, conn_id, s3_connection(s3_server, proxy, timeout=1.0))
        settings = settings_for(conn_id)
        assert isinstance(settings.transport, SigV4Transport)  # not the boto3 fallback
        proxy.stall(30)
        started = time.monotonic()
        with pytest.raises(ConnectionLostError, match=f"127.0.0.1:{proxy.port}"):
            settings.transport.head(bucket, "nothing-here")
        seconds = time.monotonic() - started
    record(Figure(case="server/s3-read-timeout", group=GROUP,
                  fault="S3 stalled 30 s under one request; plain connection with read_timeout 1 s",
                  holds="the request fails as a lost connection (retryable) naming the endpoint, "
                        "after its 4 attempts, without waiting out the stall",
                  runs=1, faults_injected=1, files_checked=0, converge_s=round(seconds, 2),
                  notes="time is to the error, not to a verified destination"))


@pytest.mark.faults
def test_s3_conditional_writes_whose_answer_was_lost_are_not_refused_by_their_own_retry(monkeypatch, s3_server,
                                                                                         bucket):
    """OverwriteMode=NEVER writes with If-None-Match. When S3 did the write but its answer was lost (cut
    after 0 bytes), the retry is refused (412) by the object the first attempt made: that is our own
    write (same CRC64NVME), not an object in the way. Same for completing a multipart upload; and a
    multipart upload created by an attempt whose answer was lost is aborted, not left behind."""
    from airflow_datasync import checksum
    from airflow_datasync.errors import AlreadyExistsError
    from airflow_datasync.locations.s3.settings import settings_for
    from airflow_datasync.locations.s3.transport import LOST_CREATION_MARGIN_SECONDS

    client = s3_server.client()
    with FaultProxy(s3_port(s3_server), seed=1327) as proxy:
        conn_id = connection_id("faults_s3_lost")
        set_connection(monkeypatch, conn_id, s3_connection(s3_server, proxy))
        transport = settings_for(conn_id).transport

        def with_answer_lost(write, after: int = 0):
            transport.head(bucket, "warm-up")  # a kept-alive connection for the write to go on
            proxy.truncate(after=after, new_connections=False)  # that one loses its next answer; the retry's not
            try:
                return write()
            finally:
                proxy.pass_through()

        before = proxy.faults_injected
        etag = with_answer_lost(lambda: transport.put(bucket, "once.txt", b"written once", {}, if_none_match=True))
        assert proxy.faults_injected == before + 1  # the first answer was cut indeed
        assert etag and client.get_object(Bucket=bucket, Key="once.txt")["Body"].read() == b"written once"
        with pytest.raises(AlreadyExistsError):  # someone else's object still refuses the write
            transport.put(bucket, "once.txt", b"other bytes", {}, if_none_match=True)

        body = os.urandom(5 * MIB)
        crc = checksum.new_hasher()
        crc.update(body)
        upload = transport.create_multipart(bucket, "multi.bin", {}, full_object_crc=True)
        # An answer cut inside its headers (after the status line) is no answer: without this, "200 OK"
        # with no ETag failed the file for good.
        before = proxy.faults_injected
        part = with_answer_lost(lambda: transport.upload_part(bucket, "multi.bin", upload, 1, body, crc.base64()),
                                after=40)
        assert proxy.faults_injected == before + 1 and part
        etag = with_answer_lost(lambda: transport.complete_multipart(
            bucket, "multi.bin", upload, [(1, part, crc.base64())], crc64=crc.base64(), if_none_match=True))
        assert etag and client.get_object(Bucket=bucket, Key="multi.bin")["Body"].read() == body
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

        # A creation whose answer was lost made an upload nobody knows the id of: it is aborted.
        other = transport.create_multipart(bucket, "again.bin", {}, full_object_crc=True)  # older: kept
        time.sleep(LOST_CREATION_MARGIN_SECONDS + 1)
        upload = with_answer_lost(lambda: transport.create_multipart(bucket, "again.bin", {}, full_object_crc=True))
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix="again.bin").get("Uploads", [])
        assert sorted(u["UploadId"] for u in uploads) == sorted([other, upload])
        for upload_id in (other, upload):
            transport.abort_multipart(bucket, "again.bin", upload_id)
    record(Figure(case="server/s3-lost-answers", group=GROUP,
                  fault="the answer of a PutObject, a CompleteMultipartUpload and a CreateMultipartUpload cut "
                        "(0 bytes) after S3 acted on it; an UploadPart answer cut inside its headers",
                  holds="the retried writes succeed with the bytes written once; the upload the lost "
                        "creation made is aborted, an older one of the same key kept",
                  runs=1, faults_injected=4, files_checked=2))


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


@pytest.mark.faults
def test_s3_down_for_good_is_a_clear_error_without_traceback(tmp_path, s3_server, bucket):
    """The endpoint refuses every connection: the CLI names it and exits 2 after its bounded retries."""
    src = tmp_path / "src"
    make_source(src, small=3, seed=1340)
    with FaultProxy(s3_port(s3_server), seed=1340) as proxy:
        proxy.refuse()
        conn_id = connection_id("faults_s3_down")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(s3_connection(s3_server, proxy))
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


# -- SMB -------------------------------------------------------------------------------------------
SMB_HOLDS = ("execution SUCCESS and verified; every file byte-identical on the share's disk; no other file, "
             "no .~ds- temporary; signing (and encryption) on")


def disk_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_disk_converged(root: Path, files: dict[str, bytes], outcome) -> None:
    summary = outcome.summary
    assert summary["Status"] == "SUCCESS", summary
    assert summary["FilesVerified"] >= len(files), summary
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".~ds-")]
    assert leftovers == []
    found = disk_files(root)
    assert set(found) == set(files), sorted(set(found) ^ set(files))[:10]
    assert [k for k in files if found[k] != files[k]] == []


def smb_case(tmp_path, monkeypatch, server, *, proxy: FaultProxy, fault, heal, small: int, big: int, seed: int,
             encrypt: bool = True, heal_before: int | None = None):
    src = tmp_path / "src"
    files = make_source(src, small=small, big=big, big_size=6 * MIB, seed=seed)
    name = f"faults-{seed}-{time.monotonic_ns() % 10**9}"
    disk = server.shares["data"] / name
    disk.mkdir()
    conn_id = connection_id("faults_smb")
    set_connection(monkeypatch, conn_id, smb_connection(server, proxy, encrypt=encrypt))
    outcome = run_through_faults(src, LocationSpec(f"smb://127.0.0.1:{proxy.port}/data/{name}", conn_id),
                                 tmp_path / "store", fault=fault, heal=heal, heal_before=heal_before)
    assert_disk_converged(disk, files, outcome)
    return files, outcome


def test_smb_resets_mid_write_converge(tmp_path, monkeypatch, samba):
    """Quick case: every live SMB connection (encrypted, signed) reset once 256 KiB more went up."""
    seed = 1350
    with FaultProxy(samba.port, seed=seed) as proxy:
        fault = lambda: in_background(lambda: proxy.bytes_up > 2 * MIB,  # noqa: E731
                                      lambda: proxy.reset(after=256 * 1024, direction="up",
                                                          new_connections=False))
        files, outcome = smb_case(tmp_path, monkeypatch, samba, proxy=proxy, seed=seed, small=40, big=2,
                                  fault=fault, heal=proxy.pass_through, heal_before=2)
    record(Figure(case="server/smb-proxy-reset", group=GROUP,
                  fault="TCP resets of every SMB connection (SMB 3.1.1, encrypted) 256 KiB into the next writes, "
                        "during the first shard try",
                  holds=SMB_HOLDS, runs=1, faults_injected=proxy.faults_injected, files_checked=len(files),
                  converge_s=round(outcome.seconds, 2), seed=seed, notes=f"{outcome.shard_tries} shard tries"))


@pytest.mark.faults
def test_smb_stall_and_slow_reads_converge(tmp_path, monkeypatch, samba):
    """Everything stops for 4 s mid-shard, then every connection is throttled to 2 MiB/s each way."""
    seed = 1360
    with FaultProxy(samba.port, seed=seed) as proxy:
        def stall_then_slow() -> None:
            proxy.stall(4)
            time.sleep(4.5)
            proxy.slow(2 * MIB)

        fault = lambda: in_background(lambda: proxy.bytes_up > 3 * MIB, stall_then_slow)  # noqa: E731
        files, outcome = smb_case(tmp_path, monkeypatch, samba, proxy=proxy, seed=seed, small=80, big=3,
                                  fault=fault, heal=lambda: None)
    record(Figure(case="server/smb-proxy-stall-slow", group=GROUP,
                  fault="all SMB traffic stalled 4 s mid-shard, then throttled to 2 MiB/s each way",
                  holds=SMB_HOLDS, runs=1, faults_injected=proxy.faults_injected + 1, files_checked=len(files),
                  converge_s=round(outcome.seconds, 2), seed=seed, notes=f"{outcome.shard_tries} shard tries"))


@pytest.mark.faults
def test_smb_server_killed_and_restarted_mid_shard_converges(tmp_path, monkeypatch, private_smb):
    """``kill -9`` of smbd (and every per-connection child) once 4 MiB went up, started again 1 s later
    with the same configuration: the pooled sessions are dropped and reopened, the shard's retry converges."""
    seed = 1370

    def kill_and_restart() -> None:
        private_smb.kill()
        time.sleep(1)
        private_smb.restart()

    with FaultProxy(private_smb.port, seed=seed) as proxy:
        trigger = []
        fault = lambda: trigger.append(in_background(lambda: proxy.bytes_up > 4 * MIB, kill_and_restart))  # noqa: E731
        heal = lambda: trigger[0].join(60)  # noqa: E731
        files, outcome = smb_case(tmp_path, monkeypatch, private_smb.server, proxy=proxy, seed=seed, small=80, big=3,
                                  fault=fault, heal=heal, heal_before=2)
    record(Figure(case="server/smb-restart", group=GROUP,
                  fault="kill -9 of smbd mid-shard (writes in flight), restarted after 1 s", holds=SMB_HOLDS,
                  runs=1, faults_injected=1, files_checked=len(files), converge_s=round(outcome.seconds, 2),
                  seed=seed, notes=f"{outcome.shard_tries} shard tries"))


def run_cli(tmp_path, src: Path, destination: str, conn_id: str, conn: dict) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "airflow_datasync.cli", "run", str(src), destination,
                          "--destination-conn-id", conn_id, "--store", str(tmp_path / "store"), "-q"],
                         env=env, capture_output=True, text=True, timeout=180)
    return out, time.monotonic() - started


@pytest.mark.faults
def test_smb_down_for_good_is_a_clear_error_without_traceback(tmp_path, samba):
    src = tmp_path / "src"
    make_source(src, small=3, seed=1380)
    with FaultProxy(samba.port, seed=1380) as proxy:
        proxy.refuse()
        conn = smb_connection(samba, proxy, encrypt=True)
        out, seconds = run_cli(tmp_path, src, f"smb://127.0.0.1:{proxy.port}/data/down", connection_id("faults_smb_down"),
                               conn)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    assert f"127.0.0.1:{proxy.port}" in out.stderr and "cannot connect" in out.stderr, out.stderr
    assert samba.password not in out.stderr + out.stdout
    record(Figure(case="server/smb-down", group=GROUP, fault="the SMB server refuses every connection",
                  holds="exit 2 with one line naming the server; no traceback; no secret", runs=1,
                  faults_injected=1, files_checked=0, converge_s=round(seconds, 2),
                  notes="time is the whole CLI run to the error (interpreter start included)"))


# -- Azure Blob ------------------------------------------------------------------------------------
AZURE_HOLDS = ("execution SUCCESS and verified; every blob byte-identical; no other blob, no .~ds- blob, "
               "no uncommitted block")


def azure_case(tmp_path, monkeypatch, server, *, proxy: FaultProxy, fault, heal, small: int, big: int, seed: int,
               heal_before: int | None = None, container: str | None = None):
    src = tmp_path / "src"
    files = make_source(src, small=small, big=big, big_size=10 * MIB, seed=seed)
    service = server.service()
    if container is None:
        container = f"faults-{seed}-{time.monotonic_ns() % 10**9}"
        service.create_container(container)
    conn_id = connection_id("faults_azure")
    set_connection(monkeypatch, conn_id, azure_connection(server, proxy))
    outcome = run_through_faults(src, LocationSpec(f"azure://{container}/sync", conn_id), tmp_path / "store",
                                 fault=fault, heal=heal, heal_before=heal_before)
    summary = outcome.summary
    assert summary["Status"] == "SUCCESS", summary
    assert summary["FilesVerified"] >= len(files), summary
    client = service.get_container_client(container)
    names = [b.name for b in client.list_blobs(name_starts_with="sync/")]
    assert not [n for n in names if ".~ds-" in n]
    found = {n[len("sync/"):]: client.download_blob(n).readall() for n in names if not n.endswith("/")}
    assert set(found) == set(files), sorted(set(found) ^ set(files))[:10]
    assert [k for k in files if found[k] != files[k]] == []
    for name in files:  # a blob whose upload was cut keeps no staged block behind its committed list
        blocks = client.get_blob_client(f"sync/{name}").get_block_list("uncommitted")
        assert not blocks[1], (name, blocks[1])
    return files, outcome


def azure_port(server) -> int:
    return int(server.endpoint.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def test_azure_resets_converge(tmp_path, monkeypatch, azurite):
    """Quick case: resets on a third of the connections to Azurite for the first shard try."""
    seed = 1390
    with FaultProxy(azure_port(azurite), seed=seed) as proxy:
        files, outcome = azure_case(tmp_path, monkeypatch, azurite, proxy=proxy, seed=seed, small=40, big=1,
                                    fault=lambda: proxy.reset(after=5000, fraction=0.34), heal=proxy.pass_through,
                                    heal_before=2)
    record(Figure(case="server/azure-proxy", group=GROUP,
                  fault="TCP resets (RST after 5 KB) on a third of the connections to Azurite, first shard try",
                  holds=AZURE_HOLDS, runs=1, faults_injected=proxy.faults_injected, files_checked=len(files),
                  converge_s=round(outcome.seconds, 2), seed=seed,
                  notes=f"{outcome.shard_tries} shard tries; {proxy.connections} connections"))


@pytest.mark.faults
def test_azure_server_killed_and_restarted_mid_shard_converges(tmp_path, monkeypatch, private_azurite):
    seed = 1395

    def kill_and_restart() -> None:
        private_azurite.kill()
        time.sleep(1)
        private_azurite.restart()

    with FaultProxy(private_azurite.port, seed=seed) as proxy:
        trigger = []
        fault = lambda: trigger.append(in_background(lambda: proxy.bytes_up > 6 * MIB, kill_and_restart))  # noqa: E731
        heal = lambda: trigger[0].join(90)  # noqa: E731
        files, outcome = azure_case(tmp_path, monkeypatch, private_azurite.server, proxy=proxy, seed=seed, small=80,
                                    big=2, fault=fault, heal=heal, heal_before=2, container=private_azurite.container)
    record(Figure(case="server/azure-restart", group=GROUP,
                  fault="kill -9 of Azurite (blobs on disk) mid-shard, restarted after 1 s", holds=AZURE_HOLDS,
                  runs=1, faults_injected=1, files_checked=len(files), converge_s=round(outcome.seconds, 2),
                  seed=seed, notes=f"{outcome.shard_tries} shard tries"))


@pytest.mark.faults
def test_azure_down_for_good_is_a_clear_error_without_traceback(tmp_path, azurite):
    src = tmp_path / "src"
    make_source(src, small=3, seed=1399)
    with FaultProxy(azure_port(azurite), seed=1399) as proxy:
        proxy.refuse()
        out, seconds = run_cli(tmp_path, src, "azure://down/x", connection_id("faults_azure_down"),
                               azure_connection(azurite, proxy))
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    assert f"Azure Blob Storage at 127.0.0.1:{proxy.port}" in out.stderr, out.stderr
    assert azurite.key not in out.stderr + out.stdout
    record(Figure(case="server/azure-down", group=GROUP, fault="the Azure Blob endpoint refuses every connection",
                  holds="exit 2 with one line naming the endpoint; no traceback; no secret", runs=1,
                  faults_injected=1, files_checked=0, converge_s=round(seconds, 2),
                  notes="time is the whole CLI run to the error (interpreter start included)"))
