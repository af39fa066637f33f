"""The ``list`` and ``prune`` verbs of ``airflow-datasync``: executions in a manifest store, and retention.

    airflow-datasync list --store /data/datasync/executions --status ERROR --limit 10
    airflow-datasync prune --store /data/datasync/executions --keep-last 20 --older-than 30d --dry-run
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from airflow_datasync import units

COMMANDS = ("list", "prune")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store_help = "manifest store: a directory or s3://bucket/prefix (default: $AIRFLOW_DATASYNC_MANIFEST_STORE)"
    ls = sub.add_parser("list", help="list the executions of a manifest store, newest first")
    ls.add_argument("--store", help=store_help)
    ls.add_argument("--store-conn-id", help="AWS connection of an s3:// manifest store")
    ls.add_argument("--task-name", help="only executions of this task name")
    ls.add_argument("--status", type=str.upper, help="LAUNCHING, PREPARING, TRANSFERRING, VERIFYING, SUCCESS or ERROR")
    ls.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    ls.add_argument("--json", action="store_true", help="print the page as JSON")
    pr = sub.add_parser("prune", help="remove old executions of a manifest store (never a running one)")
    pr.add_argument("--store", required=True, help=store_help)
    pr.add_argument("--store-conn-id", help="AWS connection of an s3:// manifest store")
    pr.add_argument("--keep-last", type=int, metavar="N", help="keep the newest N executions of each task name")
    pr.add_argument("--older-than", metavar="AGE", help="remove executions launched more than AGE ago: 30d, 12h, 2w")
    pr.add_argument("--task-name", help="only executions of this task name")
    pr.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    pr.add_argument("--json", action="store_true", help="print the removed executions as JSON")


def _row(info: dict[str, Any]) -> list[str]:
    airflow = info.get("airflow") or {}
    counters = info.get("counters") or {}
    owner = f"{airflow['dag_id']} / {airflow.get('run_id')}" if airflow.get("dag_id") else "(no DAG)"
    return [info["execution_id"], info["task_name"], info["status"] + (" (dry run)" if info.get("dry_run") else ""),
            (info.get("launched_at") or "")[:19].replace("T", " "), str(counters.get("FilesTransferred", 0)),
            units.byte_size(counters.get("BytesWritten") or 0), str(counters.get("FilesFailed", 0)), owner]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header] + rows)


def main(args: argparse.Namespace) -> int:
    from airflow_datasync import catalog, retention
    from airflow_datasync.engine import DEFAULT_STORE

    store = catalog.StoreRef(args.store or DEFAULT_STORE, args.store_conn_id)
    if args.command == "list":
        page = catalog.list_executions([store], task_name=args.task_name, status=args.status, limit=args.limit)
        if args.json:
            print(json.dumps(page, indent=2, default=str))
            return 0
        header = ["EXECUTION", "TASK", "STATUS", "LAUNCHED (UTC)", "FILES", "BYTES", "FAILED", "DAG / RUN"]
        print(_table(header, [_row(i) for i in page["items"]]) if page["items"] else f"no executions in {store.display}")
        if page["total"] > len(page["items"]):
            print(f"({len(page['items'])} of {page['total']}; --limit shows more)")
        return 0
    if args.keep_last is None and args.older_than is None:
        print("error: prune needs --keep-last N and/or --older-than AGE", file=sys.stderr)
        return 2
    try:
        removed = retention.prune(store, keep_last=args.keep_last, older_than=args.older_than,
                                  task_name=args.task_name, dry_run=args.dry_run)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(removed, indent=2))
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for item in removed:
        print(f"{verb} {item['task_name']}/{item['execution_id']} (launched {item['launched_at'][:19].replace('T', ' ')})")
    count = f"{len(removed)} execution{'s' if len(removed) != 1 else ''}"
    print(f"{count} {'would be removed' if args.dry_run else 'removed'} from {store.display} "
          "(running executions are never removed)")
    return 0
