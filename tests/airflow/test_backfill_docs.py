"""docs/operators.md "Backfills", checked against the installed Airflow: the documented commands run as
written, a backfill of a paused DAG stays queued (the scheduler's query for runs to start leaves it out)
until the DAG is unpaused, and unpausing a catchup=False daily DAG makes the latest tick, today at
00:00 UTC, its next run."""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "operators.md"
DAG_ID = "example_datasync_backfill"


def documented_commands() -> list[list[str]]:
    text = DOC.read_text()
    block = text[text.index("## Backfills"):]
    code = re.search(r"```\n(.*?)```", block, re.S).group(1).replace("\\\n", " ")
    return [shlex.split(line.split("#")[0]) for line in code.splitlines() if line.strip()]


def airflow(args: list[str]) -> str:
    """The ``airflow`` CLI of this venv against the session's metadata DB (its environment is inherited)."""
    assert args[0] == "airflow"
    done = subprocess.run([str(Path(sys.executable).parent / "airflow"), *args[1:]], capture_output=True,
                          text=True, timeout=300, env=os.environ.copy())
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture
def serialized_paused_dag(airflow_db):
    """The shipped DAGs written to the metadata DB as the DAG processor would, the backfill DAG paused."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models import DagModel, DagRun, TaskInstance
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select, update

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        sync_bag_to_db(BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name),
                       bundle.name, bundle.version)
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == DAG_ID).values(is_paused=True))
    yield
    with create_session() as session:  # leave no runs behind for the other tests of this DAG
        run_ids = select(DagRun.run_id).where(DagRun.dag_id == DAG_ID, DagRun.backfill_id.is_not(None))
        session.execute(delete(TaskInstance).where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id.in_(run_ids)))
        backfills = select(Backfill.id).where(Backfill.dag_id == DAG_ID)
        session.execute(delete(BackfillDagRun).where(BackfillDagRun.backfill_id.in_(backfills)))
        session.execute(delete(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.backfill_id.is_not(None)))
        session.execute(delete(Backfill).where(Backfill.dag_id == DAG_ID))
        session.execute(update(DagModel).where(DagModel.dag_id == DAG_ID).values(is_paused=True))


def startable_backfill_runs() -> set[str]:
    """The backfill's runs the scheduler would move from queued to running now."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id for r in DagRun.get_queued_dag_runs_to_set_running(session) if r.dag_id == DAG_ID}


def test_backfill_commands_as_documented(serialized_paused_dag):
    from airflow.models import DagModel, DagRun
    from airflow.utils.session import create_session

    unpause, dry_run, create = documented_commands()
    assert unpause[:3] == ["airflow", "dags", "unpause"] and "--dry-run" in dry_run and "--dry-run" not in create

    listed = airflow(dry_run)
    assert all(f"2026-11-0{d}" in listed for d in range(1, 8)), listed

    airflow(create)  # before unpausing: the trap
    with create_session() as session:
        runs = [r for r in session.query(DagRun).filter(DagRun.dag_id == DAG_ID, DagRun.backfill_id.is_not(None))]
        assert len(runs) == 7 and {str(r.state) for r in runs} == {"queued"}
        assert session.get(DagModel, DAG_ID).is_paused
    assert startable_backfill_runs() == set()

    today = {dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)}
    airflow(unpause)
    today.add(dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    assert len(startable_backfill_runs()) >= 1  # max_active_runs of the backfill caps how many at once
    with create_session() as session:
        model = session.get(DagModel, DAG_ID)
        assert not model.is_paused
        # catchup=False: the next scheduled run is the latest tick, today 00:00 UTC, whose folder may not exist.
        assert model.next_dagrun in today, model.next_dagrun
        assert model.next_dagrun_create_after <= dt.datetime.now(dt.UTC)  # due now: created on unpause


def test_the_documented_backfill_options_are_the_clis():
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    backfill = next(a for a in parser._subparsers._group_actions[0].choices["backfill"]._actions
                    if getattr(a, "choices", None) and "create" in a.choices).choices["create"]
    options = {o for a in backfill._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    text = DOC.read_text()
    section = text[text.index("## Backfills"):text.index("## Plugin macro")]
    sentence = section[section.index("its options are"):section.index("). Unpause first")]
    documented = set(re.findall(r"`(--[a-z-\[\]]+)`", sentence))
    documented = {o.replace("--[no-]", "--") for o in documented} | {o.replace("--[no-]", "--no-") for o in documented}
    assert documented == options
    assert not any("pause" in o for o in options)  # nothing runs a paused DAG's backfill
