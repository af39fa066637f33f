"""Turn measured runs into result rows, the targets of issues 5, 14 and 16, and the Markdown table of docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
SCENARIO_TITLES = {
    "empty": "empty tree, local → local (nothing to do: an execution's fixed cost)",
    "local-local": "local → local", "local-s3": "local → S3", "s3-local": "S3 → local", "s3-s3": "S3 → S3",
    "local-smb": "local → SMB", "smb-local": "SMB → local", "smb-s3": "SMB → S3", "s3-smb": "S3 → SMB",
    "rerun-s3": "re-run, nothing changed, local → S3", "rerun-smb": "re-run, nothing changed, local → SMB",
    "verify-s3": "verify only, local vs S3 (already in sync)", "prepare": "PREPARING only, local → empty local",
    "airflow-e2e": "end to end through Airflow, local → S3 with verify",
    "prepare-synthetic": "PREPARING only, generated source (synthetic://N) → empty local",
    "local-mount": "local → mounted FS (FUSE, +1 ms/op)", "mount-local": "mounted FS (FUSE, +1 ms/op) → local",
}
PEERS = ("rclone", "rclone-tuned", "cp", "cp-sync", "aws")
ISSUE5_SCENARIOS = {"local-local", "local-s3", "rerun-s3", "prepare", "airflow-e2e", "empty", "verify-s3"}
ISSUE14_SCENARIOS = {"local-smb", "smb-local", "smb-s3", "s3-smb", "rerun-smb"}
#: Rows whose files average at most this many bytes get a CPU-per-file figure (the small-file paths' bound).
SMALL_FILE_BYTES = 1 << 20


def _summarise(row) -> dict[str, Any]:
    ok = [r for r in row.runs if r["rc"] == 0]
    out: dict[str, Any] = {
        "scenario": row.scenario, "dataset": row.dataset, "tool": row.tool, "variant": row.variant,
        "files": row.files, "bytes": row.bytes, "runs": row.runs, "ok_runs": len(ok), "failed_runs": len(row.runs) - len(ok),
        "notes": row.notes, "command": row.command,
    }
    if ok:
        walls = [r["wall"] for r in ok]
        med = statistics.median(walls)
        out.update({
            "wall_median": round(med, 3), "wall_min": round(min(walls), 3), "wall_max": round(max(walls), 3),
            "cpu_median": round(statistics.median(r["cpu"] for r in ok), 3),
            "cpu_min": round(min(r["cpu"] for r in ok), 3), "cpu_max": round(max(r["cpu"] for r in ok), 3),
            "max_rss_mib": round(max(r["max_rss"] for r in ok) / 2**20, 1),
            "files_per_s": round(row.files / med, 1) if med > 0 else None,
            "mb_per_s": round(row.bytes / 1e6 / med, 1) if med > 0 else None,
            "load1_max": max(r.get("load1", 0) for r in row.runs),
        })
        if row.files and row.bytes / row.files <= SMALL_FILE_BYTES:
            out["cpu_ms_per_file"] = round(out["cpu_median"] * 1000 / row.files, 3)
        extra = [r for r in ok if "prepare_ms" in r and r["prepare_ms"] is not None]
        if extra:
            out["prepare_phase_ms_median"] = statistics.median(r["prepare_ms"] for r in extra)
    return out


def _add_ratios(rows: list[dict]) -> None:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["dataset"]), []).append(r)
    for group in groups.values():
        rclone = next((r for r in group if r["tool"] == "rclone" and r.get("wall_median")), None)
        peers = [r for r in group if r["tool"] in PEERS and r.get("wall_median")]
        for ours in (r for r in group if r["tool"].startswith("ours") and r.get("wall_median")):
            if rclone:
                ours["ratio_vs_rclone"] = round(ours["wall_median"] / rclone["wall_median"], 2)
            if peers:
                best = min(peers, key=lambda r: r["wall_median"])
                ours["ratio_vs_best_peer"] = round(ours["wall_median"] / best["wall_median"], 2)
                ours["best_peer"] = best["tool"]


def _find(rows: list[dict], scenario: str, tool: str, dataset_prefix: str) -> dict | None:
    for r in rows:
        if r["scenario"] == scenario and r["tool"] == tool and r["dataset"].startswith(dataset_prefix) and r.get("wall_median"):
            return r
    return None


def targets(rows: list[dict], settings: dict) -> list[dict]:
    """Issue 5's targets and issue 16's (marked so), each met / missed / not measured, with the figures that decide it."""
    small = f"small-{settings['small_count']}x{settings['small_size']}"
    big = f"big-{settings['big_count']}x{settings['big_mib']}MiB"
    out: list[dict] = []

    def ratio_target(name, scenario, dataset, peers, limit, peer_label, ours_tool="ours"):
        ours = _find(rows, scenario, ours_tool, dataset)
        found = [p for p in (_find(rows, scenario, t, dataset) for t in peers) if p]
        if not ours or not found:
            out.append({"target": name, "status": "not measured", "detail": "no successful runs of both sides"})
            return
        peer = min(found, key=lambda r: r["wall_median"])
        ratio = ours["wall_median"] / peer["wall_median"]
        out.append({"target": name, "status": "met" if ratio <= limit else "missed", "ratio": round(ratio, 2),
                    "limit": limit,
                    "detail": f"ours {ours['wall_median']:.2f} s vs {peer_label} ({peer['tool']}) "
                              f"{peer['wall_median']:.2f} s = {ratio:.2f}×"})

    size_note = "" if settings["big_mib"] == 500 else f" (measured with {settings['big_count']} × {settings['big_mib']} MiB)"
    ratio_target(f"{settings['small_count']:,} × 4 KiB local→S3 ≤ 0.66 × rclone", "local-s3", small, ["rclone"], 0.66, "rclone")
    ratio_target(f"{settings['small_count']:,} × 4 KiB local→local ≤ 0.5 × rclone", "local-local", small, ["rclone"], 0.5, "rclone")
    ratio_target("2 × 500 MB local→S3 ≤ 1.0 × the faster of rclone and aws s3 sync" + size_note, "local-s3", big,
                 ["rclone", "aws"], 1.0, "faster of rclone, aws")
    ratio_target("2 × 500 MB local→local ≤ 1.5 × cp" + size_note, "local-local", big, ["cp"], 1.5, "cp -r")
    ratio_target(f"re-run with nothing to copy ({settings['small_count']:,} files → S3) ≤ 0.5 × rclone", "rerun-s3", small,
                 ["rclone"], 0.5, "rclone")
    # Issue 16: the local engine against the peers that do the same work (cp -r && sync for a run that flushes).
    ratio_target(f"{settings['small_count']:,} × 4 KiB local→local ≤ 1.0 × rclone (issue 16)", "local-local", small,
                 ["rclone"], 1.0, "rclone")
    ratio_target("2 × 500 MB local→local, default durability ≤ 1.2 × cp -r && sync (issue 16)" + size_note, "local-local",
                 big, ["cp-sync"], 1.2, "cp -r && sync")
    ratio_target("2 × 500 MB local→local, sync_writes=false ≤ 1.5 × cp -r (issue 16)" + size_note, "local-local", big,
                 ["cp"], 1.5, "cp -r", ours_tool="ours-nosync")
    ratio_target(f"verify only ({settings['small_count']:,} files local vs S3) ≤ 1.0 × rclone check (issue 16)", "verify-s3",
                 small, ["rclone"], 1.0, "rclone check")
    out.append(_empty_target(rows))

    prep = sorted((r for r in rows if r["scenario"] == "prepare" and r["tool"] == "ours" and r.get("wall_median")),
                  key=lambda r: r["files"])
    one_m = next((r for r in prep if r["files"] >= 1_000_000), None)
    if one_m:
        wall_ok, rss_ok = one_m["wall_median"] <= 60, one_m["max_rss_mib"] <= 1024
        out.append({"target": "PREPARING 1M files ≤ 60 s wall", "status": "met" if wall_ok else "missed",
                    "detail": f"{one_m['wall_median']:.1f} s (process wall, incl. start-up and LAUNCHING)"})
        out.append({"target": "PREPARING 1M files peak RSS ≤ 1 GiB", "status": "met" if rss_ok else "missed",
                    "detail": f"{one_m['max_rss_mib']:.0f} MiB"})
    else:
        out.append({"target": "PREPARING 1M files ≤ 60 s wall and peak RSS ≤ 1 GiB", "status": "not measured",
                    "detail": "run `make bench-full`"})
    if len(prep) >= 2:
        # The issue asks to show 100k vs 1M; without both, the widest range measured.
        hi = prep[-1]
        lo = next((r for r in prep if r["files"] >= 100_000), prep[0]) if hi["files"] >= 1_000_000 else prep[0]
        lo = lo if lo is not hi else prep[0]
        growth = hi["max_rss_mib"] / lo["max_rss_mib"]
        scale = hi["files"] / lo["files"]
        flat = growth <= 1.5
        others = "; ".join(f"{r['files']:,} files: {r['max_rss_mib']:.0f} MiB" for r in prep if r is not lo and r is not hi)
        out.append({"target": "PREPARING memory flat as the file count grows (peak RSS grows ≤ 1.5× from 100k to 1M files)",
                    "status": "met" if flat else "missed", "ratio": round(growth, 2),
                    "detail": f"{lo['files']:,} files: {lo['max_rss_mib']:.0f} MiB → {hi['files']:,} files: "
                              f"{hi['max_rss_mib']:.0f} MiB ({growth:.2f}× for {scale:.0f}× the files)"
                              + (f"; also measured {others}" if others else "")})
    else:
        out.append({"target": "PREPARING memory flat as the file count grows", "status": "not measured",
                    "detail": "needs two PREPARING sizes"})
    out.extend(_synthetic_targets(rows))
    ratio_target(f"end to end through Airflow ({settings['small_count']:,} files → S3, verify) ≤ 2 × rclone copy + check",
                 "airflow-e2e", small, ["rclone"], 2.0, "rclone copy + check")
    ratio_target(f"end to end through Airflow ({settings['small_count']:,} files → S3, verify) ≤ 1.5 × rclone copy + check "
                 "(issue 16)", "airflow-e2e", small, ["rclone"], 1.5, "rclone copy + check")
    baseline = _find(rows, "airflow-e2e", "airflow-empty", small)
    if baseline and out[-1]["status"] != "not measured":  # what `airflow dags test` itself costs, shown apart
        out[-1]["detail"] += (f"; `airflow dags test` of the same tasks doing nothing: {baseline['wall_median']:.2f} s, "
                              f"CPU {baseline['cpu_median']:.2f} s")
    return out


#: Issue 16: `airflow-datasync run` over an empty tree (LAUNCHING → report, nothing to do), wall seconds.
EMPTY_RUN_LIMIT_S = 0.35


def _empty_target(rows: list[dict]) -> dict:
    name = f"empty-tree run ≤ {EMPTY_RUN_LIMIT_S} s wall (issue 16)"
    ours = _find(rows, "empty", "ours", "empty")
    if not ours:
        return {"target": name, "status": "not measured", "detail": "no successful run of the `empty` scenario"}
    rclone = _find(rows, "empty", "rclone", "empty")
    peer = f"; rclone copy of the same empty tree {_span(rclone)}, CPU {rclone['cpu_median']:.2f} s" if rclone else ""
    return {"target": name, "status": "met" if ours["wall_median"] <= EMPTY_RUN_LIMIT_S else "missed",
            "limit": EMPTY_RUN_LIMIT_S,
            "detail": f"ours {_span(ours)}, CPU {ours['cpu_median']:.2f} s ({ours['cpu_min']:.2f}–{ours['cpu_max']:.2f}){peer}"}


def _synthetic_targets(rows: list[dict]) -> list[dict]:
    """Issue 15: PREPARING of 10M generated entries under 1 GiB, memory flat from 1M (≤ 1.25× at the peak)."""
    prep = sorted((r for r in rows if r["scenario"] == "prepare-synthetic" and r.get("wall_median")),
                  key=lambda r: r["files"])
    ten_m = next((r for r in prep if r["files"] >= 10_000_000), None)
    one_m = next((r for r in prep if r["files"] >= 1_000_000), None)
    if ten_m is None or one_m is None or one_m is ten_m:
        return [{"target": "PREPARING 10M entries peak RSS ≤ 1 GiB, flat from 1M", "status": "not measured",
                 "detail": "run `make bench-full` (prepare-synthetic rows)"}]
    growth = ten_m["max_rss_mib"] / one_m["max_rss_mib"]
    ok = ten_m["max_rss_mib"] <= 1024 and growth <= 1.25
    return [{"target": "PREPARING 10M entries peak RSS ≤ 1 GiB, flat from 1M (≤ 1.25×)", "status": "met" if ok else "missed",
             "ratio": round(growth, 2),
             "detail": "; ".join(f"{r['files']:,}: {r['max_rss_mib']:.0f} MiB, {r['wall_median']:.1f} s wall, "
                                 f"{r['cpu_median']:.1f} s CPU" for r in prep)}]


def _span(r: dict) -> str:
    """Median wall and its range: `12.30 s (11.90–13.00)`, or `(1 run)`."""
    if len(r["runs"]) > 1:
        return f"{r['wall_median']:.2f} s ({r['wall_min']:.2f}–{r['wall_max']:.2f})"
    return f"{r['wall_median']:.2f} s (1 run)"


def _mb_span(r: dict) -> str:
    mb = r["bytes"] / 1e6
    if len(r["runs"]) > 1:
        return f"{r['mb_per_s']:.0f} MB/s ({mb / r['wall_max']:.0f}–{mb / r['wall_min']:.0f})"
    return f"{r['mb_per_s']:.0f} MB/s (1 run)"


def _cpu_text(r: dict) -> str:
    if r.get("cpu_ms_per_file") is None:  # big files: per-file CPU says nothing
        return f"CPU {r['cpu_median']:.1f} s"
    return f"CPU {r['cpu_median']:.1f} s = {r['cpu_ms_per_file']:.2f} ms/file"


def smb_targets(rows: list[dict], settings: dict) -> list[dict]:
    """Issue 14's targets, each met / missed / not measured, against rclone (defaults) in the same run."""
    n = settings["small_count"]
    small = f"small-{n}x{settings['small_size']}"
    big = f"big-{settings['big_count']}x{settings['big_mib']}MiB"
    big_label = f"{settings['big_count']} × {settings['big_mib']} MiB"
    out: list[dict] = []

    def pair(scenario: str, dataset: str) -> tuple[dict, dict] | None:
        ours, rclone = _find(rows, scenario, "ours", dataset), _find(rows, scenario, "rclone", dataset)
        return (ours, rclone) if ours and rclone else None

    def missing(name: str) -> None:
        out.append({"target": name, "status": "not measured", "detail": "no successful runs of ours and rclone"})

    def wall_target(name: str, scenario: str, dataset: str, limit: float, cpu_ms_limit: float | None = None) -> None:
        found = pair(scenario, dataset)
        if not found:
            return missing(name)
        ours, rclone = found
        ratio = ours["wall_median"] / rclone["wall_median"]
        cpu_ms = ours["cpu_median"] * 1000 / ours["files"]
        met = ratio <= limit and (cpu_ms_limit is None or cpu_ms <= cpu_ms_limit)
        detail_cpu = "" if cpu_ms_limit is None else f" (limit {cpu_ms_limit:g} ms/file)"
        detail = (f"ours {_span(ours)}, {_cpu_text(ours)} vs rclone {_span(rclone)}, {_cpu_text(rclone)}: "
                  f"{ratio:.2f}× wall{detail_cpu}")
        out.append({"target": name, "status": "met" if met else "missed", "ratio": round(ratio, 2), "limit": limit,
                    "cpu_ms_per_file": round(cpu_ms, 3), "detail": detail})

    def throughput_target(name: str, scenario: str, dataset: str, floor_mb_s: float) -> None:
        found = pair(scenario, dataset)
        if not found:
            return missing(name)
        ours, rclone = found
        met = ours["mb_per_s"] >= rclone["mb_per_s"] and ours["mb_per_s"] >= floor_mb_s
        out.append({"target": name, "status": "met" if met else "missed",
                    "ratio": round(ours["wall_median"] / rclone["wall_median"], 2),
                    "detail": f"ours {_mb_span(ours)}, {_span(ours)}, CPU {ours['cpu_median']:.1f} s vs rclone "
                              f"{_mb_span(rclone)}, {_span(rclone)}, CPU {rclone['cpu_median']:.1f} s"})

    for scenario, label in (("local-smb", "local→SMB"), ("smb-local", "SMB→local")):
        wall_target(f"{n:,} × 4 KiB {label} ≤ 1.0 × rclone wall and ≤ 2 ms CPU/file", scenario, small, 1.0, 2.0)
    for scenario, label in (("local-smb", "local→SMB"), ("smb-local", "SMB→local")):
        throughput_target(f"{big_label} {label} ≥ rclone's MB/s and ≥ 300 MB/s", scenario, big, 300.0)
    for scenario, label in (("smb-s3", "SMB→S3"), ("s3-smb", "S3→SMB")):
        wall_target(f"{n:,} × 4 KiB {label} ≤ 1.0 × rclone", scenario, small, 1.0)
        wall_target(f"{big_label} {label} ≤ 1.0 × rclone", scenario, big, 1.0)
    wall_target(f"re-run with nothing changed ({n:,} files on SMB) ≤ 0.5 × rclone", "rerun-smb", small, 0.5)
    return out


