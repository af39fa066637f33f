"""Figures of the fault suite: every fault case records one row, and ``python -m tests.faults.render``
turns the rows into the table of docs/reliability.md.

A case calls :func:`record` once, after its assertions passed, with what it injected and what it
checked; a case that failed records nothing, so the table only ever shows runs that held. Rows go to
``$DATASYNC_FAULT_FIGURES`` (default ``.faults/figures`` in the repository, gitignored), one JSON file
per case, so parallel cases never write the same file.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def figures_dir() -> Path:
    return Path(os.environ.get("DATASYNC_FAULT_FIGURES") or REPO_ROOT / ".faults" / "figures")


@dataclass
class Figure:
    """One row of the reliability table."""

    #: Stable id, also the file name: ``group/case`` (e.g. ``kill9/local``, ``names/smb-to-s3``).
    case: str
    #: The section of the table: "Process kills", "Server faults", "Source faults", "Destination faults",
    #: "Hostile names", "Model (property-based)", "Secrets", "Airflow".
    group: str
    #: The fault injected, in a clause ("kill -9 of the shard process at a seeded random moment").
    fault: str
    #: What must hold and was asserted ("no partial file at a final name; no temporaries; verify passes").
    holds: str
    runs: int
    faults_injected: int
    files_checked: int
    lost: int = 0
    corrupt: int = 0
    partial: int = 0
    leftovers: int = 0
    #: Median seconds from the fault to a verified destination (None where not a convergence case).
    converge_s: float | None = None
    #: Seed of a randomised case, so a failure can be replayed.
    seed: int | None = None
    notes: str = ""
    recorded_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def record(figure: Figure) -> Path:
    """Write ``figure`` (after the case's assertions passed)."""
    directory = figures_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (re.sub(r"[^A-Za-z0-9_.-]+", "_", figure.case) + ".json")
    path.write_text(json.dumps(asdict(figure), indent=1, sort_keys=True), encoding="utf-8")
    return path


def load_all(directory: Path | None = None) -> list[Figure]:
    directory = directory or figures_dir()
    rows = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows.append(Figure(**{k: v for k, v in data.items() if k in Figure.__dataclass_fields__}))
    return rows
