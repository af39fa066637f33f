"""The end-to-end scenario's baseline: what `airflow dags test` itself costs for a DAG of our shape.

The same six tasks as ``sync_task_group`` (launch → prepare → transfer mapped over the shards → finalize →
verify → report), each doing nothing but pass a small dict on as XCom, in a folder of its own so that
parsing it imports nothing of ours. ``bench/run.py`` subtracts its time from the sync DAG's to show what
our operators cost net of Airflow (docs/benchmarks.md, "Fixed costs").
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task, task_group


@dag(dag_id="bench_empty_e2e", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
     tags=["airflow-datasync", "bench"])
def bench_empty_e2e():
    @task_group(group_id="migrate")
    def migrate():
        @task
        def launch() -> dict:
            return {"execution": "/nowhere"}

        @task
        def prepare(execution: dict) -> list[dict]:
            return [{**execution, "shard": 0}]

        @task(map_index_template="shard {{ task.op_kwargs['shard']['shard'] }}")
        def transfer(shard: dict) -> dict:
            return {"shard": shard["shard"], "status": "SUCCESS"}

        @task
        def finalize(execution: dict, _results: list[dict]) -> dict:
            return execution

        @task
        def verify(execution: dict) -> dict:
            return execution

        @task
        def report(execution: dict) -> dict:
            return {"Status": "SUCCESS", **execution}

        execution = launch()
        results = transfer.expand(shard=prepare(execution))
        report(verify(finalize(execution, results)))

    migrate()


bench_empty_e2e()