def build(rows, settings: dict, *, datasets: list[dict], skipped: dict, versions: dict, elapsed: float,
          work: Path) -> dict:
    summaries = [_summarise(r) for r in rows]
    _add_ratios(summaries)
    for s in summaries:
        for run in s["runs"]:
            run.pop("log", None)
    for d in datasets:
        d["path"] = d["path"].replace(str(work), "$WORK")
    return {
        "date": dt.date.today().isoformat(), "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1), "settings": settings, "versions": versions, "datasets": datasets,
        "skipped": skipped, "rows": summaries, "targets": targets(summaries, settings),
        "smb_targets": smb_targets(summaries, settings),
    }


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _load_sentence(result: dict) -> str:
    loads = [run.get("load1", 0) for r in result["rows"] for run in r["runs"]]
    if not loads:
        return ""
    cpus = result["versions"].get("cpus") or 1
    text = f"1-minute load average at the start of runs: {min(loads):.1f}–{max(loads):.1f} on {cpus} CPUs"
    if max(loads) > cpus + 0.5:
        text += (" — other work shared the machine during some runs; compare rows of one scenario "
                 "(their runs alternate) rather than absolute times")
    return text + "."


def markdown(result: dict) -> str:
    s = result["settings"]
    v = result["versions"]
    lines = [
        f"Measured {result['date']} on {v.get('cpus')} CPUs / {v.get('mem_gib', '?')} GiB, Python {v.get('python')}, "
        f"{v.get('rclone', 'rclone ?')}, {v.get('aws', 'aws-cli not installed').split(' Python')[0]}; "
        f"engine commit {v.get('airflow_datasync_commit', '?')}{' (+ uncommitted engine changes)' if v.get('engine_tree_dirty') else ''}. "
        f"Profile `{s['profile']}`: {s['runs']} runs per tool on the target rows, {s['other_runs']} on the others; "
        f"big files {s['big_count']} × {s['big_mib']} MiB on target rows, {s['big_count']} × {s['other_big_mib']} MiB "
        f"elsewhere; harness wall time {result['elapsed_s'] / 60:.1f} min. " + _load_sentence(result),
        "",
        "| scenario | dataset | tool | wall median (min–max) s | CPU s | CPU ms/file | peak RSS MiB | files/s | MB/s | us/rclone | us/best peer |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        scen = SCENARIO_TITLES.get(r["scenario"], r["scenario"])
        tool = f"**{r['tool']}**" if r["tool"].startswith("ours") else r["tool"]
        tool += f" <br><sub>{r['variant']}</sub>"
        if r.get("wall_median") is None:
            wall = f"FAILED ({r['failed_runs']} runs)"
            cells = ["–"] * 7
        else:
            n = len(r["runs"])
            wall = (f"{_fmt(r['wall_median'])} ({_fmt(r['wall_min'])}–{_fmt(r['wall_max'])})" if n > 1
                    else f"{_fmt(r['wall_median'])} (1 run)")
            if r["failed_runs"]:
                wall += f" ⚠ {r['failed_runs']} failed"
            best = r.get("ratio_vs_best_peer")
            cells = [_fmt(r["cpu_median"], 1), _fmt(r.get("cpu_ms_per_file")), _fmt(r["max_rss_mib"], 0), _fmt(r["files_per_s"], 0),
                     _fmt(r["mb_per_s"], 1), _fmt(r.get("ratio_vs_rclone")),
                     f"{_fmt(best)} ({r['best_peer']})" if best is not None else "–"]
        lines.append(f"| {scen} | {r['dataset']} | {tool} | {wall} | " + " | ".join(cells) + " |")
    notes = [(r, n) for r in result["rows"] for n in r["notes"]]
    if notes or result["skipped"]:
        lines += ["", "Notes:"]
        lines += [f"- {r['scenario']} · {r['dataset']} · {r['tool']}: {n}" for r, n in notes]
        lines += [f"- skipped {k}: {why}" for k, why in result["skipped"].items()]
    lines += ["", "### Targets (issue 5), computed from the table above", "",
              "| target | status | figures |", "|---|---|---|"]
    ran = set(s.get("scenarios") or [])
    if not ran or ran & ISSUE5_SCENARIOS:
        lines += _target_rows(result["targets"])
    else:
        lines += ["| (none of its scenarios ran) | – | – |"]
    if result.get("smb_targets") and (not ran or ran & ISSUE14_SCENARIOS):
        lines += ["", "### Targets (issue 14, SMB), computed from the table above", "",
                  "Against rclone (defaults) in the same run; wall medians with min–max over the runs; CPU is the "
                  "whole process's user+sys (start-up included) divided by the files.", "",
                  "| target | status | figures |", "|---|---|---|"]
        lines += _target_rows(result["smb_targets"])
    return "\n".join(lines) + "\n"


def _target_rows(targets: list[dict]) -> list[str]:
    marks = {"met": "✅ met", "missed": "❌ **missed**", "not measured": "– not measured"}
    return [f"| {t['target']} | {marks[t['status']]} | {t['detail']} |" for t in targets]


def write_docs(page: Path, table: str) -> None:
    """Replace what lies between the bench markers (add the markers at the end if the page has none)."""
    text = page.read_text() if page.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{table}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    page.write_text(text)
