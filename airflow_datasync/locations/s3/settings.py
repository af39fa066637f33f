"""One connection's S3 settings (endpoint, region, credentials, TLS trust) and its clients, read once per
worker process: from an Airflow AWS connection (plain ones without the Amazon provider's hook), or from
the environment boto3 honours when no connection id is given. :func:`settings_for` is the one way in."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_datasync.errors import LocationError
from airflow_datasync.locations.connections import ConnectionNotDefinedError, get_connection
from airflow_datasync.locations.s3 import sigv4
from airflow_datasync.locations.s3.transport import S3Transport, SigV4Transport

_CACHE_LOCK = threading.Lock()
_CACHE: dict[str | None, tuple[float, S3Settings]] = {}
#: Credentials from a connection may be temporary (an assumed role): re-read them after this long.
CLIENT_TTL_SECONDS = 600.0


class S3Settings:
    """One connection's endpoint, credentials and transport, shared by every location of a worker process.

    :attr:`transport` is the SigV4 client where it reaches S3 as boto3 would (then boto3 is never
    imported), else boto3 (:mod:`.boto_transport`): one choice per connection, made here.
    """

    def __init__(self, *, endpoint_url: str | None, region: str, credentials: Callable[[], tuple[str, str, str | None]],
                 verify: Any, s3_conf: dict[str, Any], botocore_config: Any = None, session: Any = None,
                 has_proxies: bool = False, conn_id: str | None = None) -> None:
        """``credentials`` returns (access key, secret key, session token or None), fresh at each call."""
        access_key, _secret, _token = credentials()
        self.endpoint_url, self.region, self.access_key, self.verify = endpoint_url, region, access_key, verify
        self.conn_id = conn_id
        self.connect_timeout, self.read_timeout = _timeouts(botocore_config)
        self.addressing_style: str | None = s3_conf.get("addressing_style")
        #: True where the SigV4 client reaches S3 exactly as boto3 would with these settings.
        self.signs_itself = bool(access_key) and sigv4.usable(s3_conf, has_proxies)
        self._session, self._botocore_config, self._credentials = session, botocore_config, credentials
        self._client: Any = None
        self._transport: S3Transport | None = None
        self._lock = threading.Lock()

    @property
    def transport(self) -> S3Transport:
        """The S3 operations for this connection (thread-safe, built on first use)."""
        if self._transport is None:
            with self._lock:
                if self._transport is None:
                    self._transport = self._make_transport()
        return self._transport

    def _make_transport(self) -> S3Transport:
        if self.signs_itself:
            client = sigv4.SigV4Client(self.endpoint_url, self.region, self._credentials, self.verify,
                                       self.addressing_style, connect_timeout=self.connect_timeout,
                                       read_timeout=self.read_timeout)
            return SigV4Transport(client)
        from airflow_datasync.locations.s3.boto_transport import BotoTransport

        return BotoTransport(self._make_client())

    @property
    def client(self) -> Any:
        """A boto3 S3 client for this connection (thread-safe), built on first use; only the fallback
        transport and tools outside the backend use one."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        from botocore.config import Config

        session, explicit = self._session, {}
        if session is None:  # credentials read without boto3 (environment, a simple connection): hand them over
            import boto3

            session = boto3.Session()
            key, secret, token = self._credentials()
            explicit = {"aws_access_key_id": key, "aws_secret_access_key": secret, "aws_session_token": token}
        # botocore retries nothing itself: the transport retries through airflow_datasync.retry.
        cfg = Config(max_pool_connections=64, retries={"total_max_attempts": 1, "mode": "standard"},
                     request_checksum_calculation="when_required", response_checksum_validation="when_required")
        if isinstance(self._botocore_config, dict):  # a connection's config_kwargs, as the hook reads them
            cfg = Config(**self._botocore_config).merge(cfg)
        elif self._botocore_config is not None:
            cfg = self._botocore_config.merge(cfg)
        client = session.client("s3", endpoint_url=self.endpoint_url, region_name=self.region, verify=self.verify,
                                config=cfg, **explicit)
        return client


#: botocore options of a connection's ``config_kwargs`` that the SigV4 client honours as botocore does.
TIMEOUT_OPTIONS = ("connect_timeout", "read_timeout")


def _timeouts(botocore_config: Any) -> tuple[float, float]:
    """(connect, read) timeouts in seconds from ``config_kwargs`` (a dict) or a botocore ``Config``; the
    SigV4 client's defaults where unset."""
    found = []
    for name, default in zip(TIMEOUT_OPTIONS, (sigv4.CONNECT_TIMEOUT, sigv4.READ_TIMEOUT), strict=True):
        value = (botocore_config.get(name) if isinstance(botocore_config, dict)
                 else getattr(botocore_config, name, None))
        try:
            seconds = float(value) if value is not None else default
        except (TypeError, ValueError):
            raise LocationError(f"config_kwargs.{name} must be a number of seconds, got {value!r}") from None
        if seconds <= 0:
            raise LocationError(f"config_kwargs.{name} must be a positive number of seconds, got {value!r}")
        found.append(seconds)
    return found[0], found[1]


