"""Airflow faults under a real scheduler (LocalExecutor), one real Airflow for the module: a transfer task
killed by its own execution_timeout and by ``kill -9`` of its task runner is retried and resumes from the
shard's journal; an authentication error fails the transfer without retries (retry_policy); a network
error retries with exponential backoff and converges. Each case ends with a verified execution (or, for
the auth case, a failed one with a single try) read from the manifest store and the metadata DB.

DAGs: tests/faults/airflow_fault_dags.py. Harness: tests/airflow/real_airflow.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.airflow.real_airflow import RealAirflow, started_airflow
from tests.faults.figures import Figure, record
from tests.faults.tcp_gate import TcpGate
from tests.servers import free_port

pytestmark = pytest.mark.faults

DAG_FILE = Path(__file__).with_name("airflow_fault_dags.py")
BUCKET = "airflow-faults"
FILE_SIZE = 128 * 1024


@pytest.fixture(scope="module")
def net_gate(s3_server):
    gate = TcpGate(int(s3_server.endpoint.rsplit(":", 1)[1]), free_port())
    gate.open()
    yield gate
    gate.close()


def _conn(s3_server, **changes) -> dict:
    conn = json.loads(s3_server.connection_uri_json())
    conn.update(changes)
    return conn


@pytest.fixture(scope="module")
def airflow(s3_server, net_gate):
    s3_server.client().create_bucket(Bucket=BUCKET)
    via_gate = _conn(s3_server)
    via_gate["extra"] = {**via_gate["extra"], "endpoint_url": f"http://127.0.0.1:{net_gate.port}"}
    env = {
        "DATASYNC_FAULT_BUCKET": BUCKET,
        "AIRFLOW_CONN_DATASYNC_FAULT_NET": json.dumps(via_gate),
        # A task whose supervisor died is failed by the scheduler after this many seconds without a heartbeat.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__CORE__PARALLELISM": "4",
    }
    with started_airflow([DAG_FILE], env, prefix="datasync-airflow-faults-") as real:
        real.wait_for("the fault DAGs parsed", lambda: len(real.query(
            "SELECT dag_id FROM dag WHERE dag_id LIKE 'fault_%'")) == 4)
        yield real


def make_source(airflow: RealAirflow, dag_id: str, files: int) -> Path:
    src = airflow.root / dag_id / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(files):
        (src / ("sub" if i % 2 else "") / f"f{i:03d}.bin").write_bytes(os.urandom(FILE_SIZE))
    return src


def trigger(airflow: RealAirflow, dag_id: str) -> float:
    airflow.cli("dags", "trigger", dag_id)
    return time.monotonic()


def run_state(airflow: RealAirflow, dag_id: str) -> str | None:
    rows = airflow.query("SELECT state FROM dag_run WHERE dag_id = ?", dag_id)
    return rows[0][0] if rows else None


def wait_run_done(airflow: RealAirflow, dag_id: str) -> str:
    return airflow.wait_for(f"{dag_id} to finish",
                            lambda: run_state(airflow, dag_id) if run_state(airflow, dag_id) in ("success", "failed")
                            else None, limit=420)


def ti(airflow: RealAirflow, dag_id: str, task_id: str) -> dict | None:
    rows = airflow.query("SELECT state, try_number, pid, start_date, end_date FROM task_instance "
                         "WHERE dag_id = ? AND task_id = ?", dag_id, task_id)
    return dict(zip(("state", "try_number", "pid", "start_date", "end_date"), rows[0])) if rows else None


def history(airflow: RealAirflow, dag_id: str, task_id: str) -> list[dict]:
    """Earlier tries of a task instance (Airflow moves each try's row here when the next one starts)."""
    rows = airflow.query("SELECT try_number, state, start_date, end_date FROM task_instance_history "
                         "WHERE dag_id = ? AND task_id = ? ORDER BY try_number", dag_id, task_id)
    return [dict(zip(("try_number", "state", "start_date", "end_date"), r)) for r in rows]


def execution_dir(airflow: RealAirflow, dag_id: str) -> Path:
    (found,) = (airflow.home / "executions" / dag_id).glob("exec-*")
    return found


def shard_summary(airflow: RealAirflow, dag_id: str) -> dict:
    return json.loads((execution_dir(airflow, dag_id) / "shards" / "shard-00000.json").read_text())


def report(airflow: RealAirflow, dag_id: str) -> dict:
    return json.loads((execution_dir(airflow, dag_id) / "report.json").read_text())


def progress(airflow: RealAirflow, dag_id: str) -> dict:
    path = execution_dir(airflow, dag_id) / "progress" / "shard-00000.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def journal_lines(airflow: RealAirflow, dag_id: str) -> int:
    path = execution_dir(airflow, dag_id) / "shards" / "shard-00000.journal"
    return len(path.read_text().splitlines()) if path.exists() else 0


def same_tree(src: Path, dst: Path) -> int:
    """Number of files compared; fails on any missing or different byte, and on a leftover temporary."""
    files = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())
    got = sorted(p.relative_to(dst) for p in dst.rglob("*") if p.is_file())
    assert got == files
    for rel in files:
        assert (dst / rel).read_bytes() == (src / rel).read_bytes(), rel
    return len(files)


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace(" ", "T")).replace(tzinfo=dt.UTC)


