"""URI helpers. Secrets never belong in a URI, but if a user puts ``user:password@`` in one we make sure
it never reaches a log line, XCom value, execution record or manifest."""

from __future__ import annotations

import re

from airflow_datasync.errors import LocationError

_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^@/]*@)")


def redact_uri(uri: str) -> str:
    """``smb://alice:s3cret@host/share`` → ``smb://***@host/share``."""
    return _USERINFO.sub(lambda m: m.group("scheme") + "***@", uri)


_MIB = 1024 * 1024


def parse_size(uri: str, name: str, value: str) -> int:
    """A size in a URI's query (``part_size=64MiB``, ``block_size=4194304``) in bytes; ``uri`` and ``name``
    say where in the message of a value that is not one."""
    text = value.strip().upper()
    for suffix, factor in (("GIB", 1024**3), ("MIB", _MIB), ("KIB", 1024), ("B", 1)):
        if text.endswith(suffix):
            text, mult = text[: -len(suffix)], factor
            break
    else:
        mult = 1
    try:
        return int(float(text) * mult)
    except ValueError:
        raise LocationError(f"{uri}: {name}={value!r} is not a size (e.g. 64MiB)") from None
