"""Run LAUNCHING + PREPARING only (no copy) and print prepare.json: the PREPARING benchmark.

    .venv/bin/python -m bench.prepare_only SRC DST --store DIR
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--store", required=True)
    parser.add_argument("--source-conn-id")
    parser.add_argument("--destination-conn-id")
    args = parser.parse_args(argv)
    if args.source.startswith("synthetic://"):
        import bench.synthetic  # noqa: F401 - registers the scheme in this process only
    from airflow_datasync.engine import LocationSpec, launch, prepare

    execution = launch(LocationSpec(args.source, args.source_conn_id),
                       LocationSpec(args.destination, args.destination_conn_id), {},
                       task_name="bench-prepare", store=args.store)
    shards = prepare(execution)
    record = execution.read_json(execution.prepare) or {}
    record["shards_returned"] = len(shards)
    # What Airflow stores in XCom for PREPARING's return value (JSON): the shard list must stay small.
    record["xcom_bytes"] = len(json.dumps(shards))
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
