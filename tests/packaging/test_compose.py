"""docker/compose.yaml and docker/Dockerfile, checked without Docker (no daemon, no compose plugin here).

The compose file is validated against our schema of the Compose Specification's parts it uses
(compose_schema.py), every Airflow command it runs is parsed by this venv's own ``airflow`` CLI parser, the
settings are those of docker/airflow.env (the file the Celery test in tests/scale loads), the addresses
point at the stack's own services, the workers share no volume but the read-only DAGs, no secret is
written out, and SeaweedFS's flags are those of the locked ``weed``. The Dockerfile builds on the Airflow
version of uv.lock and installs extras that pyproject.toml defines.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys

import jsonschema
import pytest
from packaging.requirements import Requirement

from tests.packaging.compose_checks import (
    DOCKER,
    ROOT,
    airflow_image,
    airflow_services,
    dockerfile_instructions,
    flag_value,
    host_port,
    interpolate,
    interpolations,
    load_compose,
    locked_version,
    pyproject,
    read_env_file,
    service_env,
    worker_services,
)
from tests.packaging.compose_schema import COMPOSE_SCHEMA as SCHEMA


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def test_compose_file_is_valid_under_the_compose_specification(compose):
    validator = jsonschema.Draft7Validator(SCHEMA)
    assert [e.message for e in validator.iter_errors(compose)] == []
    # The schema does catch a mistake of the kind this file could make (so a pass above means something).
    broken = copy.deepcopy(compose)
    broken["services"]["scheduler"]["depends_on"] = {"postgres": {"condition": "service_ready"}}
    broken["services"]["worker-1"]["health_check"] = {"test": ["CMD", "true"]}  # a misspelt key
    assert len(list(validator.iter_errors(broken))) >= 2


def test_the_stack_has_every_component(compose):
    commands = {name: svc["command"] for name, svc in airflow_services(compose).items()}
    ran = [" ".join(c[:2]) if c[0] in ("celery", "db") else c[0] for c in commands.values()]
    for component in ("db migrate", "scheduler", "dag-processor", "triggerer", "api-server"):
        assert ran.count(component) == 1, (component, commands)
    assert ran.count("celery worker") == 2
    images = {name: svc.get("image", "") for name, svc in compose["services"].items()}
    assert images["postgres"].startswith("postgres:") and images["redis"].startswith("redis:")
    assert images["seaweedfs"].startswith("chrislusf/seaweedfs:") and images["samba"].startswith("dperson/samba")
    assert airflow_image(compose) == "${AIRFLOW_DATASYNC_IMAGE:-airflow-datasync:0.1.0}"
    assert compose["x-airflow-common"]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}


def test_every_airflow_service_gets_every_setting_of_airflow_env(compose):
    settings = read_env_file()
    assert settings["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name, svc in airflow_services(compose).items():
        assert svc["env_file"] == ["airflow.env"], name
        overridden = set(svc.get("environment") or {}) & set(settings)
        assert not overridden, f"{name} overrides airflow.env's {sorted(overridden)}: change airflow.env instead"
        env = service_env(svc)
        assert {k: env[k] for k in settings} == settings, name


def test_addresses_point_at_the_stacks_own_services(compose):
    services = compose["services"]
    for name, svc in airflow_services(compose).items():
        env = service_env(svc)
        broker = host_port(env["AIRFLOW__CELERY__BROKER_URL"])
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and broker == ("redis", 6379), name
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
            assert host_port(env[key]) == ("postgres", 5432), (name, key)
            assert env[key].rsplit("/", 1)[1] == services["postgres"]["environment"]["POSTGRES_DB"]
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        api_host, api_port = host_port(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert services[api_host]["command"][0] == "api-server"
        assert str(api_port) == flag_value(services[api_host]["command"], "--port")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
        # The store is an S3 prefix on the stack's SeaweedFS, in the bucket it creates on start.
        store = env["AIRFLOW_DATASYNC_MANIFEST_STORE"]
        assert store.startswith("s3://")
        assert store.split("/")[2] == flag_value(services["seaweedfs"]["command"], "-bucket")
        assert host_port(env["AWS_ENDPOINT_URL_S3"]) == ("seaweedfs", 8333)
        assert flag_value(services["seaweedfs"]["command"], "-s3.port") == "8333"


def test_connections_are_json_for_the_stacks_servers(compose):
    env = service_env(compose["x-airflow-common"])
    s3 = json.loads(env["AIRFLOW_CONN_DATASYNC_S3"])
    assert s3["conn_type"] == "aws" and host_port(s3["extra"]["endpoint_url"]) == ("seaweedfs", 8333)
    seaweed_env = {k: interpolate(v) for k, v in compose["services"]["seaweedfs"]["environment"].items()}
    assert (s3["login"], s3["password"]) == (seaweed_env["AWS_ACCESS_KEY_ID"], seaweed_env["AWS_SECRET_ACCESS_KEY"])
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (s3["login"], s3["password"])
    smb = json.loads(env["AIRFLOW_CONN_DATASYNC_SMB"])
    assert smb["conn_type"] == "datasync_smb" and smb["host"] == "samba" and smb["port"] == 445
    samba = [interpolate(a) for a in compose["services"]["samba"]["command"]]
    assert flag_value(samba, "-u") == f"{smb['login']};{smb['password']}"
    assert flag_value(samba, "-s").split(";")[0] == "data"
    # The example DAG for this stack uses these connections, this bucket and this share.
    dag_source = (ROOT / "dags" / "example_datasync_scale_out.py").read_text()
    for needle in ('"datasync_s3"', '"datasync_smb"', '"datasync")', '"smb://samba/data/mirror")'):
        assert needle in dag_source


def test_no_secret_is_written_out(compose):
    """Passwords, keys and secrets are ``${VARIABLE:-demo default}`` interpolations (documented as demo
    defaults in the file's header), never literals."""
    header = (DOCKER / "compose.yaml").read_text().split("name: airflow-datasync", 1)[0]
    checked = 0
    for service in [compose["x-airflow-common"], *compose["services"].values()]:
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if key.startswith("AIRFLOW_CONN_"):
                secret = json.loads(value)["password"]
            elif any(word in key for word in ("PASSWORD", "SECRET", "FERNET_KEY", "ACCESS_KEY")):
                secret = value
            else:
                continue
            variables = interpolations(secret)
            assert len(variables) == 1 and secret.startswith("${") and secret.endswith("}"), (key, value)
            assert variables[0][0] in header, f"{variables[0][0]} is not listed as a demo default in the header"
            checked += 1
    assert checked >= 8
    samba_user = compose["services"]["samba"]["command"][1]
    assert interpolations(samba_user) == [("SAMBA_PASSWORD", "datasync-demo")]


def test_workers_share_no_volume_but_the_read_only_dags(compose):
    workers = worker_services(compose)
    assert len(workers) == 2
    for name, svc in workers.items():
        assert svc["volumes"] == ["../dags:/opt/airflow/dags:ro"], name
        assert svc["hostname"] == name  # task instances' hostnames name the worker, and its log server resolves
    named = set(compose.get("volumes") or {})
    for name, svc in airflow_services(compose).items():
        for volume in svc.get("volumes", []):
            assert volume.split(":", 1)[0] not in named, f"{name} mounts the named volume {volume}"
    queues = {name: flag_value(svc["command"], "--queues").split(",") for name, svc in workers.items()}
    default_queue = read_env_file()["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    assert all(default_queue in q for q in queues.values()), queues
    assert sum("smb" in q for q in queues.values()) == 1, queues


def test_services_wait_for_what_they_need_to_be_healthy(compose):
    services = compose["services"]
    for name, svc in services.items():
        for needed, how in (svc.get("depends_on") or {}).items():
            assert needed in services and needed != name, (name, needed)
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits for {needed}, which has no healthcheck"
            else:
                assert how["condition"] == "service_completed_successfully" and needed == "airflow-init"
                assert services[needed]["restart"] == "no"
    for name in airflow_services(compose):
        if name != "airflow-init":
            assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
            assert "healthcheck" in services[name], name
    for name in worker_services(compose):
        assert services[name]["depends_on"]["api-server"]["condition"] == "service_healthy"


def _airflow_argvs(compose: dict) -> list[list[str]]:
    """Every Airflow command line of the stack: services' commands and their health checks."""
    argvs = []
    for svc in airflow_services(compose).values():
        argvs.append(svc["command"])
        test = (svc.get("healthcheck") or {}).get("test", [])
        if test[:2] == ["CMD", "airflow"]:
            argvs.append(test[2:])
    return argvs


_PARSE = """
import contextlib, io, json, sys
from airflow.cli import cli_parser
parser = cli_parser.get_parser()
results = {}
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
        results[" ".join(argv)] = "ok" if callable(getattr(args, "func", None)) else "no command"
    except SystemExit:
        results[" ".join(argv)] = err.getvalue().strip().splitlines()[-1]
print(json.dumps(results))
"""


def _parse_with_airflow(argvs: list[list[str]], env: dict[str, str], tmp_path) -> dict[str, str]:
    import os

    child_env = dict(os.environ, **env, AIRFLOW_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", _PARSE, json.dumps(argvs)], env=child_env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_airflow_command_is_one_this_airflow_has(compose, tmp_path):
    """The core commands (scheduler, api-server, db migrate, jobs check …), parsed by Airflow's own CLI
    parser with the options the stack passes."""
    argvs = [a for a in _airflow_argvs(compose) if a[0] != "celery"]
    assert len(argvs) >= 7
    results = _parse_with_airflow(argvs, {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}, tmp_path)
    assert results == {" ".join(a): "ok" for a in argvs}
    bad = _parse_with_airflow([["api-server", "--no-such-option"]], {}, tmp_path)
    assert bad["api-server --no-such-option"] != "ok"


def test_the_celery_worker_commands_are_ones_the_celery_provider_has(compose, tmp_path):
    if importlib.util.find_spec("airflow.providers.celery") is None:
        pytest.skip("apache-airflow-providers-celery is not in this venv yet (the Celery helper's lock adds it)")
    argvs = [a for a in _airflow_argvs(compose) if a[0] == "celery"]
    results = _parse_with_airflow(argvs, read_env_file(), tmp_path)
    assert results == {" ".join(a): "ok" for a in argvs}


def test_seaweedfs_flags_are_those_of_the_locked_weed(compose):
    from tests.servers import weed_binary

    command = compose["services"]["seaweedfs"]["command"]
    assert command[0] == "mini"
    done = subprocess.run([weed_binary(), "mini", "-h"], capture_output=True, text=True, timeout=60)
    known = {line.split()[0] for line in (done.stdout + done.stderr).splitlines() if line.startswith("  -")}
    assert {arg.split("=", 1)[0] for arg in command[1:]} <= known
    # The image is the release of the locked binary (its version is the first dotted number weed prints).
    version = subprocess.run([weed_binary(), "version"], capture_output=True, text=True, timeout=60).stdout
    tag = compose["services"]["seaweedfs"]["image"].split(":", 1)[1]
    assert f" {tag} " in version, (tag, version)


def test_dockerfile_builds_on_the_locked_airflow_with_existing_extras():
    instructions = dockerfile_instructions()
    base = [args for op, args in instructions if op == "FROM"]
    assert len(base) == 1
    image, tag = base[0].split(":", 1)
    assert image == "apache/airflow"
    assert tag.split("-python")[0] == locked_version("apache-airflow"), tag
    python = tag.split("-python")[1]
    assert pyproject()["project"]["requires-python"] == ">=3.11" and tuple(map(int, python.split("."))) >= (3, 11)
    installs = [args for op, args in instructions if op == "RUN" and "pip install" in args]
    assert len(installs) == 1
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in installs[0]  # Airflow stays the image's own version
    extras = [name for spec in installs[0].split() if "[" in spec
              for name in spec.strip('"').split("[", 1)[1].rstrip("]").split(",")]
    assert extras, installs[0]
    defined = pyproject()["project"].get("optional-dependencies") or {}
    if not defined:
        pytest.skip(f"pyproject.toml defines no extras yet; the Dockerfile asks for {extras} "
                    "(the Celery helper adds the `celery` extra)")
    assert set(extras) <= set(defined), (extras, sorted(defined))
    assert {"apache-airflow-providers-celery", "psycopg2-binary"} <= {Requirement(dep).name for dep in defined["celery"]}


def test_dockerfile_copies_only_what_its_ignore_file_lets_in():
    kept = {line[1:] for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
            if line.startswith("!")}
    copies = [args.split() for op, args in dockerfile_instructions() if op == "COPY"]
    sources = [s for args in copies for s in args[:-1] if not s.startswith("--")]
    assert sources and set(sources) <= kept, (sources, kept)
    for source in sources:
        assert (ROOT / source).exists(), source


def test_scale_out_doc_lists_airflow_env_as_it_is():
    """docs/scale-out.md's settings table is what a user reads instead of airflow.env: same keys, same values."""
    lines = (ROOT / "docs" / "scale-out.md").read_text().splitlines()
    start = lines.index("| setting | value | why |")
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1]
    assert rows == read_env_file()


_OPTIONS = """
import json, sys
from airflow.configuration import conf
described = conf.configuration_description
print(json.dumps({key: key_section in described and key_option in described[key_section]["options"]
                  for key, key_section, key_option in json.loads(sys.argv[1])}))
"""


def test_every_airflow_setting_is_an_option_airflow_has(compose, tmp_path):
    """``AIRFLOW__SECTION__KEY`` names a real option (a misspelt or misplaced one is silently ignored by
    Airflow): checked against the configuration Airflow describes, its providers' and this package's
    included. [celery] options are the Celery provider's, checked once it is installed."""
    import os

    keys = set(read_env_file())
    for svc in airflow_services(compose).values():
        keys |= set(svc.get("environment") or {})
    celery_installed = importlib.util.find_spec("airflow.providers.celery") is not None
    wanted = [(key, *key.removeprefix("AIRFLOW__").lower().split("__", 1)) for key in sorted(keys)
              if key.startswith("AIRFLOW__") and (celery_installed or not key.startswith("AIRFLOW__CELERY__"))]
    assert len(wanted) >= 12
    done = subprocess.run([sys.executable, "-c", _OPTIONS, json.dumps(wanted)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, AIRFLOW_HOME=str(tmp_path)))
    assert done.returncode == 0, done.stderr[-3000:]
    known = json.loads(done.stdout.strip().splitlines()[-1])
    assert [key for key, ok in known.items() if not ok] == []
