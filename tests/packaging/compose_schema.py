"""A JSON schema, written for this project, of the Compose Specification's parts that docker/compose.yaml
uses (top-level keys, services, health checks, dependencies, volumes), from the specification's
documentation (https://compose-spec.io). This machine has no compose plugin to run ``docker compose config``;
a key the specification does not have, or a value of the wrong shape, fails here as it would fail there.
Unlike the specification, it refuses keys this stack has no use for, so that a new key is looked up first."""

from __future__ import annotations

DURATION = {"type": "string", "pattern": r"^(\d+(\.\d+)?(us|ms|s|m|h))+$"}
STRING_OR_LIST = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
SCALAR = {"type": ["string", "number", "boolean", "null"]}

HEALTHCHECK = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "test": STRING_OR_LIST, "interval": DURATION, "timeout": DURATION, "retries": {"type": "integer"},
        "start_period": DURATION, "start_interval": DURATION, "disable": {"type": "boolean"},
    },
}

DEPENDS_ON = {"oneOf": [
    {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    {"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": False, "required": ["condition"],
        "properties": {
            "condition": {"enum": ["service_started", "service_healthy", "service_completed_successfully"]},
            "restart": {"type": "boolean"}, "required": {"type": "boolean"},
        },
    }},
]}

VOLUME = {"oneOf": [
    {"type": "string", "pattern": r"^[^:]+:[^:]+(:(ro|rw|z|Z))?$"},
    {"type": "object", "additionalProperties": False, "required": ["type", "target"],
     "properties": {"type": {"enum": ["bind", "volume", "tmpfs"]}, "source": {"type": "string"},
                    "target": {"type": "string"}, "read_only": {"type": "boolean"}}},
]}

SERVICE = {
    "type": "object",
    "additionalProperties": False,
    "patternProperties": {"^x-": {}},
    "properties": {
        "image": {"type": "string"},
        "build": {"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": False, "properties": {
            "context": {"type": "string"}, "dockerfile": {"type": "string"},
            "args": {"type": ["object", "array"]}, "target": {"type": "string"}}}]},
        "command": STRING_OR_LIST,
        "entrypoint": STRING_OR_LIST,
        "environment": {"oneOf": [{"type": "object", "additionalProperties": SCALAR},
                                  {"type": "array", "items": {"type": "string"}}]},
        "env_file": STRING_OR_LIST,
        "volumes": {"type": "array", "items": VOLUME},
        "ports": {"type": "array", "items": {"type": ["string", "integer"]}},
        "depends_on": DEPENDS_ON,
        "healthcheck": HEALTHCHECK,
        "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]},
        "hostname": {"type": "string"},
        "user": {"type": "string"},
        "working_dir": {"type": "string"},
        "container_name": {"type": "string"},
        "networks": {"type": ["array", "object"]},
        "tmpfs": STRING_OR_LIST,
        "profiles": {"type": "array", "items": {"type": "string"}},
        "stop_grace_period": DURATION,
    },
}

COMPOSE_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "patternProperties": {"^x-": {}},
    "required": ["services"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "services": {"type": "object", "additionalProperties": SERVICE},
        "volumes": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
        "networks": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
    },
}
