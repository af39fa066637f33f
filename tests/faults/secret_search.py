"""Looking for secrets where an execution leaves text: the forms a secret may take (as is, base64, URL
encoded), and the places to search (captured output, every file under a directory with Parquet decoded,
every object under an S3 prefix, a SQLite DB's rows, exception texts with their whole chain)."""

from __future__ import annotations

import base64
import os
import sqlite3
import traceback
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq


def forms(secret: str) -> set[bytes]:
    """``secret`` as it may appear: raw, base64 (standard and URL-safe, with and without padding), and
    URL-encoded (``quote`` and ``quote_plus``); for a base64 secret, its decoded bytes too."""
    raw = secret.encode()
    found = {raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw), base64.b64encode(raw).rstrip(b"="),
             urllib.parse.quote(secret, safe="").encode(), urllib.parse.quote_plus(secret).encode()}
    try:
        decoded = base64.b64decode(secret, validate=True)
        if len(decoded) >= 16:
            found.add(decoded)
    except ValueError:
        pass
    return {f for f in found if len(f) >= 8}


@dataclass
class Sweep:
    """Places searched for a set of secrets; :attr:`hits` names each place where one was found."""

    secrets: list[str]
    places: int = 0
    hits: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._forms = [(s, f) for s in self.secrets for f in forms(s)]

    def text(self, place: str, data: bytes | str) -> None:
        blob = data.encode(errors="replace") if isinstance(data, str) else data
        self.places += 1
        for secret, form in self._forms:
            if form in blob:
                self.hits.append(f"{place}: secret {secret[:3]}… as {form[:12]!r}…")

    def exception(self, place: str, exc: BaseException) -> None:
        """The exception's text as a user sees it: str, repr, and the whole traceback with its causes."""
        self.text(place, "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)]))

    def tree(self, place: str, root: Path) -> None:
        """Every file below ``root`` as bytes; Parquet files decoded too; SQLite DBs row by row too."""
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                self.file(f"{place}/{path.relative_to(root)}", name, data, path)

    def file(self, place: str, name: str, data: bytes, path: Path | None = None) -> None:
        self.text(place, data)
        if name.endswith(".parquet"):
            import io

            self.text(place + " (decoded)", repr(pq.read_table(io.BytesIO(data)).to_pylist()))
        if data.startswith(b"SQLite format 3") and path is not None:
            self.text(place + " (rows)", sqlite_rows(path))

    def s3_prefix(self, place: str, client, bucket: str, prefix: str) -> None:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                data = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                self.file(f"{place}/{obj['Key']}", obj["Key"], data)


def sqlite_rows(path: Path) -> str:
    """Every row of every table (XCom values, task state, rendered fields, logs in the DB) as text."""
    out = []
    with sqlite3.connect(path) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in db.execute(f'SELECT * FROM "{table}"'):  # table names come from the DB itself
                out.append(f"{table}: {row!r}")
    return "\n".join(out)
