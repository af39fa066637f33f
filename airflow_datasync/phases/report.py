"""The execution report: DataSync's counters and status as JSON, and per-file rows as Parquet.

Built only from the files the phases wrote, so it can run after any failure (Airflow runs it with
``trigger_rule="all_done"``) and says what happened, including phases that never ran.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync.manifest import MANIFEST_SCHEMA, RESULT_SCHEMA, VERIFY_SCHEMA, ExecutionDir, utcnow

# The text forms moved to report_text; importable from here too, for code written against the old place.
from airflow_datasync.report_text import format_summary, render  # noqa: F401
from airflow_datasync.units import counted, entries

log = logging.getLogger("airflow_datasync")

#: Columns of report.parquet (one row per entry in the manifest).
REPORT_COLUMNS = ["path", "type", "size", "action", "reason", "shard", "status", "bytes_written", "checksum_algo",
                  "src_checksum", "dst_checksum", "verify_status", "error", "warning"]
#: Their types, as the per-file join of the manifest with the results gives them (every column nullable).
REPORT_SCHEMA = pa.schema([{f.name: f for f in (*VERIFY_SCHEMA, *RESULT_SCHEMA, *MANIFEST_SCHEMA)}[name].with_nullable(True)
                           for name in REPORT_COLUMNS])


def _ms_between(a: str | None, b: str | None) -> int:
    if not a or not b:
        return 0
    return int((dt.datetime.fromisoformat(b) - dt.datetime.fromisoformat(a)).total_seconds() * 1000)


def build_report(execution: ExecutionDir) -> dict[str, Any]:
    """Write report.json (and report.parquet, as TaskReportConfig asks) from the phases' files; return it.

    A dry run's report (``"DryRun": true``) says what a run would do: the Estimated* counters, FilesSkipped,
    and one row per manifest entry with status DRY_RUN and the planned action. It is SUCCESS once PREPARING
    completed; entries a run would fail on (action error) count in FilesFailed and are named in Warnings.
    """
    launch = execution.read_json(execution.launch) or {}
    prepare = execution.read_json(execution.prepare)
    refused = execution.read_json(execution.prepare_refused) if prepare is None else None
    finalize = execution.read_json(execution.finalize)
    verify = execution.read_json(execution.verify)
    shards = list(execution.shard_summaries())
    manifest = execution.read_table(execution.manifest, MANIFEST_SCHEMA)
    results = execution.shard_results()
    deletes = execution.read_table(execution.delete_rows, RESULT_SCHEMA)
    links = execution.read_table(execution.link_rows, RESULT_SCHEMA)  # hard links FINALIZE made
    verify_rows = execution.read_table(execution.verify_rows, VERIFY_SCHEMA)
    options = launch.get("options_dict", {})
    dry_run = bool(options.get("dry_run"))

    ok = pc.equal(results["status"], "SUCCESS")
    failed_results = results.filter(pc.equal(results["status"], "FAILED"))
    copied = results.filter(ok)
    counters = {
        "EstimatedFilesToTransfer": (prepare or refused or {}).get("EstimatedFilesToTransfer", 0),
        "EstimatedBytesToTransfer": (prepare or refused or {}).get("EstimatedBytesToTransfer", 0),
        "EstimatedFilesToDelete": (prepare or refused or {}).get("EstimatedFilesToDelete", 0),
        "FilesPrepared": (prepare or {}).get("FilesPrepared", 0),
        "FilesTransferred": copied.num_rows + int(pc.sum(pc.equal(links["status"], "SUCCESS")).as_py() or 0),
        "BytesWritten": int(pc.sum(copied["bytes_written"]).as_py() or 0),
        "BytesTransferred": int(pc.sum(copied["bytes_written"]).as_py() or 0),
        "FilesSkipped": int(pc.sum(pc.equal(manifest["action"], "skip")).as_py() or 0),
        "FilesDeleted": int(pc.sum(pc.equal(deletes["status"], "SUCCESS")).as_py() or 0),
        "FilesVerified": int(pc.sum(pc.equal(verify_rows["verify_status"], "VERIFIED")).as_py() or 0),
    }
    source_errors = manifest.filter(pc.equal(manifest["action"], "error"))
    failed_deletes = deletes.filter(pc.equal(deletes["status"], "FAILED"))
    bad_verify = verify_rows.filter(pc.not_equal(verify_rows["verify_status"], "VERIFIED"))
    failed_links = links.filter(pc.equal(links["status"], "FAILED"))
    counters["FilesFailed"] = (failed_results.num_rows + source_errors.num_rows + failed_deletes.num_rows + bad_verify.num_rows
                               + failed_links.num_rows)
    # DataSync's TaskExecutionFilesFailedDetail: the same failures by the phase they happened in.
    counters["FilesFailedDetail"] = {"Prepare": source_errors.num_rows, "Transfer": failed_results.num_rows + failed_links.num_rows,
                                     "Verify": bad_verify.num_rows, "Delete": failed_deletes.num_rows}
    counters["DeletionsSkipped"] = int((finalize or {}).get("deletions_skipped") or 0)

    expected_shards = (prepare or {}).get("shard_count", 0)
    problems: list[tuple[str, str]] = []
    if refused is not None:
        problems.append(("DeletionCapExceeded", refused["error"]))
    elif prepare is None:
        problems.append(("PrepareFailed", "PREPARING did not complete; see the prepare task's log"))
    elif len(shards) < expected_shards and not dry_run:
        problems.append(("TransferIncomplete", f"{expected_shards - len(shards)} of {counted(expected_shards, 'shard')} did not finish"))
    if source_errors.num_rows and not dry_run:  # a dry run names them in Warnings: only PREPARING ran
        problems.append(("SourceErrors", _examples(source_errors["path"], source_errors["reason"], source_errors.num_rows, "{were} refused at the source (unreadable, an unsafe name, a name clash at the destination or a name the destination cannot hold)")))
    if failed_results.num_rows:
        problems.append(("FilesFailed", _examples(failed_results["path"], failed_results["error"], failed_results.num_rows, "failed to transfer")))
    if failed_links.num_rows:
        problems.append(("FilesFailed", _examples(failed_links["path"], failed_links["error"], failed_links.num_rows, "could not be hard-linked")))
    if (finalize or {}).get("deletions_skipped_because"):
        problems.append(("DeletionsSkipped", finalize["deletions_skipped_because"]))
    if failed_deletes.num_rows:
        problems.append(("DeleteFailed", _examples(failed_deletes["path"], failed_deletes["error"], failed_deletes.num_rows, "could not be deleted")))
    if prepare is not None and not dry_run and len(shards) >= expected_shards and finalize is None and expected_shards + (prepare.get("EstimatedFilesToDelete") or 0) > 0:
        problems.append(("TransferIncomplete", "deletions and directory metadata were not applied (finalize did not run)"))
    if bad_verify.num_rows:
        problems.append(("VerificationFailed", _examples(bad_verify["path"], bad_verify["verify_error"], bad_verify.num_rows, "failed verification")))
    if prepare is not None and verify is None and options.get("VerifyMode") != "NONE" and not problems and not dry_run:
        problems.append(("VerificationIncomplete", "VERIFYING did not run"))

    launched_at = launch.get("launched_at")
    ended = utcnow()
    transfer_start = min((s["started_at"] for s in shards), default=None)
    transfer_end = max([s["ended_at"] for s in shards] + ([finalize["ended_at"]] if finalize else []), default=None)
    summary: dict[str, Any] = {
        "TaskExecutionId": execution.execution_id,
        "TaskName": execution.task_name,
        "Status": "ERROR" if problems else "SUCCESS",
        "DryRun": dry_run,
        "SourceLocation": (launch.get("source") or {}).get("uri"),
        "DestinationLocation": (launch.get("destination") or {}).get("uri"),
        "StartTime": launched_at,
        "EndTime": ended,
        **counters,
        "PrepareDuration": (prepare or {}).get("duration_ms", 0),
        "TransferDuration": _ms_between(transfer_start, transfer_end) if transfer_start else (finalize or {}).get("duration_ms", 0),
        "VerifyDuration": (verify or {}).get("duration_ms", 0),
        "TotalDuration": _ms_between(launched_at, ended),
        "ErrorCode": problems[0][0] if problems else None,
        # One clause per problem; a detail quoting an error message may end with its full stop (not ".;").
        "ErrorDetail": "; ".join(d.rstrip(".") for _, d in problems) if problems else None,
        "VerifyMode": options.get("VerifyMode"),
        "VerifyRan": verify is not None,
        "ShardCount": expected_shards,
        "ShardsCompleted": len(shards),
        "FilesResumed": int(pc.sum(results["resumed"]).as_py() or 0),
        "Warnings": (prepare or {}).get("warnings", []) + (finalize or {}).get("warnings", [])[:20] + [w for w in results["warning"].to_pylist() + deletes["warning"].to_pylist() if w][:20],
        "ReportUri": execution.uri_of(execution.report_rows),
        "ExecutionUri": execution.uri,
    }
    if dry_run and source_errors.num_rows:
        summary["Warnings"].insert(0, "dry run: a run would fail on " + _examples(
            source_errors["path"], source_errors["reason"], source_errors.num_rows,
            "refused at the source (unreadable, an unsafe name, or a name clash at the destination)"))
    report_config = options.get("TaskReportConfig") or {}
    if report_config.get("OutputType", "STANDARD") == "STANDARD":
        rows = _per_file(manifest, pa.concat_tables([results, deletes, links]), verify_rows)
        if dry_run:  # nothing ran: every row is a plan, its action what a run would do
            rows = rows.set_column(rows.schema.get_field_index("status"), "status",
                                   pa.repeat(pa.scalar("DRY_RUN", pa.string()), rows.num_rows))
        if report_config.get("ReportLevel") == "ERRORS_ONLY":
            rows = rows.filter(pc.or_(pc.equal(rows["status"], "FAILED"), pc.is_valid(rows["error"])))
        execution.write_table(execution.report_rows, rows, rows.schema)
    else:
        summary["ReportUri"] = None
    execution.write_json(execution.report, summary)
    log.info("report %s: %s", execution.execution_id, format_summary(summary))
    return summary


def _examples(paths, errors, count: int, what: str) -> str:
    # Always name the path: source-scan reasons ("cannot list directory: ...") do not contain it.
    shown = [(e if p in e else f"{p}: {e}") if e else p for p, e in zip(paths.to_pylist()[:3], errors.to_pylist()[:3])]
    return f"{entries(count)} {what.format(were='was' if count == 1 else 'were')}, e.g. " + " | ".join(shown)


def _per_file(manifest: pa.Table, results: pa.Table, verify_rows: pa.Table) -> pa.Table:
    if manifest.num_rows == 0:  # a row per manifest entry: none (and no join engine to load for none)
        return REPORT_SCHEMA.empty_table()
    base = manifest.select(["path", "type", "size", "action", "reason", "shard"])
    res = results.select(["path", "status", "bytes_written", "checksum_algo", "src_checksum", "error", "warning"])
    ver = verify_rows.select(["path", "verify_status", "checksum_algo", "src_checksum", "dst_checksum", "verify_error"])
    ver = ver.rename_columns(["path", "verify_status", "v_algo", "v_src", "dst_checksum", "verify_error"])
    joined = base.join(res, keys="path", join_type="left outer").join(ver, keys="path", join_type="left outer")
    # Where VERIFYING compared checksums, show the pair it compared (same algorithm on both sides).
    verified_with = pc.is_valid(joined["v_algo"])
    for name, other in (("checksum_algo", "v_algo"), ("src_checksum", "v_src")):
        joined = joined.set_column(joined.schema.get_field_index(name), name,
                                   pc.if_else(verified_with, joined[other], joined[name]))
    status = pc.if_else(pc.equal(joined["action"], "error"), "FAILED", joined["status"])
    status = pc.if_else(pc.is_in(joined["action"], pa.array(["skip"])), "SKIPPED", status)
    status = pc.if_else(pc.is_in(joined["verify_status"], pa.array(["MISMATCH", "MISSING", "ERROR"])), "FAILED", status)
    error = pc.coalesce(joined["error"], joined["verify_error"], pc.if_else(pc.equal(joined["action"], "error"), joined["reason"], pa.scalar(None, pa.string())))
    joined = joined.set_column(joined.schema.get_field_index("status"), "status", status)
    joined = joined.set_column(joined.schema.get_field_index("error"), "error", error)
    return joined.select(REPORT_COLUMNS).sort_by("path")


def report(execution: ExecutionDir) -> dict[str, Any]:
    """The report phase: :func:`build_report`."""
    return build_report(execution)