def test_execution_timeout_mid_copy_is_retried_and_resumes_from_the_journal(airflow):
    dag_id = "fault_timeout"
    src = make_source(airflow, dag_id, 40)  # 5 MiB at 512 KiB/s: about 10 s of copying, 4 s per try
    started = trigger(airflow, dag_id)
    assert wait_run_done(airflow, dag_id) == "success", airflow.logs()
    tries = history(airflow, dag_id, "transfer")
    final = ti(airflow, dag_id, "transfer")
    assert final["state"] == "success" and final["try_number"] >= 2, (final, tries)
    assert tries and all(t["state"] in ("up_for_retry", "failed") for t in tries), tries
    summary = shard_summary(airflow, dag_id)
    # The last try found entries done by the ones the timeout ended, and copied the rest itself.
    assert summary["try_number"] == final["try_number"] and 0 < summary["resumed"] < summary["entries"], summary
    rep = report(airflow, dag_id)
    assert rep["Status"] == "SUCCESS" and rep["FilesFailed"] == 0, rep
    checked = same_tree(src, airflow.root / dag_id / "dst")
    record(Figure(case="airflow/execution-timeout", group="Airflow",
                  fault="the transfer task's execution_timeout (4 s) ends each try mid-copy of a rate-limited shard",
                  holds="retried (try 2+), each retry resumes from the shard's journal (resumed entries > 0), the "
                        "execution verifies (POINT_IN_TIME_CONSISTENT), destination equals source",
                  runs=1, faults_injected=len(tries), files_checked=checked,
                  converge_s=round(time.monotonic() - started, 1),
                  notes=f"{final['try_number']} tries; {summary['resumed']} entries resumed by the last"))


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def running_try(airflow: RealAirflow, dag_id: str, try_number: int, journaled: int) -> dict | None:
    """The transfer's task instance once try ``try_number`` runs and the journal holds ``journaled`` lines."""
    now = ti(airflow, dag_id, "transfer") or {}
    if now.get("state") == "running" and now.get("try_number") == try_number and now.get("pid") \
            and journal_lines(airflow, dag_id) >= journaled:
        return now
    return None


def test_kill_9_of_the_task_runner_and_of_its_supervisor_are_retried_and_resume(airflow):
    """Try 1: kill -9 of the task runner (its supervisor reports the failure). Try 2: kill -9 of the
    supervisor (the LocalExecutor worker) and then the task runner, so nothing reports: the scheduler's
    heartbeat timeout fails the try. Try 3 resumes and converges."""
    dag_id = "fault_kill"
    src = make_source(airflow, dag_id, 32)  # 4 MiB at 256 KiB/s: about 16 s of copying
    trigger(airflow, dag_id)
    first = airflow.wait_for("try 1 to copy some files", lambda: running_try(airflow, dag_id, 1, 4), limit=300)
    runner = first["pid"]
    assert "airflow" in Path(f"/proc/{runner}/cmdline").read_bytes().decode(errors="replace"), first
    os.kill(runner, signal.SIGKILL)
    killed_at = time.monotonic()
    at_first_kill = journal_lines(airflow, dag_id)

    second = airflow.wait_for("try 2 to copy some more", lambda: running_try(airflow, dag_id, 2, at_first_kill + 2),
                              limit=300)
    runner = second["pid"]
    supervisor = parent_pid(runner)
    assert "airflow" in Path(f"/proc/{supervisor}/cmdline").read_bytes().decode(errors="replace")
    os.kill(supervisor, signal.SIGKILL)
    os.kill(runner, signal.SIGKILL)
    at_second_kill = journal_lines(airflow, dag_id)

    assert wait_run_done(airflow, dag_id) == "success", airflow.logs()
    final = ti(airflow, dag_id, "transfer")
    tries = history(airflow, dag_id, "transfer")
    assert final["try_number"] == 3 and [t["try_number"] for t in tries] == [1, 2], (final, tries)
    assert all(t["state"] in ("up_for_retry", "failed") for t in tries), tries
    summary = shard_summary(airflow, dag_id)
    assert summary["try_number"] == 3 and summary["resumed"] >= at_second_kill - 2 > 0, (summary, at_second_kill)
    assert report(airflow, dag_id)["Status"] == "SUCCESS"
    checked = same_tree(src, airflow.root / dag_id / "dst")
    record(Figure(case="airflow/kill-task-runner", group="Airflow",
                  fault="kill -9 of the task runner mid-copy (try 1), then of its supervisor and the runner (try 2), "
                        "real scheduler",
                  holds="try 1 failed by its supervisor, try 2 by the scheduler's heartbeat timeout; each retry "
                        "resumes from the journal; the execution verifies; destination equals source",
                  runs=1, faults_injected=2, files_checked=checked, converge_s=round(time.monotonic() - killed_at, 1),
                  notes=f"{at_first_kill} and {at_second_kill} entries journaled at the kills; {summary['resumed']} "
                        "resumed by try 3; heartbeat timeout 15 s"))


