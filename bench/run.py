"""The benchmark harness of issues 5 and 14: airflow-datasync against rclone, cp and aws s3 sync, same data, same run.

    make bench                                   # quick profile (everything but the 1M-file PREPARING)
    make bench-full                              # adds PREPARING of 1,000,000 files
    .venv/bin/python -m bench.run --help         # every knob: runs, sizes, scenarios, tools

Servers (SeaweedFS for S3, Samba for SMB) run on 127.0.0.1 and are started and stopped here. Every tool
runs as a child process measured by :mod:`bench.measure` (wall, user+sys CPU, peak RSS); runs of the
tools alternate (the order rotates every round) and every run starts from a clean destination, except
the re-run scenario. Results go to ``bench/results/<date>.json`` and the table into
``docs/benchmarks.md`` between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import datasets as ds  # noqa: E402
from bench import mounts, report, scale_rows  # noqa: E402
from bench.measure import RSS_METHOD, Measurement, measure  # noqa: E402

VENV_BIN = REPO / ".venv" / "bin"
PY = str(VENV_BIN / "python")
S3_CONN_ID = "datasync_bench_s3"
SMB_CONN_ID = "datasync_bench_smb"
RCLONE_TUNED = ["--transfers", "32", "--checkers", "32"]
#: A destination of at least this many files stays until the harness ends (Harness.drop_after).
KEEP_DESTINATIONS_FROM_FILES = 1000

SCENARIOS = ["empty", "local-local", "local-s3", "s3-local", "s3-s3", "local-smb", "smb-local", "smb-s3", "s3-smb",
             "rerun-s3", "rerun-smb", "verify-s3", "prepare", "prepare-synthetic", "airflow-e2e", "local-mount",
             "mount-local"]
#: Issue 14's rows: every direction through SMB. cp is no peer there (smbd's disk is local here, so `cp` would
#: bypass the protocol), aws does not speak SMB, and ours-nosync only differs on a local destination.
SMB_COPY_SCENARIOS = {"local-smb": ("local", "smb"), "smb-local": ("smb", "local"), "smb-s3": ("smb", "s3"),
                      "s3-smb": ("s3", "smb")}
SMB_TOOLS = ("ours", "rclone", "rclone-tuned")
TOOLS = ["ours", "ours-nosync", "rclone", "rclone-tuned", "cp", "cp-sync", "aws"]

PROFILES = {
    # `make bench`: must fit ~15–20 min on 2 cores. Target rows (local→local, local→S3 on both datasets,
    # re-run, e2e; issue 14: every SMB direction on both datasets and the SMB re-run) get the full run count;
    # the wider matrix gets `other_runs`. aws s3 sync runs on the target rows only (`aws_other_rows`): on the
    # stdlib tree alone it cost ~190 s of a quick run and decides no target.
    "quick": dict(runs=3, other_runs=1, small_count=5000, small_size=4096, big_count=2, big_mib=500,
                  other_big_mib=100, prepare_counts=[10_000, 100_000], stdlib=True, aws_other_rows=False,
                  synthetic_counts=[]),
    "full": dict(runs=3, other_runs=3, small_count=5000, small_size=4096, big_count=2, big_mib=500,
                 other_big_mib=500, prepare_counts=[10_000, 100_000, 1_000_000], stdlib=True, aws_other_rows=True,
                 synthetic_counts=[1_000_000, 3_000_000, 10_000_000]),
    # tests/bench: a few dozen files, local→local, local→S3, local→SMB and the SMB re-run, one run each.
    "tiny": dict(runs=1, other_runs=1, small_count=40, small_size=4096, big_count=1, big_mib=1,
                 other_big_mib=1, prepare_counts=[200], stdlib=False, big=False, aws_other_rows=True,
                 synthetic_counts=[2_000]),
}


# -- locations ---------------------------------------------------------------------------------------
@dataclass
class Loc:
    """One side of a transfer, spelled for every tool."""

    kind: str  # local | s3 | smb
    path: Path | None = None  # local path; for smb where smbd keeps it on disk
    bucket: str = ""
    prefix: str = ""
    smb_port: int = 0
    smb_share: str = "data"
    smb_folder: str = ""

    @property
    def ours(self) -> str:
        if self.kind == "local":
            return str(self.path)
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"smb://127.0.0.1:{self.smb_port}/{self.smb_share}/{self.smb_folder}"

    @property
    def conn_id(self) -> str | None:
        # S3: the same environment credentials rclone and aws get (AWS_* and AWS_ENDPOINT_URL), as a CLI user
        # would pass them; an Airflow connection id would add Airflow's import time to every run.
        return {"local": None, "s3": None, "smb": SMB_CONN_ID}[self.kind]

    @property
    def rclone(self) -> str:
        if self.kind == "local":
            return str(self.path)
        if self.kind == "s3":
            return f"bs3:{self.bucket}/{self.prefix}".rstrip("/")
        return f"bsmb:{self.smb_share}/{self.smb_folder}"

    @property
    def aws(self) -> str:
        return str(self.path) if self.kind == "local" else f"s3://{self.bucket}/{self.prefix}".rstrip("/")


@dataclass
class Row:
    scenario: str
    dataset: str
    tool: str
    variant: str
    files: int
    bytes: int
    runs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    command: str = ""


# -- the harness ---------------------------------------------------------------------------------------
class Harness:
    def __init__(self, args: argparse.Namespace, settings: dict) -> None:
        self.args = args
        self.settings = settings
        self.work = Path(args.work).resolve()
        self.data = self.work / "data"
        self.scratch = self.work / "scratch"
        self.logs = self.work / "logs"
        self.store = self.work / "store"
        self.rows: list[Row] = []
        self.skipped: dict[str, str] = {}
        self.s3 = None
        self.smb = None
        self.aws_bin: str | None = None
        #: Many-file local and SMB destinations kept to the end of the harness (see :meth:`drop_after`).
        self._kept: list[Loc] = []
        self.rclone_bin = str(VENV_BIN / "rclone") if (VENV_BIN / "rclone").exists() else shutil.which("rclone")
        self._s3_client = None
        self._counter = 0
        self._sources: dict[tuple[str, str], Loc] = {}

    # -- servers -----------------------------------------------------------------------------------
    def start_servers(self, need_s3: bool, need_smb: bool) -> None:
        from tests.servers import start_seaweedfs

        if need_s3:
            t0 = time.monotonic()
            self.s3 = start_seaweedfs(access_key="datasync-bench-key", secret_key="datasync-bench-secret-Rt5")
            self._s3_client = self.s3.client()
            print(f"SeaweedFS S3 on {self.s3.endpoint} (ready in {time.monotonic() - t0:.1f} s)", flush=True)
        if need_smb:
            from tests.locations.smb.smbd_server import INSTALL_HINT, start_samba

            if not (shutil.which("smbd") or os.path.exists("/usr/sbin/smbd")):
                self.skipped["smb"] = INSTALL_HINT
                print(f"SMB scenarios skipped: {INSTALL_HINT}", flush=True)
                return
            root = self.work / "samba"
            shutil.rmtree(root, ignore_errors=True)
            self.smb = start_samba(root)
            print(f"Samba smbd on 127.0.0.1:{self.smb.port}", flush=True)

    def stop_servers(self) -> None:
        for loc in self._kept:
            self.drop(loc)
        self._kept.clear()
        if self.smb is not None:
            self.smb.stop()
            shutil.rmtree(self.smb.root, ignore_errors=True)
        if self.s3 is not None:
            self.s3.stop()

    # -- environments (credentials only here, never in results) ---------------------------------------
    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "RCLONE_", "AIRFLOW_CONN_", "AIRFLOW__", "AIRFLOW_HOME"))}
        env["HOME"] = str(self.work / "home")
        env["AIRFLOW_HOME"] = str(self.work / "airflow-home")
        env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
        return env

    def ours_env(self) -> dict[str, str]:
        env = self.base_env()
        if self.s3 is not None:
            env[f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"] = self.s3.connection_uri_json()  # the Airflow run uses it
            env.update({"AWS_ACCESS_KEY_ID": self.s3.access_key, "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
                        "AWS_DEFAULT_REGION": self.s3.region, "AWS_ENDPOINT_URL": self.s3.endpoint,
                        "AWS_CONFIG_FILE": str(self.work / "home" / "aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(self.work / "home" / "aws-credentials")})
        if self.smb is not None:
            env[f"AIRFLOW_CONN_{SMB_CONN_ID.upper()}"] = json.dumps({
                "conn_type": "datasync_smb", "host": "127.0.0.1", "port": self.smb.port, "login": self.smb.user,
                "password": self.smb.password, "extra": {"require_signing": True}})
        return env

    def rclone_env(self) -> dict[str, str]:
        env = self.base_env()
        env["RCLONE_CONFIG"] = str(self.work / "home" / "rclone.conf")  # empty: remotes come from the env
        if self.s3 is not None:
            env.update({"RCLONE_CONFIG_BS3_TYPE": "s3", "RCLONE_CONFIG_BS3_PROVIDER": "SeaweedFS",
                        "RCLONE_CONFIG_BS3_ENV_AUTH": "false",
                        "RCLONE_CONFIG_BS3_ACCESS_KEY_ID": self.s3.access_key,
                        "RCLONE_CONFIG_BS3_SECRET_ACCESS_KEY": self.s3.secret_key,
                        "RCLONE_CONFIG_BS3_ENDPOINT": self.s3.endpoint, "RCLONE_CONFIG_BS3_REGION": self.s3.region})
        if self.smb is not None:
            obscured = subprocess.run([self.rclone_bin, "obscure", "-"], input=self.smb.password, text=True,
                                      capture_output=True, check=True, env=env).stdout.strip()
            env.update({"RCLONE_CONFIG_BSMB_TYPE": "smb", "RCLONE_CONFIG_BSMB_HOST": "127.0.0.1",
                        "RCLONE_CONFIG_BSMB_PORT": str(self.smb.port), "RCLONE_CONFIG_BSMB_USER": self.smb.user,
                        "RCLONE_CONFIG_BSMB_PASS": obscured})
        return env

    def aws_env(self) -> dict[str, str]:
        env = self.base_env()
        env.update({"AWS_ACCESS_KEY_ID": self.s3.access_key, "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
                    "AWS_DEFAULT_REGION": self.s3.region, "AWS_CONFIG_FILE": str(self.work / "home" / "aws-config"),
                    "AWS_SHARED_CREDENTIALS_FILE": str(self.work / "home" / "aws-credentials")})
        return env

    def setup_env(self) -> None:
        for d in (self.data, self.scratch, self.logs, self.store, self.work / "home", self.work / "airflow-home"):
            d.mkdir(parents=True, exist_ok=True)
        (self.work / "home" / "rclone.conf").touch()
        self._rclone_env = self.rclone_env()
        self._ours_env = self.ours_env()
        self._aws_env = self.aws_env() if self.s3 is not None else None

    def install_awscli(self) -> None:
        """awscli pins an older botocore: it gets a venv of its own under the work dir, never the project's."""
        venv = self.work / "awscli-venv"
        aws = venv / "bin" / "aws"
        if not aws.exists():
            uv = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
            try:
                subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True,
                               capture_output=True, timeout=300)
                subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "awscli"],
                               check=True, capture_output=True, timeout=600,
                               env=dict(os.environ, UV_COMPILE_BYTECODE="1"))
            except (OSError, subprocess.SubprocessError) as exc:
                detail = getattr(exc, "stderr", b"") or b""
                self.skipped["aws"] = f"awscli did not install: {exc} {detail.decode(errors='replace')[-300:]}"
                print(f"aws s3 sync skipped: {self.skipped['aws']}", flush=True)
                return
        self.aws_bin = str(aws)

    # -- S3 helpers --------------------------------------------------------------------------------
    def new_bucket(self, tag: str) -> str:
        self._counter += 1
        name = f"b{self._counter:04d}-{tag}"[:50].lower().replace("_", "-").rstrip("-") + f"-{uuid.uuid4().hex[:6]}"
        self._s3_client.create_bucket(Bucket=name)
        return name

    def drop_bucket(self, name: str) -> None:
        client = self._s3_client
        for _ in range(10_000):  # bounded: 1,000 keys per round
            resp = client.list_objects_v2(Bucket=name, MaxKeys=1000)
            keys = [{"Key": o["Key"]} for o in resp.get("Contents", [])]
            if not keys:
                break
            client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        try:
            client.delete_bucket(Bucket=name)
        except Exception as exc:
            print(f"  (could not delete bucket {name}: {exc})", flush=True)

    def s3_count(self, bucket: str, prefix: str = "") -> tuple[int, int]:
        files = size = 0
        for page in self._s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                if not o["Key"].endswith("/"):
                    files += 1
                    size += o["Size"]
        return files, size

    # -- destinations --------------------------------------------------------------------------------
    def new_dest(self, kind: str, tag: str) -> Loc:
        self._counter += 1
        if kind == "local":
            return Loc("local", self.scratch / f"dst-{self._counter:04d}-{tag}")
        if kind == "s3":
            return Loc("s3", bucket=self.new_bucket(tag), prefix="data")
        folder = f"dst-{self._counter:04d}-{tag}"
        return Loc("smb", path=self.smb.shares["data"] / folder, smb_port=self.smb.port, smb_folder=folder)

    def drop_after(self, loc: Loc, dataset: ds.Dataset) -> None:
        """Drop a destination after its run, except a many-file one on a local disk (local or the share's
        folder), kept until :meth:`stop_servers`: ext4 skips inodes freed in the last 30 s when it allocates,
        so deleting 5,000 files slows the file creation of whichever run comes next (``recently_deleted`` in
        perf), a cost of the harness's order, not of the tool measured."""
        if loc.kind != "s3" and dataset.files >= KEEP_DESTINATIONS_FROM_FILES:
            self._kept.append(loc)
        else:
            self.drop(loc)

    def drop(self, loc: Loc) -> None:
        if loc.kind == "s3":
            self.drop_bucket(loc.bucket)
        elif loc.path is not None:
            shutil.rmtree(loc.path, ignore_errors=True)

    def count(self, loc: Loc) -> tuple[int, int]:
        if loc.kind == "s3":
            return self.s3_count(loc.bucket, loc.prefix)
        files = size = 0
        if loc.path is None or not loc.path.exists():
            return 0, 0
        for dirpath, _dirs, names in os.walk(loc.path):
            for n in names:
                p = os.path.join(dirpath, n)
                if os.path.islink(p):
                    files += 1
                    continue
                files += 1
                size += os.lstat(p).st_size
        return files, size

    def source(self, kind: str, dataset: ds.Dataset) -> Loc:
        """The dataset where a scenario reads it: the local tree, or a copy staged (untimed) in S3 or on the share."""
        key = (kind, dataset.name)
        if key in self._sources:
            return self._sources[key]
        local = Loc("local", dataset.path)
        if kind == "local":
            loc = local
        elif kind == "s3":
            loc = Loc("s3", bucket=self.new_bucket("src-" + dataset.name), prefix="data")
            self._stage(local, loc)
        else:
            folder = f"src-{dataset.name}"
            disk = self.smb.shares["data"] / folder
            shutil.rmtree(disk, ignore_errors=True)
            shutil.copytree(dataset.path, disk, symlinks=True)
            loc = Loc("smb", path=disk, smb_port=self.smb.port, smb_folder=folder)
        self._sources[key] = loc
        return loc

    def _stage(self, src: Loc, dst: Loc) -> None:
        t0 = time.monotonic()
        m = measure([self.rclone_bin, "copy", src.rclone, dst.rclone, "-q", *RCLONE_TUNED], self._rclone_env,
                    self.logs / f"stage-{dst.bucket}.log")
        if not m.ok:
            raise RuntimeError(f"staging {src.ours} into S3 failed: see {m.log}")
        print(f"  staged {src.path.name} in s3://{dst.bucket} ({time.monotonic() - t0:.1f} s, untimed)", flush=True)

    # -- tool commands ----------------------------------------------------------------------------------
    def command(self, tool: str, src: Loc, dst: Loc, options: dict | None = None) -> tuple[list[str], dict] | None:
        """The command that copies src → dst with ``tool``, or None where the tool does not apply."""
        if tool in ("ours", "ours-nosync"):
            if tool == "ours-nosync":  # the same engine without the per-shard syncfs, as cp and rclone copy
                if dst.kind != "local":
                    return None
                options = {**(options or {}), "sync_writes": "false"}
            cmd = [PY, "-m", "airflow_datasync.cli", "run", src.ours, dst.ours, "--store", str(self.store),
                   "--task-name", "bench", "--json", "-q"]
            for k, v in (options or {}).items():
                cmd += ["--option", f"{k}={v}"]
            if src.conn_id:
                cmd += ["--source-conn-id", src.conn_id]
            if dst.conn_id:
                cmd += ["--destination-conn-id", dst.conn_id]
            return cmd, self._ours_env
        if tool in ("rclone", "rclone-tuned"):
            cmd = [self.rclone_bin, "copy", src.rclone, dst.rclone, "-q"]
            return (cmd + RCLONE_TUNED if tool == "rclone-tuned" else cmd), self._rclone_env
        if tool == "cp":
            if src.kind == dst.kind == "local":
                return ["cp", "-r", str(src.path), str(dst.path)], self.base_env()
            return None
        if tool == "cp-sync":  # the fair peer of an engine that flushes: cp, then syncfs of the destination's file system
            if src.kind == dst.kind == "local":
                return ["sh", "-c", 'cp -r "$1" "$2" && sync -f "$2"', "cp-sync", str(src.path), str(dst.path)], self.base_env()
            return None
        if tool == "aws":
            if self.aws_bin is None or "smb" in (src.kind, dst.kind) or "s3" not in (src.kind, dst.kind):
                return None
            return [self.aws_bin, "s3", "sync", src.aws, dst.aws, "--endpoint-url", self.s3.endpoint,
                    "--only-show-errors"], self._aws_env
        raise ValueError(tool)

    def _log(self, *parts: str) -> Path:
        self._counter += 1
        return self.logs / (f"{self._counter:05d}-" + "-".join(parts) + ".log")

    def _record(self, row: Row, m: Measurement, extra: dict | None = None) -> None:
        run = {"wall": round(m.wall, 4), "cpu": round(m.cpu, 4), "user": round(m.user, 4), "sys": round(m.sys, 4),
               "max_rss": m.max_rss, "rc": m.returncode, "load1": round(m.load1, 2), **(extra or {})}
        row.runs.append(run)
        if m.returncode == -9:
            row.notes.append(f"run {len(row.runs) - 1}: killed after {m.wall:.0f} s (timeout or stalled)")
        status = "ok" if m.ok else f"FAILED rc={m.returncode} (log {m.log})"
        print(f"    {row.tool:<13} {m.wall:8.2f} s  cpu {m.cpu:7.2f} s  rss {m.max_rss / 2**20:7.0f} MiB  "
              f"load {m.load1:4.1f}  {status}",
              flush=True)

    def _ours_check(self, m: Measurement) -> str | None:
        """Our CLI prints the summary as JSON: a run that exits 0 but reports ERROR is a failure too."""
        if not m.ok:
            return None
        text = Path(m.log).read_text(errors="replace")
        start = text.find("{")
        try:
            summary = json.loads(text[start:]) if start >= 0 else {}
        except ValueError:
            return "summary not JSON"
        return summary.get("Status")

    # -- scenarios --------------------------------------------------------------------------------------
    def copy_scenario(self, scenario: str, src_kind: str, dst_kind: str, dataset: ds.Dataset, tools: list[str],
                      runs: int) -> None:
        src = self.source(src_kind, dataset)
        rows: dict[str, Row] = {}
        for t in tools:
            probe = self.command(t, src, Loc(dst_kind, path=Path("/x"), bucket="x", prefix="data"))
            if probe is not None:
                rows[t] = Row(scenario, dataset.name, t, variant_of(t), dataset.files, dataset.bytes,
                              command=redact_cmd(probe[0], self.work))
        print(f"  {scenario} · {dataset.name} · {runs} run(s) · {', '.join(rows)}", flush=True)
        names = list(rows)
        for i in range(runs):
            for t in names[i % len(names):] + names[:i % len(names)]:
                dst = self.new_dest(dst_kind, f"{scenario}-{t}")
                cmd, env = self.command(t, src, dst)
                m = measure(cmd, env, self._log(scenario, dataset.name, t, str(i)), timeout=self.args.timeout)
                extra = {}
                if t.startswith("ours") and m.ok and (status := self._ours_check(m)) != "SUCCESS":
                    rows[t].notes.append(f"run {i}: report status {status}")
                    m.returncode = 1
                if i == 0:
                    files, size = self.count(dst)
                    extra = {"dest_files": files, "dest_bytes": size}
                    if (files, size) != (dataset.files, dataset.bytes):
                        rows[t].notes.append(f"destination holds {files} files / {size} bytes, "
                                             f"source {dataset.files} / {dataset.bytes}")
                self._record(rows[t], m, extra)
                self.drop_after(dst, dataset)
        self.rows.extend(rows.values())

    def rerun_scenario(self, dataset: ds.Dataset, tools: list[str], runs: int, dst_kind: str = "s3") -> None:
        """Each tool syncs its own destination once (untimed), then re-runs with nothing changed (timed)."""
        scenario = f"rerun-{dst_kind}"
        src = self.source("local", dataset)
        rows, dests = {}, {}
        for t in tools:
            if self.command(t, src, Loc(dst_kind, bucket="x")) is None:
                continue
            dst = self.new_dest(dst_kind, f"rerun-{t}")
            cmd, env = self.command(t, src, dst)
            m = measure(cmd, env, self._log(scenario, "initial", t), timeout=self.args.timeout)
            if not m.ok:
                print(f"    {t}: initial sync failed ({m.log}); skipped", flush=True)
                self.drop(dst)
                continue
            rows[t] = Row(scenario, dataset.name, t, variant_of(t), dataset.files, dataset.bytes,
                          command=redact_cmd(cmd, self.work))
            dests[t] = dst
        print(f"  {scenario} · {dataset.name} · {runs} run(s) · {', '.join(rows)} (initial syncs done, untimed)",
              flush=True)
        names = list(rows)
        for i in range(runs):
            for t in names[i % len(names):] + names[:i % len(names)]:
                cmd, env = self.command(t, src, dests[t])
                m = measure(cmd, env, self._log(scenario, t, str(i)), timeout=self.args.timeout)
                if t.startswith("ours") and m.ok and (status := self._ours_check(m)) != "SUCCESS":
                    rows[t].notes.append(f"run {i}: report status {status}")
                    m.returncode = 1
                self._record(rows[t], m)
        for dst in dests.values():
            self.drop(dst)
        self.rows.extend(rows.values())

    def verify_scenario(self, dataset: ds.Dataset, runs: int) -> None:
        """A tree already in sync (written by us): our POINT_IN_TIME_CONSISTENT run vs `rclone check`."""
        scenario = "verify-s3"
        src = self.source("local", dataset)
        dst = self.new_dest("s3", "verify")
        cmd, env = self.command("ours", src, dst)
        m = measure(cmd, env, self._log(scenario, "initial"), timeout=self.args.timeout)
        if not m.ok:
            print(f"  {scenario}: initial sync failed ({m.log}); skipped", flush=True)
            self.drop(dst)
            return
        variants = {
            "ours": self.command("ours", src, dst, {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}),
            "rclone": ([self.rclone_bin, "check", src.rclone, dst.rclone, "-q"], self._rclone_env),
            "rclone-tuned": ([self.rclone_bin, "check", src.rclone, dst.rclone, "-q", "--checkers", "32"],
                             self._rclone_env),
        }
        variant_names = {"ours": "run, VerifyMode=POINT_IN_TIME_CONSISTENT (nothing to copy)",
                         "rclone": "rclone check (defaults)", "rclone-tuned": "rclone check --checkers 32"}
        rows = {t: Row(scenario, dataset.name, t, variant_names[t], dataset.files, dataset.bytes,
                       command=redact_cmd(c[0], self.work)) for t, c in variants.items()}
        print(f"  {scenario} · {dataset.name} · {runs} run(s) · {', '.join(rows)}", flush=True)
        names = list(rows)
        for i in range(runs):
            for t in names[i % len(names):] + names[:i % len(names)]:
                cmd, env = variants[t]
                m = measure(cmd, env, self._log(scenario, t, str(i)), timeout=self.args.timeout)
                if t.startswith("ours") and m.ok and (status := self._ours_check(m)) != "SUCCESS":
                    rows[t].notes.append(f"run {i}: report status {status}")
                    m.returncode = 1
                self._record(rows[t], m)
        self.drop(dst)
        self.rows.extend(rows.values())

    def empty_scenario(self, dataset: ds.Dataset, tools: list[str], runs: int) -> None:
        """Issue 16's fixed cost of an execution: our CLI over an empty tree into an empty local folder
        (LAUNCHING → report, nothing to do), and `rclone copy` of the same empty tree for reference."""
        scenario = "empty"
        src = Loc("local", dataset.path)
        rows = {t: Row(scenario, dataset.name, t, variant_of(t), 0, 0,
                       command=redact_cmd(self.command(t, src, Loc("local", path=Path("/x")))[0], self.work))
                for t in tools if t in ("ours", "rclone")}
        print(f"  {scenario} · {runs} run(s) · {', '.join(rows)}", flush=True)
        names = list(rows)
        for i in range(runs):
            for t in names[i % len(names):] + names[:i % len(names)]:
                dst = self.new_dest("local", f"empty-{t}")
                dst.path.mkdir(parents=True)
                cmd, env = self.command(t, src, dst)
                m = measure(cmd, env, self._log(scenario, t, str(i)), timeout=self.args.timeout)
                if t == "ours" and m.ok and (status := self._ours_check(m)) != "SUCCESS":
                    rows[t].notes.append(f"run {i}: report status {status}")
                    m.returncode = 1
                self._record(rows[t], m)
                self.drop(dst)
        self.rows.extend(rows.values())

    def prepare_scenario(self, dataset: ds.Dataset, runs: int) -> None:
        """PREPARING only (LAUNCHING + PREPARING: list both sides, diff, shards, manifest) into an empty
        local destination, against `rclone copy --dry-run` (lists both sides and decides, copies nothing)."""
        scenario = "prepare"
        src = Loc("local", dataset.path)
        rows = {
            "ours": Row(scenario, dataset.name, "ours", "LAUNCHING + PREPARING (bench/prepare_only.py)",
                        dataset.files, dataset.bytes),
            "rclone": Row(scenario, dataset.name, "rclone", "rclone copy --dry-run (defaults)", dataset.files,
                          dataset.bytes),
        }
        print(f"  {scenario} · {dataset.name} · {runs} run(s) · ours, rclone --dry-run", flush=True)
        for i in range(runs):
            for t in (["ours", "rclone"] if i % 2 == 0 else ["rclone", "ours"]):
                dst = self.new_dest("local", f"prep-{t}")
                dst.path.mkdir(parents=True)
                if t == "ours":
                    cmd = [PY, "-m", "bench.prepare_only", str(src.path), str(dst.path), "--store", str(self.store)]
                    m = measure(cmd, self._ours_env, self._log(scenario, dataset.name, t, str(i)),
                                timeout=self.args.timeout, cwd=str(REPO))
                    extra = {}
                    if m.ok:
                        text = Path(m.log).read_text(errors="replace")
                        try:
                            rec = json.loads(text[text.find("{"):])
                            extra = {"prepare_ms": rec.get("duration_ms"), "shards": rec.get("shard_count"),
                                     "source_entries": rec.get("source_entries")}
                        except ValueError:
                            pass
                    shutil.rmtree(self.store / "bench-prepare", ignore_errors=True)
                else:
                    cmd = [self.rclone_bin, "copy", "--dry-run", "-q", str(src.path), str(dst.path)]
                    m = measure(cmd, self._rclone_env, self._log(scenario, dataset.name, t, str(i)),
                                timeout=self.args.timeout)
                    extra = {}
                rows[t].command = redact_cmd(cmd, self.work)
                self._record(rows[t], m, extra)
                self.drop_after(dst, dataset)
        self.rows.extend(rows.values())

    def _dags_test(self, airflow: str, log: Path) -> list[str]:
        """`airflow dags test`, or with --ti-probe the same in bench/ti_probe.py (per task instance CPU)."""
        if self.args.ti_probe:
            return [PY, "-m", "bench.ti_probe", "--out", f"{log}.ti.jsonl", "--", "dags", "test"]
        return [airflow, "dags", "test"]

    def airflow_scenario(self, dataset: ds.Dataset, runs: int) -> None:
        """`airflow dags test` of the bench DAG (5,000 files → S3, POINT_IN_TIME_CONSISTENT) vs rclone copy + check."""
        scenario = "airflow-e2e"
        src = self.source("local", dataset)
        env = dict(self._ours_env)
        env.update({"AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "bench" / "dags"),
                    "AIRFLOW_DATASYNC_MANIFEST_STORE": str(self.store / "airflow"),
                    "DATASYNC_BENCH_DESTINATION_CONN_ID": S3_CONN_ID})
        airflow = str(VENV_BIN / "airflow")
        t0 = time.monotonic()
        m = measure([airflow, "db", "migrate"], env, self._log(scenario, "db-migrate"), timeout=600)
        if not m.ok:
            self.skipped[scenario] = f"airflow db migrate failed: see {m.log}"
            print(f"  {scenario} skipped: {self.skipped[scenario]}", flush=True)
            return
        print(f"  {scenario}: airflow db migrate in {time.monotonic() - t0:.1f} s (untimed)", flush=True)
        options = {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}
        rows = {
            "ours": Row(scenario, dataset.name, "ours", "airflow dags test, VerifyMode=POINT_IN_TIME_CONSISTENT",
                        dataset.files, dataset.bytes),
            # What `airflow dags test` itself costs for a DAG of our shape (bench/dags_baseline): shown apart,
            # and subtracted from ours in the row's notes.
            "airflow-empty": Row(scenario, dataset.name, "airflow-empty",
                                 "airflow dags test of the same six tasks doing nothing (baseline)", 0, 0),
            "rclone": Row(scenario, dataset.name, "rclone", "rclone copy + rclone check (defaults)", dataset.files,
                          dataset.bytes),
            "rclone-tuned": Row(scenario, dataset.name, "rclone-tuned",
                                "rclone copy + rclone check, --transfers 32 --checkers 32", dataset.files,
                                dataset.bytes),
        }
        print(f"  {scenario} · {dataset.name} · {runs} run(s) · {', '.join(rows)}", flush=True)
        names = list(rows)
        for i in range(runs):
            for t in names[i % len(names):] + names[:i % len(names)]:
                dst = self.new_dest("s3", f"e2e-{t}")
                if t == "ours":
                    conf = {"source": src.ours, "destination": dst.ours, "options": options}
                    log = self._log(scenario, t, str(i))
                    cmd = [*self._dags_test(airflow, log), "bench_datasync_e2e", "--conf", json.dumps(conf)]
                    m = measure(cmd, env, log, timeout=self.args.timeout, cwd=str(REPO))
                    status = _latest_report_status(self.store / "airflow" / "bench-e2e")
                    if m.ok and status != "SUCCESS":
                        rows[t].notes.append(f"run {i}: report status {status}")
                        m.returncode = 1
                elif t == "airflow-empty":
                    log = self._log(scenario, t, str(i))
                    cmd = [*self._dags_test(airflow, log), "bench_empty_e2e"]
                    baseline_env = dict(env, AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "bench" / "dags_baseline"))
                    m = measure(cmd, baseline_env, log, timeout=self.args.timeout, cwd=str(REPO))
                else:
                    flags = " ".join(RCLONE_TUNED) if t == "rclone-tuned" else ""
                    script = (f"{self.rclone_bin} copy {src.rclone} {dst.rclone} -q {flags} && "
                              f"{self.rclone_bin} check {src.rclone} {dst.rclone} -q {flags}")
                    cmd = ["sh", "-c", script]
                    m = measure(cmd, self._rclone_env, self._log(scenario, t, str(i)), timeout=self.args.timeout)
                rows[t].command = redact_cmd(cmd, self.work)
                extra = {}
                if i == 0 and t != "airflow-empty":
                    files, size = self.count(dst)
                    extra = {"dest_files": files, "dest_bytes": size}
                if t in ("ours", "airflow-empty"):
                    extra["task_instances_run"] = _task_instances_run(m.log)
                    if self.args.ti_probe:
                        extra["ti_probe"] = _ti_probe_lines(m.log)
                self._record(rows[t], m, extra)
                self.drop_after(dst, dataset)
        rows["ours"].notes.extend(_net_of_baseline(rows["ours"], rows["airflow-empty"]))
        self.rows.extend(rows.values())


