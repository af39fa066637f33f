"""PostgreSQL and Redis on 127.0.0.1 for the Celery deployment of tests/scale (Debian packages; `make scale`
installs them): each in a private directory, on a free port, with a random password, stopped on exit.

PostgreSQL refuses to run as root, so its cluster belongs to the ``postgres`` account the Debian package
creates (``runuser``); Redis keeps nothing on disk (no RDB snapshots, no AOF)."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port, stop_process_group, wait_port

INSTALL_HINT = "PostgreSQL and Redis are needed: `make scale` installs the Debian packages postgresql and redis-server"
PG_ACCOUNT = "postgres"


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return found


@dataclass
class Postgres:
    port: int
    user: str
    password: str
    database: str
    workdir: Path

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    @property
    def celery_result_backend(self) -> str:
        return f"db+postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def query(self, sql: str, *params) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                              dbname=self.database) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.workdir / "data"), "-m", "immediate", "-w", "stop"],
                     check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _as_postgres(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["runuser", "-u", PG_ACCOUNT, "--", *cmd], capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def start_postgres() -> Postgres:
    """initdb into a fresh directory (scram-sha-256 for every connection), listen on 127.0.0.1 only, and
    create the ``airflow`` database owned by the ``airflow`` superuser."""
    workdir = Path(tempfile.mkdtemp(prefix="datasync-scale-pg-"))
    server = Postgres(free_port(), "airflow", secrets.token_hex(16), "airflow", workdir)
    pwfile = workdir / "pw"
    pwfile.write_text(server.password + "\n")
    shutil.chown(workdir, PG_ACCOUNT)
    shutil.chown(pwfile, PG_ACCOUNT)
    os.chmod(pwfile, 0o600)
    data = workdir / "data"
    _as_postgres([_pg_bin("initdb"), "-D", str(data), "-U", server.user, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"])
    pwfile.unlink()
    options = (f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={workdir} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    try:
        _as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(workdir / "postgres.log"), "-o", options,
                      "-w", "-t", "60", "start"])
        wait_port(server.port)
        env = dict(os.environ, PGPASSWORD=server.password)
        subprocess.run([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", server.user,
                        server.database], env=env, check=True, capture_output=True, timeout=60)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class Redis:
    port: int
    password: str
    process: subprocess.Popen
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process_group(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis() -> Redis:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise RuntimeError(INSTALL_HINT)
    workdir = Path(tempfile.mkdtemp(prefix="datasync-scale-redis-"))
    port, password = free_port(), secrets.token_hex(16)
    conf = workdir / "redis.conf"  # the password in a file, not on a command line others can read
    conf.write_text(f"bind 127.0.0.1\nport {port}\nrequirepass {password}\nsave \"\"\nappendonly no\n"
                    f"dir {workdir}\nprotected-mode yes\n")
    os.chmod(conf, 0o600)
    log = workdir / "redis.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([binary, str(conf)], stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                start_new_session=True)
    server = Redis(port, password, proc, workdir)
    try:
        wait_port(port, proc=proc, log=log)
    except BaseException:
        server.stop()
        raise
    return server
