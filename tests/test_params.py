"""The trigger form: Params built from the options schema, as the UI receives them, validated at trigger time."""

from __future__ import annotations

import pytest
from airflow.sdk import Param
from airflow.sdk.exceptions import ParamValidationError

from airflow_datasync.options import OPTION_SPECS, SPECS, OptionsError, TaskOptions
from airflow_datasync.params import LOCATION_PARAMS, datasync_params, options_from_params
from tests.airflow.test_sync_dag import load_dag

SECTIONS = {"Locations", "Options", "Filters", "Throttling", "Report", "Engine", "Resume"}


@pytest.fixture
def example_dag(airflow_db, dags_folder):
    return load_dag(dags_folder, "example_datasync_migration.py", "example_datasync_migration")


def ui_params(dag) -> dict[str, dict]:
    """The DAG's params as the trigger form gets them: serialized, read back, dumped (DAGDetailsResponse)."""
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    return {name: param.dump() for name, param in serialized.params.items()}


def test_example_dag_form_has_a_field_per_option_with_its_values(example_dag):
    fields = ui_params(example_dag)
    assert list(fields)[:4] == list(LOCATION_PARAMS)
    for spec in OPTION_SPECS:
        schema = fields[spec.name]["schema"]
        assert schema["title"] == spec.title and schema["section"] == spec.section, spec.name
        assert fields[spec.name]["description"] == spec.description
        if spec.kind == "choice":
            assert schema["type"] == "string"
            assert schema["enum"] == list(spec.choices)
            assert set(schema["values_display"]) == set(spec.choices)
    assert fields["VerifyMode"]["schema"]["enum"] == ["ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT", "NONE"]
    assert fields["dry_run"]["schema"]["type"] == "boolean" and fields["dry_run"]["value"] is False
    assert fields["BytesPerSecond"]["schema"]["type"] == ["null", "integer"] and fields["BytesPerSecond"]["value"] is None
    assert {f["schema"]["section"] for f in fields.values()} == SECTIONS
    assert fields["files_per_shard"]["value"] == 500  # the example's override of the engine default


def test_bad_value_is_refused_at_trigger_time(example_dag, tmp_path):
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.from_dict(DagSerialization.to_dict(example_dag))
    # What create_dagrun checks when the form or the REST API triggers a run.
    serialized.params.deep_merge({"VerifyMode": "POINT_IN_TIME_CONSISTENT", "BytesPerSecond": 1024}).validate()
    for conf in ({"VerifyMode": "FULL"}, {"BytesPerSecond": 0}, {"files_per_shard": "many"}, {"dry_run": "yes"},
                 {"Excludes": 3}, {"source": ""}):
        with pytest.raises(ParamValidationError, match=next(iter(conf))):
            serialized.params.deep_merge(conf).validate()
    with pytest.raises(ParamValidationError, match="VerifyMode"):
        example_dag.test(run_conf={"source": str(tmp_path), "destination": str(tmp_path / "d"), "VerifyMode": "FULL"})


def test_form_defaults_are_the_engine_defaults():
    params = {name: param.resolve() for name, param in datasync_params(source="/a", destination="/b").items()}
    assert TaskOptions.from_dict(options_from_params(params)) == TaskOptions()


def test_overrides_change_defaults_and_are_checked():
    params = datasync_params(source="/mnt/a", VerifyMode="NONE", Excludes=["*.tmp", "/scratch"], BytesPerSecond=1024)
    assert params["source"].resolve() == "/mnt/a" and params["VerifyMode"].resolve() == "NONE"
    options = options_from_params({name: p.resolve() for name, p in params.items() if name != "destination"})
    assert options["Excludes"] == "*.tmp|/scratch" and options["BytesPerSecond"] == 1024
    with pytest.raises(OptionsError, match="VerifyMode='FULL' is invalid"):
        datasync_params(VerifyMode="FULL")
    with pytest.raises(OptionsError, match="PreserveDeletedFiles=REMOVE cannot be combined with TransferMode=ALL"):
        datasync_params(PreserveDeletedFiles="REMOVE", TransferMode="ALL")
    with pytest.raises(OptionsError, match="unknown field.*'Verifymode'"):
        datasync_params(Verifymode="NONE")
    custom = Param("/data", type="string", pattern="^/data")
    assert datasync_params(source=custom)["source"] is custom


def test_source_and_destination_are_required_without_defaults():
    params = datasync_params()
    with pytest.raises(ParamValidationError):
        params["source"].resolve()
    assert params["source_conn_id"].resolve() is None


@pytest.mark.parametrize("value, expected", [
    (None, None), ([], None), ("", None), ("*.tmp|/scratch", "*.tmp|/scratch"), (["*.tmp", " /scratch "], "*.tmp|/scratch"),
    ("*.tmp\n/scratch\n", "*.tmp|/scratch"),
])
def test_filters_from_the_form(value, expected):
    assert options_from_params({"Excludes": value})["Excludes"] == expected


def test_report_fields_bandwidth_and_conf_options_object():
    options = options_from_params({"ReportOutputType": "SUMMARY_ONLY", "ReportLevel": "ERRORS_ONLY",
                                   "BytesPerSecond": None, "VerifyMode": "NONE",
                                   "options": {"VerifyMode": "POINT_IN_TIME_CONSISTENT",
                                               "TaskReportConfig": {"ReportLevel": "SUCCESSES_AND_ERRORS"}}})
    assert options["TaskReportConfig"] == {"OutputType": "SUMMARY_ONLY", "ReportLevel": "SUCCESSES_AND_ERRORS"}
    assert options["BytesPerSecond"] == -1 and options["VerifyMode"] == "POINT_IN_TIME_CONSISTENT"
    assert TaskOptions.from_dict(options).TaskReportConfig.OutputType == "SUMMARY_ONLY"
    with pytest.raises(OptionsError, match="'options' must be an object"):
        options_from_params({"options": "VerifyMode=NONE"})


def test_option_schema_is_what_the_params_are_made_of():
    from airflow_datasync.options import option_schema

    schema = option_schema()
    params = datasync_params()
    assert list(schema) == [spec.name for spec in OPTION_SPECS]
    for name, field in schema.items():
        assert {k: v for k, v in field.items() if k != "description"} == params[name].schema, name


def test_every_option_has_a_spec_and_a_description():
    assert set(SPECS) >= {"VerifyMode", "TransferMode", "OverwriteMode", "PreserveDeletedFiles", "BytesPerSecond",
                          "Includes", "Excludes", "ReportOutputType", "ReportLevel", "dry_run", "files_per_shard"}
    for spec in OPTION_SPECS:
        assert spec.description.endswith(".") and spec.title, spec.name
