"""The settings of an SMB session, read from a ``datasync_smb`` Airflow connection.

Fields: host (informative; the location URI names the server it connects to), port (default 445),
login / password, and extras ``domain``, ``smb_version`` (``2.0.2``, ``2.1``, ``3.0``, ``3.0.2``, ``3.1.1``;
null, missing, empty or ``auto`` = negotiate the highest), ``require_signing`` (default true), ``encrypt``
(default false), ``auth_protocol`` (``negotiate`` default, ``ntlm``, ``kerberos``: Kerberos needs a ticket
in the worker's environment).

Airflow is imported only when a connection is read (:func:`read_connection`), so that the SMB location
can be imported, and its URI parsed, without Airflow (the CLI). The password never leaves
:class:`SmbConnectionConfig` (``repr=False``): it is not logged, not in XCom, not in any record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_datasync.errors import LocationError
from airflow_datasync.locations.connections import get_connection

#: The connection an SMB location reads when it is given no conn_id.
DEFAULT_CONN_ID = "datasync_smb_default"
#: smb_version values → smbprotocol dialect numbers (smbprotocol.connection.Dialects).
DIALECTS = {"2.0.2": 0x0202, "2.1": 0x0210, "2.1.0": 0x0210, "3.0": 0x0300, "3.0.0": 0x0300, "3.0.2": 0x0302,
            "3.1.1": 0x0311}
#: The versions the connection form offers (DIALECTS also accepts the three-part spellings).
SMB_VERSIONS = ("2.0.2", "2.1", "3.0", "3.0.2", "3.1.1")
#: smb_version values that mean "negotiate the highest dialect": unset in old connections, or the form's Auto.
NEGOTIATE = (None, "", "auto", "null", "none")
AUTH_PROTOCOLS = ("negotiate", "ntlm", "kerberos")


class SmbConnectionError(ValueError):
    """A ``datasync_smb`` connection is malformed; the message names the connection and the field."""


def _bool(value: Any, name: str, conn_id: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise SmbConnectionError(f"connection {conn_id!r}: extra {name!r} must be true or false, got {value!r}")


@dataclass(frozen=True)
class SmbConnectionConfig:
    """What an SMB location needs to open a session. ``password`` is kept out of ``repr``."""

    conn_id: str
    host: str | None = None
    port: int = 445
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    domain: str | None = None
    dialect: int | None = None
    require_signing: bool = True
    encrypt: bool = False
    auth_protocol: str = "negotiate"

    @property
    def username(self) -> str | None:
        if not self.login:
            return None
        if self.domain and "\\" not in self.login and "@" not in self.login:
            return f"{self.domain}\\{self.login}"
        return self.login

    @classmethod
    def from_connection(cls, conn: Any) -> SmbConnectionConfig:
        """The settings of an Airflow ``Connection`` (anything with its attributes and ``extra_dejson``)."""
        conn_id = conn.conn_id
        extra = conn.extra_dejson or {}

        def get(name: str) -> Any:
            for key in (name, f"extra__datasync_smb__{name}"):
                if extra.get(key) not in (None, ""):
                    return extra[key]
            return None

        version = get("smb_version")
        dialect = None
        if (str(version).strip().lower() if version is not None else None) not in NEGOTIATE:
            dialect = DIALECTS.get(str(version).strip())
            if dialect is None:
                raise SmbConnectionError(f"connection {conn_id!r}: smb_version {version!r} is not one of "
                                         f"{', '.join(SMB_VERSIONS)} (or auto/empty to negotiate)")
        auth = str(get("auth_protocol") or "negotiate").strip().lower()
        if auth not in AUTH_PROTOCOLS:
            raise SmbConnectionError(f"connection {conn_id!r}: auth_protocol {auth!r} is not one of {', '.join(AUTH_PROTOCOLS)}")
        try:
            port = int(conn.port) if conn.port else 445
        except (TypeError, ValueError):
            raise SmbConnectionError(f"connection {conn_id!r}: port {conn.port!r} is not a number") from None
        return cls(
            conn_id=conn_id, host=conn.host or None, port=port, login=conn.login or None, password=conn.password or None,
            domain=get("domain"), dialect=dialect,
            require_signing=_bool(get("require_signing"), "require_signing", conn_id, True),
            encrypt=_bool(get("encrypt"), "encrypt", conn_id, False), auth_protocol=auth,
        )


def read_connection(conn_id: str | None, where: str) -> SmbConnectionConfig:
    """The settings of Airflow connection ``conn_id`` (:data:`DEFAULT_CONN_ID` when None); a missing or
    malformed connection is a :class:`LocationError` prefixed with ``where`` (the location's URI)."""
    conn_id = conn_id or DEFAULT_CONN_ID
    conn = get_connection(conn_id, conn_type="datasync_smb", where=where)
    try:
        return SmbConnectionConfig.from_connection(conn)
    except SmbConnectionError as exc:
        raise LocationError(f"{where}: {exc}") from None