def _environment_only() -> bool:
    """True when boto3's credential chain would stop at the environment variables and no profile or config
    file could change the region or endpoint: then nothing needs boto3 to read them."""
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        return False
    if os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE"):
        return False
    return not _aws_config_file_exists()


def _aws_config_file_exists() -> bool:
    """Whether boto3 would read an AWS config file (which may set a region, endpoint or profile)."""
    config = os.environ.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")
    return os.path.exists(config)


#: Extra keys of an AWS connection that :func:`_simple_connection` reads exactly as the Amazon provider does.
_SIMPLE_EXTRA = {"endpoint_url", "region_name", "verify", "aws_session_token", "config_kwargs"}


def _simple_connection(conn_id: str) -> S3Settings | None:
    """Settings for an AWS connection that holds a key pair and nothing boto3 must interpret (no role to
    assume, profile, per-service config or botocore options beyond the addressing style and the timeouts):
    read without the Amazon provider's hook, so that a task whose transport is the SigV4 client never imports boto3 (a
    noticeable part of a short task's start). Any other connection returns None and goes through the hook."""
    try:
        conn = get_connection(conn_id, conn_type="aws", where=f"S3 connection {conn_id!r}")
    except ConnectionNotDefinedError:  # the Amazon hook then raises the error its users know
        return None
    extra = conn.extra_dejson or {}
    config_kwargs = extra.get("config_kwargs")
    if config_kwargs is not None and (not isinstance(config_kwargs, dict)
                                      or set(config_kwargs) - {"s3", *TIMEOUT_OPTIONS}
                                      or set(config_kwargs.get("s3") or {}) - {"addressing_style"}):
        return None
    if conn.conn_type != "aws" or not (conn.login and conn.password) or set(extra) - _SIMPLE_EXTRA:
        return None
    env = os.environ
    region = extra.get("region_name") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region is None:
        if _aws_config_file_exists():
            return None  # a region from an AWS config file: boto3 knows where to look
        region = "us-east-1"
    key, secret, token = conn.login, conn.password, extra.get("aws_session_token") or None
    return S3Settings(endpoint_url=extra.get("endpoint_url") or None, region=region,
                      credentials=lambda: (key, secret, token), verify=extra.get("verify"), s3_conf=(config_kwargs or {}).get("s3") or {},
                      botocore_config=config_kwargs or None, conn_id=conn_id)


def settings_for(conn_id: str | None) -> S3Settings:
    """Read an Airflow AWS connection (or the environment) once per process: endpoint, credentials, clients.

    Everything the Amazon provider's connection holds is honoured: credentials (or a role to assume),
    region, ``endpoint_url`` for S3-compatible stores, ``config_kwargs.s3.addressing_style``, ``verify``,
    ``config_kwargs.connect_timeout``/``read_timeout`` (seconds, as botocore reads them).
    """
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = _CACHE.get(conn_id)
        if hit is not None and now - hit[0] < CLIENT_TTL_SECONDS:
            return hit[1]
        if conn_id is None and _environment_only():
            # Credentials in the environment and no AWS config file: read them as boto3 would, without it.
            env = os.environ
            key, secret = env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
            token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
            settings = S3Settings(
                endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
                region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                credentials=lambda: (key, secret, token), verify=env.get("AWS_CA_BUNDLE") or None, s3_conf={})
            _CACHE[conn_id] = (now, settings)
            return settings
        if conn_id is None:
            # No connection: boto3's own chain (environment, profile, instance role). Importing Airflow is
            # not needed for that, which keeps the CLI quick to start.
            import boto3

            session = boto3.Session()
            verify = os.environ.get("AWS_CA_BUNDLE") or None  # what boto3 itself would trust
            botocore_config = None
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            region = session.region_name or "us-east-1"
        else:
            simple = _simple_connection(conn_id)
            if simple is not None:
                _CACHE[conn_id] = (now, simple)
                return simple
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

            hook = AwsBaseHook(aws_conn_id=conn_id, client_type="s3")
            session = hook.get_session()
            verify = hook.verify
            botocore_config = hook.conn_config.botocore_config
            endpoint = hook.conn_config.get_service_endpoint_url("s3")
            region = hook.conn_region_name or "us-east-1"
        found = session.get_credentials()
        if found is None:
            raise LocationError(
                f"no AWS credentials for connection {conn_id!r}: give the S3 location an Airflow AWS connection "
                "(conn_id) with login/password or a role, or set credentials in the environment boto3 reads")
        s3_conf = (getattr(botocore_config, "s3", None) or {}) if botocore_config else {}

        def fresh() -> tuple[str, str, str | None]:
            current = found.get_frozen_credentials()  # refreshed by botocore when temporary ones expire
            return current.access_key, current.secret_key, current.token

        settings = S3Settings(endpoint_url=endpoint, region=region, credentials=fresh, verify=verify,
                              s3_conf=s3_conf, botocore_config=botocore_config, session=session,
                              has_proxies=bool(getattr(botocore_config, "proxies", None)), conn_id=conn_id)
        _CACHE[conn_id] = (now, settings)
        return settings