def test_an_authentication_error_at_transfer_fails_without_retries(airflow, s3_server):
    dag_id = "fault_auth"
    src = make_source(airflow, dag_id, 6)
    good = _conn(s3_server)
    airflow.cli("connections", "add", "datasync_fault_auth", "--conn-json", json.dumps(good))
    trigger(airflow, dag_id)
    airflow.wait_for("the gate", lambda: (ti(airflow, dag_id, "gate") or {}).get("state") == "running", limit=300)
    assert ti(airflow, dag_id, "launch")["state"] == "success"  # LAUNCHING checked the right secret
    airflow.cli("connections", "delete", "datasync_fault_auth")
    airflow.cli("connections", "add", "datasync_fault_auth",
                "--conn-json", json.dumps({**good, "password": "rotated-away-Jx5"}))
    (airflow.root / dag_id / "go").write_text("")
    broken_at = time.monotonic()

    assert wait_run_done(airflow, dag_id) == "failed"
    final = ti(airflow, dag_id, "transfer")
    assert final["state"] == "failed" and final["try_number"] == 1, final  # retries=3, none used
    assert history(airflow, dag_id, "transfer") == []
    logs = "\n".join(p.read_text(errors="replace") for p in (airflow.home / "logs").rglob("*")
                     if p.is_file() and "task_id=transfer" in str(p) and "fault_auth" in str(p))
    assert "the secret key is wrong" in logs, logs[-3000:]
    assert "rotated-away-Jx5" not in logs and good["password"] not in logs
    rep = report(airflow, dag_id)
    assert rep["Status"] == "ERROR" and rep["FilesTransferred"] == 0, rep
    record(Figure(case="airflow/auth-no-retry", group="Airflow",
                  fault="the destination's S3 secret is changed between LAUNCHING and TRANSFERRING",
                  holds="the transfer fails at try 1 of 4 (retry_policy FAIL on a permission error), the error names "
                        "the wrong secret, neither secret in its log; the report says ERROR",
                  runs=1, faults_injected=1, files_checked=len(list(src.rglob("*.bin"))),
                  converge_s=None, notes=f"failed {time.monotonic() - broken_at:.0f} s after the change"))


def test_a_network_error_retries_with_backoff_and_converges(airflow, net_gate, s3_server):
    dag_id = "fault_network"
    src = make_source(airflow, dag_id, 6)
    trigger(airflow, dag_id)
    airflow.wait_for("the gate", lambda: (ti(airflow, dag_id, "gate") or {}).get("state") == "running", limit=300)
    net_gate.close()  # the destination's endpoint refuses connections, as a stopped server does
    (airflow.root / dag_id / "go").write_text("")
    down_at = time.monotonic()
    try:
        airflow.wait_for("try 1 to fail", lambda: (ti(airflow, dag_id, "transfer") or {}).get("state")
                         == "up_for_retry", limit=300)
    finally:
        net_gate.open()
    assert wait_run_done(airflow, dag_id) == "success", airflow.logs()
    final = ti(airflow, dag_id, "transfer")
    (first,) = history(airflow, dag_id, "transfer")
    assert final["try_number"] == 2 and first["state"] in ("up_for_retry", "failed"), (final, first)
    waited = parse_time(final["start_date"]) - parse_time(first["end_date"])
    assert waited >= dt.timedelta(seconds=3), waited  # retry_delay 3 s × 2**0 is the backoff's floor
    rep = report(airflow, dag_id)
    assert rep["Status"] == "SUCCESS" and rep["FilesFailed"] == 0, rep
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix="net/")["Contents"]}
    expected = {f"net/{p.relative_to(src)}" for p in src.rglob("*.bin")}
    assert expected <= keys and not [k for k in keys if ".~ds-" in k], keys
    record(Figure(case="airflow/network-retry", group="Airflow",
                  fault="the destination S3 endpoint refuses connections for the transfer's first try",
                  holds="try 1 fails as retryable (up_for_retry), try 2 starts after the exponential backoff "
                        "(≥ retry_delay), converges and verifies; no temporary left",
                  runs=1, faults_injected=1, files_checked=len(expected),
                  converge_s=round(time.monotonic() - down_at, 1),
                  notes=f"waited {waited.total_seconds():.1f} s between tries"))
