"""The trigger form: Airflow Params built from the options schema, and the options read back from a run.

    @dag(schedule=None, params=datasync_params(source="/mnt/nfs/data", VerifyMode="NONE"))
    def migrate():
        sync_task_group("migrate", options_from_params=True)

:func:`datasync_params` gives one form field per DataSync option, with its allowed values as a drop-down,
grouped in sections (Locations, Options, Filters, Throttling, Report, Engine). The fields come from
:data:`airflow_datasync.options.OPTION_SPECS`, the schema :class:`~airflow_datasync.options.TaskOptions`
validates with, so a value the form accepts is one the engine accepts. :func:`options_from_params` turns
a run's params back into the options dict the launch task validates.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param
from airflow.sdk.exceptions import ParamValidationError

from airflow_datasync.options import OPTION_SPECS, SPECS, OptionsError, OptionSpec, TaskOptions, json_schema

#: The location fields of the form (section "Locations"); everything else is an option.
LOCATION_PARAMS: dict[str, dict[str, Any]] = {
    "source": {"type": "string", "minLength": 1, "title": "Source location",
               "description": "Where to copy from: /path or file:///path (a local disk or a mounted NFS/EFS/FSx "
                              "export), s3://bucket/prefix, smb://server/share/folder."},
    "destination": {"type": "string", "minLength": 1, "title": "Destination location",
                    "description": "Where to copy to, as the source. A missing last folder is created "
                                   "(not in a dry run)."},
    "source_conn_id": {"type": ["null", "string"], "title": "Source connection",
                       "description": "Airflow connection with the source's credentials (s3://, smb://); "
                                      "empty for local paths or credentials from the environment."},
    "destination_conn_id": {"type": ["null", "string"], "title": "Destination connection",
                            "description": "Airflow connection with the destination's credentials."},
}
#: The field that resumes an execution instead of starting one (section "Resume"; see phases/resume.py).
RESUME_PARAM: dict[str, Any] = {
    "type": ["null", "string"], "title": "Resume execution",
    "description": "Empty: a new execution. An execution id of this task (or \"latest\"): carry it on from its "
                   "stored plan and journals, listing nothing again; its own locations and options apply.",
}
#: Marks a location field without a default: the run must give it.
_NO_DEFAULT = object()
#: The conf key a REST API caller may use to send DataSync's ``Options`` as one JSON object (see
#: :func:`options_from_params`); it is not a form field.
OPTIONS_CONF_KEY = "options"


def datasync_params(**overrides: Any) -> dict[str, Param]:
    """Params for a DAG's trigger form: locations, then one field per option, in sections.

    Keyword arguments change a field's default (``source="/mnt/a"``, ``VerifyMode="NONE"``,
    ``Excludes=["*.tmp"]``) or replace the field (a :class:`~airflow.sdk.Param`). A default that the
    field would refuse, or defaults that make invalid options together, raise
    :class:`~airflow_datasync.options.OptionsError` when the DAG is parsed.
    ``source`` and ``destination`` have no default unless given: a run must then say them.
    """
    unknown = sorted(set(overrides) - set(LOCATION_PARAMS) - set(SPECS) - {"resume_execution"})
    if unknown:
        raise OptionsError(f"datasync_params: unknown field(s) {', '.join(map(repr, unknown))}; fields: "
                           f"{', '.join([*LOCATION_PARAMS, *SPECS])}")
    params: dict[str, Param] = {}
    for name, schema in LOCATION_PARAMS.items():
        default = overrides.get(name, None if "null" in schema["type"] else _NO_DEFAULT)
        params[name] = _param(name, {**schema, "section": "Locations"}, default)
    for spec in OPTION_SPECS:
        params[spec.name] = _param(spec.name, json_schema(spec), overrides.get(spec.name, _form_default(spec)))
    params["resume_execution"] = _param("resume_execution", {**RESUME_PARAM, "section": "Resume"},
                                        overrides.get("resume_execution"))
    # The defaults together must make valid options (e.g. not REMOVE with TransferMode ALL): say so now,
    # not when the first run launches.
    TaskOptions.from_dict(options_from_params({spec.name: params[spec.name].value for spec in OPTION_SPECS}))
    return params


def _form_default(spec: OptionSpec) -> Any:
    """The form's value for an option's default: an empty field where the engine's default means "none"."""
    if spec.nullable and spec.default == spec.null_means:
        return None
    return spec.default


def _param(name: str, schema: dict[str, Any], default: Any) -> Param:
    """A Param of ``schema`` (help text as its description), its default checked now; a Param given as the
    override replaces the field whole."""
    if isinstance(default, Param):
        return default
    schema = copy.deepcopy(schema)
    description = schema.pop("description")
    param = Param(description=description, **schema) if default is _NO_DEFAULT else Param(default, description, **schema)
    if default is not _NO_DEFAULT:
        try:
            param.resolve()
        except ParamValidationError as exc:
            reason = getattr(exc.args[0], "message", exc) if exc.args else exc  # jsonschema's one-line reason
            raise OptionsError(f"datasync_params: default {name}={default!r} is invalid: {reason}") from None
    return param


def options_from_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The options dict (DataSync names, as :meth:`TaskOptions.from_dict` takes it) in a run's params.

    Fields not in ``params`` are left out (the launch task's own ``options`` then apply). The two report
    fields become ``TaskReportConfig``; an empty BytesPerSecond means no limit; filter lists are joined
    with ``|``. A conf key ``options`` holding DataSync's ``Options`` object (how REST API callers and
    ``airflow dags test --conf`` often send them) is applied over the fields.
    """
    options: dict[str, Any] = {}
    for spec in OPTION_SPECS:
        if spec.name not in params:
            continue
        value = params[spec.name]
        if spec.nullable and value is None:
            value = spec.null_means
        if spec.kind == "filter":
            value = _filter_string(spec.name, value)
        if spec.target and spec.target.startswith("TaskReportConfig."):
            options.setdefault("TaskReportConfig", {})[spec.target.split(".", 1)[1]] = value
        else:
            options[spec.name] = value
    extra = params.get(OPTIONS_CONF_KEY) if OPTIONS_CONF_KEY in params else None
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise OptionsError(f"conf key {OPTIONS_CONF_KEY!r} must be an object of DataSync options, got {extra!r}")
        for name, value in extra.items():
            if name == "TaskReportConfig" and isinstance(value, Mapping):
                options.setdefault("TaskReportConfig", {}).update(value)
            else:
                options[name] = value
    return options


def _filter_string(name: str, value: Any) -> Any:
    """A list of patterns (or one per line, as typed in the form) as DataSync's one string ``a|b``; an empty
    list or string as no filter."""
    if isinstance(value, str) and "\n" in value:
        value = value.splitlines()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "|".join(v.strip() for v in value if v.strip())
    if isinstance(value, str) and not value.strip():
        return None
    return value  # anything else goes to TaskOptions, which names what is wrong with it


__all__ = ["LOCATION_PARAMS", "OPTIONS_CONF_KEY", "datasync_params", "options_from_params"]
