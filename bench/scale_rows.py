"""The ``prepare-synthetic`` rows of ``make bench-full`` (issue 15): LAUNCHING + PREPARING + shard cutting of
a generated source (bench/synthetic.py: 1M, 3M and 10M files in 1,000 directories) into an empty local
folder, one child process per run, peak RSS from its rusage (bench/measure.py). No peer: rclone cannot
list a tree that is not stored anywhere; DataSync's published limits are quoted in docs/benchmarks.md."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from bench.measure import measure

if TYPE_CHECKING:
    from bench.run import Harness

SCENARIO = "prepare-synthetic"
TITLE = "PREPARING only, generated source (synthetic://N) → empty local"
#: Directories of the generated tree (its files spread evenly over them).
DIRS = 1000


def prepare_synthetic(h: Harness, files: int, runs: int) -> None:
    """``runs`` runs of bench/prepare_only.py on ``synthetic://<files>?dirs=1000``; the row records the
    phase's own duration, the shard count and the XCom size of the shard list PREPARING returns."""
    from bench.run import PY, REPO, Row

    uri = f"synthetic://{files}?dirs={DIRS}"
    row = Row(SCENARIO, f"synthetic-{files}", "ours", "LAUNCHING + PREPARING (bench/prepare_only.py)",
              files, 0, command=f"{PY} -m bench.prepare_only {uri} <empty dir> --store <store>")
    print(f"  {SCENARIO} · {files:,} files · {runs} run(s) · ours", flush=True)
    for i in range(runs):
        dst = h.scratch / f"synthetic-{files}-{i}"
        dst.mkdir(parents=True, exist_ok=True)
        store = h.store / "synthetic"
        m = measure([PY, "-m", "bench.prepare_only", uri, str(dst), "--store", str(store)], h._ours_env,
                    h._log(SCENARIO, str(files), str(i)), timeout=max(h.args.timeout, 1800.0), cwd=str(REPO))
        extra = {}
        if m.ok:
            rec = _record_of(Path(m.log))
            extra = {"prepare_ms": rec.get("duration_ms"), "shards": rec.get("shard_count"),
                     "source_entries": rec.get("source_entries"), "xcom_bytes": rec.get("xcom_bytes")}
            row.bytes = rec.get("EstimatedBytesToTransfer") or 0
        h._record(row, m, extra)
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(dst, ignore_errors=True)
    h.rows.append(row)


def _record_of(log: Path) -> dict:
    text = log.read_text(errors="replace")
    try:
        return json.loads(text[text.find("{"):].splitlines()[0])
    except (ValueError, IndexError):
        return {}
