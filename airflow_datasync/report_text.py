"""The execution report as text a person reads at a glance (``make demo``, the CLI, the report task's log).

:func:`render` groups the summary like the DataSync console shows a task execution: status, phases with
their durations, what was estimated, what happened, where the records are, warnings. :func:`format_summary`
says the same in one line, for exception messages. Bytes are in decimal units (1 kB = 1,000 B), as the
DataSync console shows them; durations in ms, s, min or h (both from :mod:`airflow_datasync.units`, which
the pages use too). No value prints as ``None``.
"""

from __future__ import annotations

from typing import Any

from airflow_datasync import units
from airflow_datasync.units import counted

#: Warnings listed in full; the rest are counted ("… and 7 more"): report.json has every one.
MAX_WARNINGS = 10
_NONE = "—"


def format_bytes(count: float | None) -> str:
    """Decimal units like the DataSync console: ``512 B``, ``1.5 kB``, ``104.2 MB``."""
    return _NONE if count is None else units.byte_size(count)


def format_duration(ms: float | None) -> str:
    """``850 ms``, ``1.2 s``, ``2 min 5 s``, ``1 h 2 min``."""
    return _NONE if ms is None else units.duration_ms(ms)


def format_time(iso: str | None) -> str:
    """An ISO-8601 timestamp as ``2026-12-01 09:50:29 UTC``."""
    return units.timestamp(iso) if iso else _NONE


def _count(summary: dict[str, Any], key: str) -> int:
    return int(summary.get(key) or 0)


def phases_line(summary: dict[str, Any]) -> str:
    """``LAUNCHING → PREPARING 1.2 s → TRANSFERRING 3.4 s → VERIFYING 0.8 s → SUCCESS``, naming what did not run."""
    steps = ["LAUNCHING", f"PREPARING {format_duration(summary.get('PrepareDuration'))}"]
    if summary.get("DryRun"):
        steps.append("(dry run: TRANSFERRING and VERIFYING not run)")
    else:
        shards, completed = _count(summary, "ShardCount"), _count(summary, "ShardsCompleted")
        transfer = f"TRANSFERRING {format_duration(summary.get('TransferDuration'))}"
        if completed < shards:
            transfer += f" ({completed:,} of {counted(shards, 'shard')} finished)"
        elif not shards and "ShardCount" in summary:  # an AWS service execution has no shards of ours
            transfer += " (nothing to copy)"
        steps.append(transfer)
        if summary.get("VerifyMode") == "NONE":
            steps.append("VERIFYING skipped (VerifyMode NONE)")
        elif summary.get("VerifyRan") is False or summary.get("ErrorCode") == "VerificationIncomplete" or (
                "VerifyRan" not in summary and summary.get("ErrorCode") and not summary.get("VerifyDuration")):
            steps.append("VERIFYING not run")
        else:
            steps.append(f"VERIFYING {format_duration(summary.get('VerifyDuration'))}")
    steps.append(str(summary.get("Status") or _NONE))
    return " → ".join(steps)


def headline(summary: dict[str, Any]) -> str:
    """What happened, in one sentence of counts (the first line of :func:`render`, the tail of :func:`format_summary`)."""
    took = format_duration(summary.get("TotalDuration"))
    if summary.get("DryRun"):
        return (f"would transfer {counted(_count(summary, 'EstimatedFilesToTransfer'), 'entry', 'entries')} "
                f"({format_bytes(_count(summary, 'EstimatedBytesToTransfer'))}), "
                f"skip {_count(summary, 'FilesSkipped'):,}, delete {_count(summary, 'EstimatedFilesToDelete'):,}, in {took}")
    return (f"{counted(_count(summary, 'FilesTransferred'), 'entry', 'entries')} transferred "
            f"({format_bytes(_count(summary, 'BytesWritten'))}), {_count(summary, 'FilesSkipped'):,} skipped, "
            f"{_count(summary, 'FilesDeleted'):,} deleted, {_count(summary, 'FilesVerified'):,} verified, "
            f"{_count(summary, 'FilesFailed'):,} failed, in {took}")


def format_summary(summary: dict[str, Any]) -> str:
    """One line, for exception messages and log lines: status, error, counts."""
    status = "DRY RUN" if summary.get("DryRun") else str(summary.get("Status") or _NONE)
    text = f"{status}: {headline(summary)}"
    if summary.get("ErrorCode"):
        text += f"; {summary['ErrorCode']}: {summary.get('ErrorDetail') or _NONE}"
    return text


def _failed(summary: dict[str, Any]) -> str:
    """``3 (prepare 1, transfer 2)``: FilesFailed and, where some failed, by phase (FilesFailedDetail)."""
    total = f"{_count(summary, 'FilesFailed'):,}"
    detail = summary.get("FilesFailedDetail") or {}
    parts = [f"{phase.lower()} {int(n):,}" for phase, n in detail.items() if n]
    return f"{total} ({', '.join(parts)})" if parts else total


