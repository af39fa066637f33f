"""``airflow-datasync``: run an execution without a scheduler, or print a report.

    airflow-datasync run /data/src /mnt/nfs/dst --option VerifyMode=POINT_IN_TIME_CONSISTENT --store /tmp/m
    airflow-datasync report <execution dir>
    airflow-datasync list --store /tmp/m --status ERROR
    airflow-datasync prune --store /tmp/m --keep-last 20 --older-than 30d --dry-run
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import sys
from collections.abc import Iterator

from airflow_datasync.errors import LocationError


def _option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--option takes Key=Value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed: object = json.loads(value)
    except ValueError:
        parsed = value
    if key in ("Includes", "Excludes"):
        parsed = value
    return key, parsed


def main(argv: list[str] | None = None) -> int:
    # Before pyarrow loads numpy, whose OpenBLAS starts a thread per CPU at import: nothing here does linear
    # algebra, and on a short run those threads' start cost more CPU than the run (docs/benchmarks.md).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(prog="airflow-datasync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a whole execution in this process and print its report")
    run.add_argument("source")
    run.add_argument("destination")
    run.add_argument("--option", "-o", action="append", type=_option, default=[], metavar="Key=Value",
                     help="a DataSync option, e.g. VerifyMode=NONE, Excludes='*.tmp|/scratch' (repeatable)")
    run.add_argument("--task-name", default="cli")
    run.add_argument("--store", help="manifest store: a directory or s3://bucket/prefix (default: $AIRFLOW_DATASYNC_MANIFEST_STORE)")
    run.add_argument("--store-conn-id", help="AWS connection of an s3:// manifest store")
    run.add_argument("--source-conn-id", help="Airflow connection of the source (s3://, smb://)")
    run.add_argument("--destination-conn-id", help="Airflow connection of the destination (s3://, smb://)")
    run.add_argument("--dry-run", action="store_true", help="LAUNCHING and PREPARING only: report what would be copied, skipped and deleted; write nothing at the destination")
    run.add_argument("--resume", metavar="EXECUTION_ID",
                     help="carry on this execution of --task-name (or 'latest') from its plan and journals, listing nothing again")
    run.add_argument("--json", action="store_true",
                     help="print only the summary, as JSON, on stdout (logs and anything else go to stderr)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    rep = sub.add_parser("report", help="print the report summary of an execution directory")
    rep.add_argument("execution", help="an execution directory or s3:// URI")
    rep.add_argument("--store-conn-id", help="AWS connection of an s3:// manifest store")
    from airflow_datasync import cli_catalog  # list, prune

    cli_catalog.add_parsers(sub)
    args = parser.parse_args(argv)
    if args.command in cli_catalog.COMMANDS:
        return cli_catalog.main(args)
    if getattr(args, "dry_run", False):
        args.option.append(("dry_run", True))  # the engine setting; the report then has "DryRun": true

    from airflow_datasync.report_text import render

    if args.command == "report":
        from airflow_datasync.manifest import ExecutionDir

        execution = ExecutionDir(args.execution, args.store_conn_id)
        summary = execution.read_json(execution.report)
        if summary is None:
            print(f"no report.json in {args.execution}", file=sys.stderr)
            return 2
        print(render(summary))
        return 0 if summary["Status"] == "SUCCESS" else 1

    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The ``run`` verb: logs on stderr; on stdout the text report, or with ``--json`` the summary alone."""
    from airflow_datasync.report_text import render

    # Progress lines go to stderr (basicConfig's default stream), so stdout holds only the result.
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s",
                        stream=sys.stderr)
    with _stdout_to_stderr() if args.json else contextlib.nullcontext():
        # What the imports build lives as long as this process: no collection while they load (~80 of them,
        # finding nothing), then out of every later one (the run allocates per-file objects that trigger
        # them) and, at the end, of the interpreter's final ones, a visible share of a short run
        # (docs/benchmarks.md).
        gc.disable()
        try:
            from airflow_datasync.engine import LocationSpec, run_execution
            from airflow_datasync.options import OptionsError
        finally:
            gc.freeze()
            gc.enable()
        try:
            summary = run_execution(LocationSpec(args.source, args.source_conn_id),
                                    LocationSpec(args.destination, args.destination_conn_id), dict(args.option),
                                    task_name=args.task_name, store=args.store, store_conn_id=args.store_conn_id,
                                    resume=args.resume)
        except (LocationError, OptionsError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(json.dumps(summary, indent=2) if args.json else render(summary), flush=True)
    gc.freeze()
    return 0 if summary["Status"] == "SUCCESS" else 1


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send whatever is written to stdout meanwhile to stderr: print()s, logging handlers bound to
    sys.stdout (Airflow's logging config may add some), native code writing to fd 1. ``--json``'s
    promise is that stdout holds the JSON and nothing else."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()  # what a handler holding the original sys.stdout buffered goes to stderr too
        os.dup2(saved, 1)
        os.close(saved)


if __name__ == "__main__":
    sys.exit(main())
