"""The conformance suite's fixtures: one backend per registered location class, each on its real server.

Every test that takes ``backend`` runs once per class in :data:`airflow_datasync.locations.BACKENDS`
(``local``, ``s3`` on SeaweedFS, ``smb`` on smbd, ``azure`` on Azurite), in the fsspec / rclone
``fstests`` style: one set of contract tests, every backend. ``source_backend`` × ``destination_backend``
gives the pair matrix. A backend registered without a root factory below fails its tests (it is never
silently left out): adding a backend means adding one factory here.

A :class:`Backend` makes fresh, empty roots (``backend.root("name")``), as many as a test needs, all
on the one server the session started; :class:`Backend` also names the secrets its connection holds, so
that tests can prove none reaches a record.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from airflow_datasync.locations import BACKENDS, Location, open_location
from tests.fixtures_servers import S3_CONN_ID, SMB_CONN_ID

#: Connection fields (and extra keys containing these words) that hold secrets.
_SECRET_WORDS = ("password", "secret", "key", "token", "sas", "connection_string")


@dataclass(frozen=True)
class Root:
    """A location root: its URI and the connection that reaches it."""

    uri: str
    conn_id: str | None = None

    def open(self) -> Location:
        return open_location(self.uri, self.conn_id)


@dataclass
class Backend:
    """One backend under test: makes fresh empty roots on its server."""

    name: str
    make_root: Callable[[str], Root]
    conn_id: str | None = None
    _made: set[str] = field(default_factory=set)

    def root(self, name: str = "root") -> Root:
        assert name not in self._made, f"root {name!r} made twice in one test"
        self._made.add(name)
        return self.make_root(name)

    def secrets(self) -> list[str]:
        """The secret values of this backend's connection (as the fixtures set it in ``AIRFLOW_CONN_*``)."""
        if self.conn_id is None:
            return []
        raw = os.environ.get(f"AIRFLOW_CONN_{self.conn_id.upper()}", "")
        conn = json.loads(raw) if raw.startswith("{") else {}
        extra = conn.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra or "{}")
        fields = {"password": conn.get("password"), **{k: v for k, v in extra.items()}}
        return [str(v) for k, v in fields.items()
                if v and any(word in k.lower() for word in _SECRET_WORDS) and len(str(v)) >= 8]


def _local(request: pytest.FixtureRequest) -> Backend:
    base: Path = request.getfixturevalue("tmp_path") / "local"
    base.mkdir(exist_ok=True)

    def make(name: str) -> Root:
        (base / name).mkdir()
        return Root(str(base / name))

    return Backend("local", make)


@pytest.fixture(scope="session")
def conformance_bucket(s3_server) -> str:
    """One bucket for the whole suite: SeaweedFS gives each bucket volumes of its own, and a bucket per
    test (hundreds in a session) exhausts its volume slots (500 InternalError on PUT)."""
    name = f"conformance-{os.getpid()}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def _s3(request: pytest.FixtureRequest) -> Backend:
    bucket = request.getfixturevalue("conformance_bucket")
    test = uuid.uuid4().hex[:10]  # roots of one test are prefixes below a prefix of its own
    return Backend("s3", lambda name: Root(f"s3://{bucket}/{test}/{name}", S3_CONN_ID), S3_CONN_ID)


def _smb(request: pytest.FixtureRequest) -> Backend:
    folder = request.getfixturevalue("smb_folder")  # a factory: a fresh folder on the share per call

    def make(name: str) -> Root:
        made = folder()
        return Root(made.uri, made.conn_id)

    return Backend("smb", make, SMB_CONN_ID)


def _azure(request: pytest.FixtureRequest) -> Backend:
    container = request.getfixturevalue("azure_container")  # a fresh container per test (tests/fixtures_servers.py)
    return Backend("azure", lambda name: Root(container.uri(name), container.conn_id), container.conn_id)


#: URI scheme → how to make roots of that backend on the session's server.
ROOT_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Backend]] = {
    "file": _local, "s3": _s3, "smb": _smb, "azure": _azure, "az": _azure,
}


def _backends_under_test() -> list[str]:
    """One scheme per registered backend class the package ships (``az://`` and ``azure://`` are one
    backend); a backend registered by the bench (``bench.synthetic``, a read-only generated source with its
    own tests) is not one users get, and registers itself only in a process that imported it."""
    seen: dict[str, str] = {}
    for scheme, target in BACKENDS.items():
        if target.startswith("airflow_datasync."):
            seen.setdefault(target, scheme)
    return list(seen.values())


BACKEND_SCHEMES = _backends_under_test()
_IDS = ["local" if scheme == "file" else scheme for scheme in BACKEND_SCHEMES]


def make_backend(request: pytest.FixtureRequest, scheme: str) -> Backend:
    factory = ROOT_FACTORIES.get(scheme)
    if factory is None:
        pytest.fail(f"backend {scheme}:// ({BACKENDS[scheme]}) is registered but the conformance suite cannot "
                    "make roots for it: add a factory to ROOT_FACTORIES in tests/locations/conftest.py", pytrace=False)
    return factory(request)


@pytest.fixture(params=BACKEND_SCHEMES, ids=_IDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request, request.param)


@pytest.fixture
def location(backend: Backend) -> Iterator[Location]:
    """A fresh, empty, checked root of ``backend``, opened and closed by the test."""
    with backend.root().open() as loc:
        loc.check(writable=True)
        yield loc


@pytest.fixture(params=BACKEND_SCHEMES, ids=_IDS)
def source_backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request, request.param)


@pytest.fixture(params=BACKEND_SCHEMES, ids=_IDS)
def destination_backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request, request.param)
