"""StartTaskExecution's arguments, under DataSync's own names, validated before any call.

Where a name is also one of our options, :class:`~airflow_datasync.options.TaskOptions` checks it (same
messages, same rules as the native engine: a bad VerifyMode or Atime/Mtime pair fails the same way).
Values that AWS supports and the native engine does not yet (``Uid=NAME``, ``PreserveDevices=PRESERVE``,
``ObjectMetadata``) are checked against the AWS API model that botocore ships; so is the whole request's
shape (``ManifestConfig``, ``TaskReportConfig``, ``Tags``).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from botocore.validate import ParamValidator

from airflow_datasync.options import _CHOICES as NATIVE_CHOICES  # the one table of our option values
from airflow_datasync.options import OptionsError, TaskOptions, TaskReportConfig
from airflow_datasync.rendered import parse_rendered


@lru_cache(maxsize=1)
def _service_model():
    import botocore.session

    return botocore.session.get_session().get_service_model("datasync")


def aws_option_names() -> tuple[str, ...]:
    return tuple(_service_model().shape_for("Options").members)


def parse_structure(name: str, value: Any) -> Any:
    """A dict/list as given, or the JSON / Python-literal string a template rendered it to."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text[0] not in "[{":
            return value  # a plain filter string such as "/logs|*.tmp"
        try:
            return parse_rendered(text)
        except ValueError:
            raise OptionsError(f"{name} must be a dict or list (or its JSON), got {value!r}") from None
    return copy.deepcopy(value)


def override_options(options: Any) -> dict[str, Any]:
    """``OverrideOptions``: only the names given, each checked; the task's own values apply to the rest."""
    options = parse_structure("OverrideOptions", options) or {}
    if not isinstance(options, dict):
        raise OptionsError(f"options must be a dict of DataSync option names, got {type(options).__name__}")
    shape = _service_model().shape_for("Options")
    unknown = sorted(set(options) - set(shape.members))
    if unknown:
        raise OptionsError(f"unknown AWS DataSync option(s) {', '.join(map(repr, unknown))}; "
                           f"known options: {', '.join(sorted(shape.members))}")
    if isinstance(options.get("BytesPerSecond"), str):
        try:
            options["BytesPerSecond"] = int(options["BytesPerSecond"])
        except ValueError:
            raise OptionsError(f"BytesPerSecond={options['BytesPerSecond']!r} is not an integer") from None
    checked_by_us: dict[str, Any] = {}
    for name, value in options.items():
        allowed = shape.members[name].metadata.get("enum")
        if allowed and value not in allowed:
            raise OptionsError(f"{name}={value!r} is invalid; use one of {', '.join(allowed)}")
        native = NATIVE_CHOICES.get(name)
        if name == "BytesPerSecond" or (native is not None and value in native):
            checked_by_us[name] = value
    # Only the names given are overridden: pair each with a consistent partner, not with our defaults.
    if "Atime" in checked_by_us and "Mtime" not in checked_by_us:
        checked_by_us["Mtime"] = "NONE" if checked_by_us["Atime"] == "NONE" else "PRESERVE"
    if "Mtime" in checked_by_us and "Atime" not in checked_by_us:
        checked_by_us["Atime"] = "NONE" if checked_by_us["Mtime"] == "NONE" else "BEST_EFFORT"
    TaskOptions.from_dict(checked_by_us)
    return options


def filter_rules(name: str, value: Any) -> list[dict[str, str]] | None:
    """``Includes``/``Excludes`` as DataSync's one-rule list; accepts ``"/a|/b"`` or the list form."""
    value = parse_structure(name, value)
    if value in (None, [], ""):
        return None
    pattern = TaskOptions.from_dict({name: value}).to_dict()[name]  # validates with our filter compiler
    return [{"FilterType": "SIMPLE_PATTERN", "Value": pattern}] if pattern else None


def start_request(task_arn: str, *, options: Any = None, includes: Any = None, excludes: Any = None,
                  manifest_config: Any = None, task_report_config: Any = None, tags: Any = None) -> dict[str, Any]:
    """The keyword arguments of ``StartTaskExecution``; raises :class:`OptionsError` naming what is wrong."""
    if not isinstance(task_arn, str) or ":task/" not in task_arn or not task_arn.startswith("arn:"):
        raise OptionsError(f"task_arn must be a DataSync task ARN (arn:aws:datasync:<region>:<account>:task/task-…), "
                           f"got {task_arn!r}")
    request: dict[str, Any] = {"TaskArn": task_arn}
    overrides = override_options(options)
    if overrides:
        request["OverrideOptions"] = overrides
    for name, value in (("Includes", includes), ("Excludes", excludes)):
        rules = filter_rules(name, value)
        if rules:
            request[name] = rules
    for name, value in (("ManifestConfig", manifest_config), ("TaskReportConfig", task_report_config),
                        ("Tags", tags)):
        value = parse_structure(name, value)
        if value:
            request[name] = value
    report = request.get("TaskReportConfig")
    if isinstance(report, dict):
        ours = {k: report[k] for k in ("OutputType", "ReportLevel") if k in report}
        if ours:
            TaskReportConfig(**ours)
    shape = _service_model().operation_model("StartTaskExecution").input_shape
    problems = ParamValidator().validate(request, shape)
    if problems.has_errors():
        raise OptionsError(f"StartTaskExecution arguments are invalid: {problems.generate_report()}")
    return request