def _rows(rows: list[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max(len(label) for label, _ in rows)
    return [f"{indent}{label.ljust(width)}  {value}" for label, value in rows]


def render(summary: dict[str, Any]) -> str:
    """A block for the CLI, ``make demo`` and the report task's log, grouped like the DataSync console."""
    dry_run = bool(summary.get("DryRun"))
    status = f"DRY RUN — nothing was written ({summary.get('Status') or _NONE})" if dry_run else str(summary.get("Status") or _NONE)
    lines = [f"DataSync execution {summary.get('TaskExecutionId') or _NONE} of task {summary.get('TaskName') or _NONE}: {status}",
             f"  {headline(summary)}", ""]

    overview = [("Status", status)]
    if summary.get("ErrorCode"):
        overview.append(("Error code", str(summary["ErrorCode"])))
        # ErrorDetail joins one sentence per problem with "; ": one line each reads better.
        for i, problem in enumerate(str(summary.get("ErrorDetail") or _NONE).split("; ")):
            overview.append(("Error detail" if i == 0 else "", problem))
    overview += [("Phases", phases_line(summary)),
                 ("Total duration", format_duration(summary.get("TotalDuration"))),
                 ("Started", format_time(summary.get("StartTime"))),
                 ("Ended", format_time(summary.get("EndTime"))),
                 ("Source", str(summary.get("SourceLocation") or _NONE)),
                 ("Destination", str(summary.get("DestinationLocation") or _NONE))]
    lines += _rows(overview)

    lines += ["", "Estimated by PREPARING"]
    lines += _rows([
        ("Entries in scope at the source", f"{_count(summary, 'FilesPrepared'):,}"),
        ("Entries to transfer (files, directories, symlinks)", f"{_count(summary, 'EstimatedFilesToTransfer'):,}"),
        ("Bytes to transfer", format_bytes(_count(summary, "EstimatedBytesToTransfer"))),
        ("Entries to delete at the destination", f"{_count(summary, 'EstimatedFilesToDelete'):,}"),
    ])

    if dry_run:
        lines += ["", "Dry run (nothing was written at the destination)"]
        lines += _rows([
            ("Would transfer (files, directories, symlinks)", f"{counted(_count(summary, 'EstimatedFilesToTransfer'), 'entry', 'entries')}, "
                                                              f"{format_bytes(_count(summary, 'EstimatedBytesToTransfer'))}"),
            ("Would skip (already in sync)", counted(_count(summary, "FilesSkipped"), "entry", "entries")),
            ("Would delete", counted(_count(summary, "EstimatedFilesToDelete"), "entry", "entries")),
            ("Refused at the source", counted(_count(summary, "FilesFailed"), "entry", "entries")),
        ])
    else:
        verified = f"{_count(summary, 'FilesVerified'):,}"
        if summary.get("VerifyMode"):
            verified += f" (VerifyMode {summary['VerifyMode']})"
        results = [
            ("Entries transferred (files, directories, symlinks)", f"{_count(summary, 'FilesTransferred'):,}"),
            ("Bytes written", format_bytes(_count(summary, "BytesWritten"))),
            ("Entries skipped (already in sync)", f"{_count(summary, 'FilesSkipped'):,}"),
            ("Deleted at the destination", f"{_count(summary, 'FilesDeleted'):,}"),
            ("Verified files (checksums compared)", verified),
            ("Failed (transfer, source, delete or verify)", _failed(summary)),
        ]
        if _count(summary, "DeletionsSkipped"):
            results.append(("Deletions skipped (a copy failed)", f"{_count(summary, 'DeletionsSkipped'):,}"))
        if _count(summary, "FilesResumed"):
            results.append(("Resumed from an earlier try", f"{_count(summary, 'FilesResumed'):,}"))
        shards, completed = _count(summary, "ShardCount"), _count(summary, "ShardsCompleted")
        if "ShardCount" in summary:
            results.append(("Shards", f"{completed:,} of {counted(shards, 'shard')} completed" if shards else "none (nothing to copy)"))
        lines += ["", "Results"] + _rows(results)

    records = [("Per-file report", str(summary.get("ReportUri") or "not written (TaskReportConfig)")),
               ("Execution record", str(summary.get("ExecutionUri") or _NONE))]
    lines += ["", "Records"] + _rows(records)

    warnings = [str(w) for w in summary.get("Warnings") or []]
    if warnings:
        lines += ["", f"Warnings ({len(warnings):,})"]
        lines += [f"  {i}. {w}" for i, w in enumerate(warnings[:MAX_WARNINGS], 1)]
        if len(warnings) > MAX_WARNINGS:
            lines.append(f"  … and {len(warnings) - MAX_WARNINGS:,} more (all of them are in report.json)")
    return "\n".join(lines)
