"""DAGs the sensor tests run with dag.test(run_conf=...): what to watch comes from the run conf."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_datasync.sensors import LocationQuietSensor, SyncExecutionSensor

S3_CONN_ID = "datasync_test_s3"
SMB_CONN_ID = "datasync_smb_test"
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def quiet_dag(dag_id: str, *, conn_id: str | None = None, timeout: float = 120, quiet_period: float = 3,
              **sensor_kwargs) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False,
             params={"uri": Param("/nonexistent", type="string"), "marker": Param("", type="string")}) as dag:
        LocationQuietSensor(task_id="wait_quiet", uri="{{ params.uri }}", marker="{{ params.marker }}",
                            conn_id=conn_id, quiet_period=quiet_period, poke_interval=0.5, timeout=timeout,
                            **sensor_kwargs)
    return dag


quiet_local = quiet_dag("datasync_test_quiet_local")
quiet_timeout = quiet_dag("datasync_test_quiet_timeout", timeout=3, quiet_period=1)
quiet_s3 = quiet_dag("datasync_test_quiet_s3", conn_id=S3_CONN_ID)
quiet_smb = quiet_dag("datasync_test_quiet_smb", conn_id=SMB_CONN_ID)
quiet_poke = quiet_dag("datasync_test_quiet_poke", deferrable=False)
quiet_reschedule = quiet_dag("datasync_test_quiet_reschedule", deferrable=False, mode="reschedule")

with DAG("datasync_test_execution_sensor", schedule=None, start_date=START, catchup=False,
         render_template_as_native_obj=True,
         params={"execution": Param({}, type="object"), "wait_for": Param("DONE", type="string")}) as execution_dag:
    SyncExecutionSensor(task_id="wait_execution", execution="{{ params.execution }}",
                        wait_for="{{ params.wait_for }}", poke_interval=0.5, timeout=120)

with DAG("datasync_test_latest_execution_sensor", schedule=None, start_date=START, catchup=False,
         params={"store": Param("/nonexistent", type="string"), "after": Param("", type="string")}) as latest_dag:
    SyncExecutionSensor(task_id="wait_latest", task_name="sensor-latest", manifest_store="{{ params.store }}",
                        launched_after="{{ params.after }}", wait_for="PREPARING", poke_interval=0.5, timeout=120)
