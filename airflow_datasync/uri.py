"""URI helpers. Secrets never belong in a URI, but if a user puts ``user:password@`` in one we make sure
it never reaches a log line, XCom value, execution record or manifest."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^@/]*@)")


def redact_uri(uri: str) -> str:
    """``smb://alice:s3cret@host/share`` → ``smb://***@host/share``."""
    return _USERINFO.sub(lambda m: m.group("scheme") + "***@", uri)
