"""A real Airflow on the Celery executor for tests/scale: PostgreSQL metadata DB, Redis broker, scheduler,
dag-processor, triggerer and api-server on 127.0.0.1, and Celery workers that share no directory.

Settings come from docker/airflow.env (the one list the compose stack uses too); this harness sets only
addresses, secrets, its own ports and DAG folders on top (plus what a test passes in ``extra_env``).

Each worker runs in namespaces of its own (``unshare --uts --mount``): its own host name (so a task
instance's ``hostname`` says which worker ran it), its own AIRFLOW_HOME with its own copy of the DAGs and
its own TMPDIR, and every other component's directory (the scheduler's home, the other workers' homes,
the servers' data directories) hidden under an empty tmpfs mount. A task can then reach the manifest
store and the locations only over the network, as on machines that share nothing. No network namespace:
the servers listen on the host's loopback, which a new network namespace cannot reach."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.airflow.real_airflow import AirflowComponents
from tests.scale.services import Postgres, Redis
from tests.servers import free_port, stop_airflow_processes

AIRFLOW = str(Path(sys.executable).parent / "airflow")
SETTINGS = Path(__file__).parents[2] / "docker" / "airflow.env"
#: A mount namespace's view: the worker's name, then the directories it must not see, then the command.
_IN_WORKER_NAMESPACES = ('set -e; hostname "$1"; shift; while [ "$1" != "--" ]; do '
                         'mount -t tmpfs -o size=64k,mode=0555 none "$1"; shift; done; shift; exec "$@"')


def deployment_settings(path: Path = SETTINGS) -> dict[str, str]:
    """KEY=VALUE lines of an env file (docker compose's ``env_file`` format, no interpolation)."""
    settings = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


class CeleryAirflow(AirflowComponents):
    """The components of one deployment; ``workers`` maps a worker's name to its own home directory."""

    WAIT_LIMIT = 420.0  # Celery workers and Postgres start slower than the SQLite harness

    def __init__(self, root: Path, postgres: Postgres, redis: Redis, dag_files: list[Path],
                 extra_env: dict[str, str], hidden_from_workers: list[Path]) -> None:
        self.root, self.postgres, self.dag_files = root, postgres, dag_files
        self.home = root / "central"
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.workers: dict[str, Path] = {}
        self.queues: dict[str, str] = {}
        self.started: dict[str, int] = {}
        self.hidden_from_workers = [p for p in hidden_from_workers if p.is_dir()]
        base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env.update(deployment_settings())
        self.env.update({
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.sqlalchemy_url,
            "AIRFLOW__CELERY__BROKER_URL": redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": postgres.celery_result_backend,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        })
        self.env.update(extra_env)

    # -- components ----------------------------------------------------------------------------------------
    def _home_env(self, home: Path) -> dict[str, str]:
        return {**self.env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                "TMPDIR": str(home / "tmp")}

    def _make_home(self, home: Path) -> None:
        (home / "dags").mkdir(parents=True, exist_ok=True)
        (home / "tmp").mkdir(exist_ok=True)
        for file in self.dag_files:
            shutil.copy(file, home / "dags")

    def cli(self, *args: str) -> str:
        done = subprocess.run([AIRFLOW, *args], env=self._home_env(self.home), capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"airflow {' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done.stdout

    def _start(self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path) -> None:
        with open(log_dir / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=log_dir)

    def start_central(self) -> None:
        self._make_home(self.home)
        self.cli("db", "migrate")
        env = self._home_env(self.home)
        self._start("api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(self.port)], env,
                    self.home)
        self.wait_for("the api-server", self.health)
        self._start("scheduler", [AIRFLOW, "scheduler", "--skip-serve-logs"], env, self.home)
        self._start("dag-processor", [AIRFLOW, "dag-processor"], env, self.home)
        self._start("triggerer", [AIRFLOW, "triggerer", "--skip-serve-logs"], env, self.home)

    def add_workers(self, queues: dict[str, str]) -> None:
        """The workers' homes (``queues``: each worker's name and the comma-separated queues it serves),
        all made before any worker starts so each hides all the others."""
        for name, served in queues.items():
            self.workers[name] = self.root / name
            self.queues[name] = served
            self._make_home(self.workers[name])

    def start_worker(self, name: str, concurrency: int = 1) -> None:
        """A Celery worker named ``name`` in its own UTS and mount namespaces (see the module doc).
        ``concurrency`` 1: a worker busy with one task takes no other, so concurrent tasks spread."""
        home, queues = self.workers[name], self.queues[name]
        hidden = [str(p) for p in [self.home, *(h for w, h in self.workers.items() if w != name),
                                   *self.hidden_from_workers]]
        cmd = ["unshare", "--uts", "--mount", "--propagation", "private", "--", "sh", "-c", _IN_WORKER_NAMESPACES,
               "worker", name, *hidden, "--",
               AIRFLOW, "celery", "worker", "--celery-hostname", f"{name}@%h", "--queues", queues,
               "--concurrency", str(concurrency), "--skip-serve-logs", "--without-mingle", "--without-gossip"]
        self._start(f"worker-{name}", cmd, self._home_env(home), home)
        self.started[name] = self.started.get(name, 0) + 1

    def kill_worker(self, name: str) -> list[int]:
        """``kill -9`` of the worker's whole process tree (the Celery pool, task supervisors, task processes):
        everything stopped first so nothing forks or is reparented while the tree is read."""
        proc = self.procs.pop(f"worker-{name}")
        tree = [proc.pid, *descendants(proc.pid)]
        for pid in tree:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        for pid in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        return tree

    def stop(self) -> None:
        stop_airflow_processes(list(self.procs.values()), timeout=20)

    # -- reading state ---------------------------------------------------------------------------------------
    def logs(self) -> str:
        out = []
        for name in self.procs:
            home = self.workers.get(name.removeprefix("worker-"), self.home) if name.startswith("worker-") else self.home
            path = home / f"{name}.log"
            out.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:] if path.exists() else ''}")
        return "\n".join(out)

    def task_logs(self, dag_id: str, limit: int = 2500) -> str:
        """The tail of every task log of ``dag_id`` on every worker (each worker writes its own)."""
        out = []
        for name, home in self.workers.items():
            for path in sorted((home / "logs").glob(f"dag_id={dag_id}/**/*.log")):
                out.append(f"--- {name}: {path.relative_to(home)}\n{path.read_text(errors='replace')[-limit:]}")
        return "\n".join(out)

    def query(self, sql: str, *params) -> list[tuple]:
        return self.postgres.query(sql, *params)

    def workers_ready(self) -> bool:
        """Every worker's Celery consumer is up (it logs ``ready`` once it listens on the broker)."""
        return all(f"worker-{name}" not in self.procs
                   or (home / f"worker-{name}.log").read_text(errors="replace").count(" ready.") >= self.started[name]
                   for name, home in self.workers.items())


@contextmanager
def started_celery_airflow(postgres: Postgres, redis: Redis, dag_files: list[Path], workers: dict[str, str],
                           extra_env: dict[str, str] | None = None,
                           hidden_from_workers: list[Path] = ()) -> Iterator[CeleryAirflow]:
    """The deployment over ``dag_files``; ``workers``: each Celery worker's name and the queues it serves."""
    root = Path(tempfile.mkdtemp(prefix="datasync-scale-airflow-"))
    airflow = CeleryAirflow(root, postgres, redis, dag_files, extra_env or {}, list(hidden_from_workers))
    try:
        airflow.start_central()
        airflow.add_workers(workers)
        for name in workers:
            airflow.start_worker(name)
        airflow.wait_for("the Celery workers", airflow.workers_ready)
        yield airflow
    finally:
        airflow.stop()
        if not os.environ.get("DATASYNC_SCALE_KEEP"):  # set it to read the homes and logs of a failed run
            shutil.rmtree(root, ignore_errors=True)
