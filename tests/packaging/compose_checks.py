"""Reading docker/compose.yaml, docker/airflow.env and the Dockerfile as Compose and Docker would, for the
checks of test_compose.py and test_helm_values.py (this machine has no Docker daemon to run them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
AIRFLOW_ENV_FILE = DOCKER / "airflow.env"
DOCKERFILE = DOCKER / "Dockerfile"

# ${VAR}, ${VAR:-default}, ${VAR-default}; $$ is a literal dollar (the Compose Specification's interpolation).
_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def read_env_file(path: Path = AIRFLOW_ENV_FILE) -> dict[str, str]:
    """KEY=VALUE lines, as Compose's env_file reads them (comments and blank lines skipped)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        found[key.strip()] = value.strip()
    return found


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """``value`` as Compose interpolates it with the variables ``env`` (default: none set)."""
    env = env or {}

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group("name"), match.group("op"), match.group("default") or ""
        if name in env and (env[name] or op != ":-"):
            return env[name]
        return default if op else ""

    return _INTERPOLATION.sub(replace, value)


def interpolations(value: str) -> list[tuple[str, str | None]]:
    """The (variable, default) pairs ``value`` interpolates."""
    return [(m.group("name"), m.group("default")) for m in _INTERPOLATION.finditer(value) if m.group("name")]


def airflow_image(compose: dict) -> str:
    return compose["x-airflow-common"]["image"]


def airflow_services(compose: dict) -> dict[str, dict]:
    """The services that run the Airflow image (every Airflow component and the init job)."""
    image = airflow_image(compose)
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == image}


def worker_services(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in airflow_services(compose).items() if svc["command"][:2] == ["celery", "worker"]}


def service_env(service: dict) -> dict[str, str]:
    """A service's environment as its container sees it: env_file first, then ``environment``, interpolated."""
    env: dict[str, str] = {}
    for name in service.get("env_file", []):
        env.update(read_env_file(DOCKER / name))
    for key, value in (service.get("environment") or {}).items():
        env[key] = interpolate(str(value))
    return env


def host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` in ``argv`` (``--flag value`` or ``-flag=value``)."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def locked_version(package: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions = [p["version"] for p in lock["package"] if p["name"] == package]
    assert len(versions) == 1, f"uv.lock locks {package} {len(versions)} times"
    return versions[0]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        pending += stripped.removesuffix("\\") + " "
        if not stripped.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]