def _ti_probe_lines(log: str | Path) -> list[dict]:
    """What bench/ti_probe.py recorded for one run: each task instance's CPU and its execute()'s."""
    try:
        return [json.loads(line) for line in Path(f"{log}.ti.jsonl").read_text().splitlines() if line]
    except (OSError, ValueError):
        return []


def _net_of_baseline(ours: Row, baseline: Row) -> list[str]:
    """Ours minus the empty-DAG baseline of the same run, medians of wall and CPU: what our tasks cost."""
    done = [[r for r in row.runs if r["rc"] == 0] for row in (ours, baseline)]
    if not all(done):
        return []
    med = [{k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu")} for runs in done]
    tis = [sorted({r.get("task_instances_run") for r in runs}) for runs in done]
    return [f"net of the empty-DAG baseline (medians): {med[0]['wall'] - med[1]['wall']:.2f} s wall, "
            f"{med[0]['cpu'] - med[1]['cpu']:.2f} s CPU (baseline {med[1]['wall']:.2f} s wall, "
            f"{med[1]['cpu']:.2f} s CPU); task instances run: ours {'/'.join(map(str, tis[0]))}, "
            f"baseline {'/'.join(map(str, tis[1]))}"]


def _task_instances_run(log: str | Path) -> int | None:
    """How many task instances `airflow dags test` ran (its execution API logs each start; a mapped task
    mapped over nothing is skipped without one)."""
    try:
        return Path(log).read_text(errors="replace").count("] Task started ")
    except OSError:
        return None


def _latest_report_status(task_dir: Path) -> str | None:
    if not task_dir.exists():
        return None
    runs = sorted(p for p in task_dir.iterdir() if p.is_dir())
    if not runs or not (runs[-1] / "report.json").exists():
        return None
    return json.loads((runs[-1] / "report.json").read_text()).get("Status")


def variant_of(tool: str) -> str:
    return {"ours": "airflow-datasync CLI, default options",
            "ours-nosync": "airflow-datasync CLI, sync_writes=false (no syncfs, like cp/rclone)",
            "rclone": "rclone copy (defaults)",
            "rclone-tuned": "rclone copy --transfers 32 --checkers 32", "cp": "cp -r",
            "cp-sync": "cp -r && sync -f DST (flushes, as ours does by default)",
            "aws": "aws s3 sync (defaults)"}[tool]


def redact_cmd(cmd: list[str], work: Path) -> str:
    """The command for the record: paths relative to the work dir, the interpreter shortened."""
    text = " ".join(cmd)
    text = text.replace(str(work), "$WORK").replace(str(REPO), ".")
    return text


# -- main ----------------------------------------------------------------------------------------------
def required_bytes(p: dict, scenarios: list[str]) -> int:
    big = p["big_count"] * (p["big_mib"] << 20)
    need = 3 * big + (2 * p["big_count"] * (p["other_big_mib"] << 20) * 3)  # data + dest + S3/SMB copies
    need += 4096 * 2 * 3 * p["small_count"]
    if "prepare" in scenarios:
        need += sum(c * 4096 + c // 1000 * 4096 for c in p["prepare_counts"])
    if any("smb" in s for s in scenarios):
        need += 3 * big  # the source staged on the share, one destination on it, the copy staged in S3
    return need + (1 << 30)  # slack: stdlib copies, manifests, SeaweedFS volumes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--runs", type=int, help="runs per tool for the target rows (default: profile)")
    parser.add_argument("--other-runs", type=int, help="runs per tool for the other rows (default: profile)")
    parser.add_argument("--small-count", type=int)
    parser.add_argument("--big-mib", type=int, help="size of each big file for the target rows")
    parser.add_argument("--other-big-mib", type=int, help="size of each big file in the other scenarios")
    parser.add_argument("--prepare-counts", type=lambda s: [int(x) for x in s.split(",")],
                        help="comma-separated file counts for PREPARING")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}")
    parser.add_argument("--no-stdlib", action="store_true", help="leave out the standard-library tree")
    parser.add_argument("--work", default=str(REPO / "bench" / "work"))
    parser.add_argument("--results-dir", default=str(REPO / "bench" / "results"))
    parser.add_argument("--docs", default=str(REPO / "docs" / "benchmarks.md"),
                        help="page whose bench markers get the table ('none' to leave docs alone)")
    parser.add_argument("--ti-probe", action="store_true",
                        help="airflow-e2e: run `dags test` under bench/ti_probe.py and keep each task instance's "
                             "CPU (and its execute()'s) in the results")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="kill a single run after this many seconds (recorded as a failed run)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    p = dict(PROFILES[args.profile])
    for key in ("runs", "other_runs", "small_count", "big_mib", "other_big_mib", "prepare_counts"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    if args.no_stdlib:
        p["stdlib"] = False
    scenarios = [s for s in args.scenarios.split(",") if s]
    tools = [t for t in args.tools.split(",") if t]
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit(f"unknown scenario {s!r}; use {', '.join(SCENARIOS)}")
    for t in tools:
        if t not in TOOLS:
            raise SystemExit(f"unknown tool {t!r}; use {', '.join(TOOLS)}")
    settings = {"profile": args.profile, **p, "scenarios": scenarios, "tools": tools, "cpus": os.cpu_count(),
                "rss_method": RSS_METHOD}
    print("bench settings: " + json.dumps(settings), flush=True)

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    need = required_bytes(p, scenarios)
    print(f"disk: {free / 2**30:.1f} GiB free under {work}, this profile needs about {need / 2**30:.1f} GiB", flush=True)
    if free < need:
        print(f"NOT ENOUGH DISK SPACE: {free / 2**30:.1f} GiB free, about {need / 2**30:.1f} GiB needed. "
              "Free some space or lower --big-mib / --prepare-counts.", file=sys.stderr, flush=True)
        return 3

    h = Harness(args, settings)
    started = time.monotonic()
    t0 = time.monotonic()
    print("datasets:", flush=True)
    empty = ds.empty_tree(h.data)
    small = ds.small_files(h.data, p["small_count"], p["small_size"])
    big = ds.big_files(h.data, p["big_count"], p["big_mib"])
    other_big = big if p["other_big_mib"] == p["big_mib"] else ds.big_files(h.data, p["big_count"], p["other_big_mib"])
    stdlib = ds.stdlib_tree(h.data) if p["stdlib"] else None
    many = [ds.many_files(h.data, c) for c in p["prepare_counts"]] if "prepare" in scenarios else []
    print(f"datasets ready in {time.monotonic() - t0:.1f} s", flush=True)

    need_s3 = any(s for s in scenarios if "s3" in s or s == "airflow-e2e")
    need_smb = any("smb" in s for s in scenarios)
    if "aws" in tools and need_s3:
        h.install_awscli()
    try:
        h.start_servers(need_s3, need_smb)
        h.setup_env()
        runs, other = p["runs"], p["other_runs"]
        mixed = [stdlib] if stdlib else []
        plan: list[tuple[str, Callable[[], None]]] = []
        other_tools = [t for t in tools if t != "aws" or p.get("aws_other_rows", True)]

        def copy(scn, sk, dk, dsets, n, only=None):
            use = [t for t in tools if (only is None or t in only)]
            for d in dsets:
                plan.append((scn, lambda d=d: h.copy_scenario(scn, sk, dk, d, use, n)))

        if "empty" in scenarios:
            # At least 5 runs: each takes under a second, and its target is an absolute wall time.
            plan.append(("empty", lambda: h.empty_scenario(empty, tools, max(runs, 5))))
        if "local-local" in scenarios:
            copy("local-local", "local", "local", [small, big] if p.get("big", True) else [small], runs)
            copy("local-local", "local", "local", mixed, other, only=other_tools)
        if "local-s3" in scenarios:
            copy("local-s3", "local", "s3", [small, big] if p.get("big", True) else [small], runs)
            copy("local-s3", "local", "s3", mixed, other, only=other_tools)
        if "s3-local" in scenarios:
            copy("s3-local", "s3", "local", [small, other_big], other, only=other_tools)
        if "s3-s3" in scenarios:
            copy("s3-s3", "s3", "s3", [small, other_big], other, only=other_tools)
        if h.smb is not None:
            smb_sets = [small, big] if p.get("big", True) else [small]
            for scn, (sk, dk) in SMB_COPY_SCENARIOS.items():
                if scn in scenarios:
                    copy(scn, sk, dk, smb_sets, runs, only=SMB_TOOLS)
        if "rerun-s3" in scenarios:
            plan.append(("rerun-s3", lambda: h.rerun_scenario(small, tools, runs)))
        if "rerun-smb" in scenarios and h.smb is not None:
            smb_tools = [t for t in tools if t in SMB_TOOLS]
            plan.append(("rerun-smb", lambda: h.rerun_scenario(small, smb_tools, runs, dst_kind="smb")))
        if "verify-s3" in scenarios:
            plan.append(("verify-s3", lambda: h.verify_scenario(small, other)))
        if "prepare" in scenarios:
            for d in many:
                plan.append(("prepare", lambda d=d: h.prepare_scenario(d, runs if d.files >= 100_000 else other)))
        if "prepare-synthetic" in scenarios:
            for count in p["synthetic_counts"]:
                plan.append(("prepare-synthetic", lambda c=count: scale_rows.prepare_synthetic(h, c, other)))
        if "airflow-e2e" in scenarios:
            plan.append(("airflow-e2e", lambda: h.airflow_scenario(small, runs)))
        if mount_scenarios := [s for s in scenarios if s in mounts.SCENARIOS]:  # issue 16: bench/mounts.py
            plan.append(("mount", lambda: mounts.mount_scenarios(h, small, mount_scenarios, tools, other)))
        for name, step in plan:
            t1 = time.monotonic()
            step()
            print(f"  ({name} took {time.monotonic() - t1:.1f} s; {time.monotonic() - started:.0f} s so far)", flush=True)
    finally:
        h.stop_servers()

    result = report.build(h.rows, settings, datasets=[d.to_dict() for d in [empty, small, big, other_big, stdlib, *many] if d],
                          skipped=h.skipped, versions=versions(h), elapsed=time.monotonic() - started, work=work)
    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{dt.date.today().isoformat()}.json"
    n = 1
    while out.exists():  # a second run on the same day keeps the first one's results
        n += 1
        out = out_dir / f"{dt.date.today().isoformat()}-{n}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nresults: {out}", flush=True)
    table = report.markdown(result)
    print("\n" + table, flush=True)
    if args.docs != "none":
        report.write_docs(Path(args.docs), table)
        print(f"table written into {args.docs}", flush=True)
    return 0


def versions(h: Harness) -> dict:
    out = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
           "kernel": platform.release()}
    try:
        out["rclone"] = subprocess.run([h.rclone_bin, "version"], capture_output=True, text=True,
                                       timeout=30).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        pass
    if h.aws_bin:
        try:
            out["aws"] = subprocess.run([h.aws_bin, "--version"], capture_output=True, text=True,
                                        timeout=60).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        out["airflow_datasync_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                                        capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "airflow_datasync"], cwd=REPO,
                               capture_output=True, text=True, timeout=30).stdout.strip()
        out["engine_tree_dirty"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        out["mem_gib"] = round(int(mem) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    return out


if __name__ == "__main__":
    sys.exit(main())
