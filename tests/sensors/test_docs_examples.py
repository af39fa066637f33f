"""Every Python example in docs/sensors.md builds: the sensors, groups and consumer DAG it shows parse with
the installed Airflow (the behaviour they describe is what the other tests in this folder run)."""

from __future__ import annotations

import re
from pathlib import Path

import pendulum
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "sensors.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_builds(index):
    from airflow.sdk import DAG

    from airflow_datasync.operators import sync_task_group

    code = BLOCKS[index]
    namespace = {"sync_task_group": sync_task_group}
    if "@dag" in code:
        exec(compile(code, f"sensors.md[{index}]", "exec"), namespace)
        dags = [v for v in namespace.values() if isinstance(v, DAG)]
        assert dags and all(d.timetable for d in dags)
        return
    with DAG(f"doc_example_{index}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        exec(compile(code, f"sensors.md[{index}]", "exec"), namespace)
    assert any("Sensor" in type(t).__name__ for t in dag.tasks)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 3
