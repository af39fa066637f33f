"""Time the S3 clients the backend could use on the operations it is made of, against SeaweedFS on loopback.

    .venv/bin/python -m bench.s3_clients [--objects 5000] [--runs 3] [--threads 32]

For each client (obstore, our SigV4 transport, boto3) and each operation (PUT of small objects, one
listing of them all, HEAD with user metadata of each, GET of each; with ``--large-mib`` one GET of a
large object) it prints the median wall time and the median CPU time of this process over ``--runs``
runs. Every client gets the same thread pool: that is how the engine calls a location (one copy thread
per file in flight). A fresh bucket per client and run; the clients take turns within each run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import start_seaweedfs

BODY = os.urandom(4096)
META = {"ds-mtime-ns": "1600000000000000000", "ds-mode": "100644", "mtime": "1600000000.000000000"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Obstore:
    name = "obstore"

    def __init__(self, server: Any, bucket: str) -> None:
        from obstore.store import S3Store

        self.store = S3Store(bucket, config={"region": server.region, "access_key_id": server.access_key,
                                             "secret_access_key": server.secret_key, "endpoint": server.endpoint,
                                             "checksum_algorithm": "CRC64NVME"},
                             client_options={"allow_http": True, "pool_max_idle_per_host": "64"})

    def put(self, key: str, body: bytes = BODY) -> None:
        import obstore

        obstore.put(self.store, key, body, attributes=META, use_multipart=False)

    def list_all(self, prefix: str) -> int:
        import obstore

        return sum(batch.num_rows for batch in obstore.list(self.store, prefix, return_arrow=True))

    def head(self, key: str) -> None:
        import obstore

        obstore.get(self.store, key, options={"head": True}).attributes  # noqa: B018 - the metadata read

    def get(self, key: str) -> None:
        import obstore

        for _ in obstore.get(self.store, key).stream(min_chunk_size=1 << 20):
            pass


class SigV4:
    """Our transport (``locations/s3/transport.py``): what the S3 backend and the manifest store use."""

    name = "sigv4"

    def __init__(self, server: Any, bucket: str) -> None:
        from airflow_datasync.locations.s3.sigv4 import SigV4Client
        from airflow_datasync.locations.s3.transport import SigV4Transport

        self.bucket = bucket
        self.transport = SigV4Transport(SigV4Client(server.endpoint, server.region,
                                                    lambda: (server.access_key, server.secret_key, None)))

    def put(self, key: str, body: bytes = BODY) -> None:
        self.transport.put(self.bucket, key, body, META)

    def list_all(self, prefix: str) -> int:
        count, token = 0, None
        while True:
            page = self.transport.list_page(self.bucket, prefix, token)
            count += len(page.contents)
            if page.next_token is None:
                return count
            token = page.next_token

    def head(self, key: str) -> None:
        self.transport.head(self.bucket, key)

    def get(self, key: str) -> None:
        _head, body = self.transport.get(self.bucket, key)
        with body:
            while body.read(1 << 20):
                pass


class Boto3:
    name = "boto3"

    def __init__(self, server: Any, bucket: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=server.endpoint, region_name=server.region, aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            config=Config(max_pool_connections=64, request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def put(self, key: str, body: bytes = BODY) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=META, ChecksumAlgorithm="CRC64NVME")

    def list_all(self, prefix: str) -> int:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sum(len(page.get("Contents") or []) for page in pages)

    def head(self, key: str) -> None:
        self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")

    def get(self, key: str) -> None:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        for _ in body.iter_chunks(1 << 20):
            pass


CLIENTS = {"obstore": Obstore, "sigv4": SigV4, "boto3": Boto3}


def _timed(work: Callable[[], Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    work()
    return time.perf_counter() - wall, _cpu() - cpu


def run_once(server: Any, admin: Any, client_name: str, run: int, objects: int, threads: int,
             large_mib: int) -> dict[str, tuple[float, float]]:
    bucket = f"bench-{client_name}-{run}-{os.getpid()}"
    admin.create_bucket(Bucket=bucket)
    client = CLIENTS[client_name](server, bucket)
    keys = [f"tree/d{i % 50:02d}/f{i:05d}.bin" for i in range(objects)]
    client.list_all("warm/")  # connections and signing keys ready before the clock starts
    out: dict[str, tuple[float, float]] = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        out["put"] = _timed(lambda: list(pool.map(client.put, keys)))
        counted: list[int] = []
        out["list"] = _timed(lambda: counted.append(client.list_all("tree/")))
        assert counted == [objects], counted
        out["head"] = _timed(lambda: list(pool.map(client.head, keys)))
        out["get"] = _timed(lambda: list(pool.map(client.get, keys)))
    if large_mib:
        admin.put_object(Bucket=bucket, Key="large.bin", Body=os.urandom(large_mib << 20))  # only the GET is timed
        out["get_large"] = _timed(lambda: client.get("large.bin"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--large-mib", type=int, default=0, help="also GET one object of this many MiB")
    args = parser.parse_args()
    server = start_seaweedfs()
    try:
        admin = server.client()
        results: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for run in range(args.runs):
            for name in args.clients.split(","):  # interleaved: a busy moment of the machine hits every client
                for op, figure in run_once(server, admin, name, run, args.objects, args.threads, args.large_mib).items():
                    results.setdefault(name, {}).setdefault(op, []).append(figure)
        print(f"{args.objects} objects of 4 KiB, {args.threads} threads, median of {args.runs} runs "
              "(wall s / CPU s of this process); load average now "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        names = [op for op in ("put", "list", "head", "get", "get_large") if op in next(iter(results.values()))]
        print(f"{'client':<8} " + " ".join(f"{op:>16}" for op in names))
        for name, ops in results.items():
            cells = [f"{statistics.median(w for w, _ in ops[op]):7.2f} /{statistics.median(c for _, c in ops[op]):6.2f}"
                     for op in names]
            print(f"{name:<8} " + " ".join(f"{c:>16}" for c in cells))
        print(json.dumps({name: {op: figures for op, figures in ops.items()} for name, ops in results.items()}))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
