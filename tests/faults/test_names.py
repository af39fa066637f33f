"""Hostile names across every pair of backends: each name the source holds is either copied under exactly
that name with exactly its bytes, or reported on its own entry with a reason; nothing is mangled (no name
at the destination that the source does not have), nothing appears outside the destination root, and the
ordinary files beside the hostile ones are copied.

One small tree per pair, seeded by each store's own client and inspected from the outside
(tests/faults/sides.py). A source that cannot hold a name (a file system and ``..``, SeaweedFS and NUL)
simply does not get it: what each source held is in the figure's notes.
"""

from __future__ import annotations

import itertools
import os
import uuid

import pyarrow.parquet as pq
import pytest

from airflow_datasync.engine import LocationSpec, run_execution
from tests.faults.figures import Figure, record
from tests.faults.sides import BACKENDS, make_side

#: A directory that must never be created: the target of the absolute name.
ESCAPE_DIR = f"/tmp/ds-hostile-{uuid.uuid4().hex[:8]}"

#: id → name. Every one is a valid name somewhere; none may escape or be rewritten anywhere.
HOSTILE: dict[str, str] = {
    "dotdot": "../escaped.txt",
    "dotdot-inner": "d/../../escaped-inner.txt",
    "absolute": f"{ESCAPE_DIR}/x.txt",
    "nul": "nul\x00byte.txt",
    "newline": "new\nline.txt",
    "backslash": "back\\slash.txt",
    "nfc": "caf\u00e9.txt",
    "nfd": "cafe\u0301.txt",
    "name-255": "n" * 251 + ".txt",
    "name-256": "m" * 252 + ".txt",
    "path-4096": "/".join(["p" * 199] * 20) + "/" + "q" * 91 + ".txt",
    "smb-forbidden": 'ask?star*col:on"<>|.txt',
    "smb-reserved": "AUX.txt",
    "trailing-space": "space .txt ",
}
#: Ordinary files that must be copied whatever happens to the hostile ones.
CONTROL = {"ok.txt": b"ordinary", "sub/ok2.txt": b"ordinary too"}


def _data(key: str) -> bytes:
    return f"bytes of {key}\n".encode()


def _report(summary: dict) -> dict[str, dict]:
    return {row["path"]: row for row in pq.read_table(summary["ReportUri"]).to_pylist()}


#: Every pair, plus moto's AWS-like S3 as a source of the names only it holds (``..``, NUL, a leading '/').
PAIRS = list(itertools.product(BACKENDS, BACKENDS)) + [("s3aws", dst) for dst in BACKENDS]
#: The pairs ``make test`` runs; ``make faults`` runs them all.
QUICK = {("local", "local"), ("local", "s3")}


@pytest.mark.parametrize(("src_kind", "dst_kind"), [
    pytest.param(a, b, id=f"{a}-to-{b}", marks=() if (a, b) in QUICK else pytest.mark.faults) for a, b in PAIRS])
def test_hostile_names(request, tmp_path, src_kind, dst_kind):
    src = make_side(request, src_kind, "src")
    dst = make_side(request, dst_kind, "dst")
    names = {name: _data(key) for key, name in HOSTILE.items()}
    refused_by_source = src.seed({**names, **CONTROL})
    assert set(CONTROL) <= set(src.seeded), refused_by_source
    tried = {key: name for key, name in HOSTILE.items() if name not in refused_by_source}

    summary = run_execution(LocationSpec(src.uri, src.conn_id), LocationSpec(dst.uri, dst.conn_id), {},
                            store=str(tmp_path / "store"), task_name="names")

    held = dst.files()
    report = _report(summary)
    assert dst.outside() == [], "an entry escaped the destination root"
    assert not os.path.lexists(ESCAPE_DIR)
    # Nothing mangled: every name at the destination is one the source has, with the source's bytes.
    assert {n: b for n, b in held.items() if n not in src.seeded} == {}
    for name, data in held.items():
        assert data == src.seeded[name], name
    for name, data in CONTROL.items():
        assert held.get(name) == data, (name, summary["ErrorDetail"])
    copied, reported = [], []
    for key, name in tried.items():
        if name in held:
            copied.append(key)
            continue
        # A name that cannot even be a path (NUL) is reported under a printable form that its error quotes.
        row = report.get(name) or next((r for r in report.values() if repr(name)[1:-1] in (r["error"] or "")), None)
        assert row is not None, f"{key}: {name!r} neither copied nor in the report"
        reason = row["error"] or (row["reason"] if row["action"] == "error" else None)
        assert row["status"] in ("FAILED", "ERROR", "SKIPPED") or row["action"] == "error", (key, row)
        assert reason, (key, row)
        reported.append(key)
    assert summary["Status"] == ("SUCCESS" if not reported else "ERROR"), summary
    if reported:
        assert summary["FilesFailed"] >= len(reported) or summary["ErrorDetail"]

    record(Figure(
        case=f"names/{src_kind}-to-{dst_kind}", group="Hostile names",
        fault="hostile names at the source: " + ", ".join(tried),
        holds="each copied under exactly its name and bytes or reported on its own entry with a reason; "
              "no mangled name; nothing outside the destination root; ordinary files copied",
        runs=1, faults_injected=len(tried), files_checked=len(tried),
        notes=f"copied: {', '.join(copied) or '-'}; reported: {', '.join(reported) or '-'}; "
              f"the source could not hold: {', '.join(k for k in HOSTILE if k not in tried) or '-'}"))


def test_excluding_what_smb_refuses_ends_in_success(request, tmp_path):
    """The workaround docs/reliability.md gives: exclude the names the destination refuses."""
    src = make_side(request, "local", "src")
    dst = make_side(request, "smb", "dst")
    src.seed({"a:b.txt": b"colon", "AUX.txt": b"device", **CONTROL})
    summary = run_execution(src.uri, LocationSpec(dst.uri, dst.conn_id), {"Excludes": "*:*|AUX.*"},
                            store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    assert dst.files() == CONTROL
