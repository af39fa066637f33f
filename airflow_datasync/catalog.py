"""The catalog of executions in one or more manifest stores: what the UI, its JSON API and the CLI list.

Everything here is read from the files the phases write (see ``ExecutionDir``); nothing is kept in a
database, so an execution is visible as soon as its ``launch.json`` exists and is gone once its directory
is pruned. No Airflow import: the CLI uses this module outside Airflow; the plugin adds who may see what.

Status of an execution, as the AWS DataSync console names it:

- ``LAUNCHING``: its directory exists, ``launch.json`` not yet;
- ``PREPARING``: ``launch.json`` but no ``prepare.json`` (or a dry run whose report is not yet written);
- ``TRANSFERRING``: ``prepare.json`` but no ``finalize.json`` (shards copying, then finalize);
- ``VERIFYING``: ``finalize.json`` but no ``report.json`` (VERIFYING, then the report);
- ``SUCCESS`` / ``ERROR``: the ``Status`` of ``report.json``.

An execution without ``report.json`` is *running* while any of its files changed within
:data:`RUNNING_WINDOW_SECONDS`; one older than that was abandoned (its tasks died unreported).
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from airflow_datasync.file_pages import Page, execution_files
from airflow_datasync.manifest import ExecutionDir, Store, check_name
from airflow_datasync.uri import redact_uri

#: An execution with no report.json whose newest file is younger than this is running (prune keeps it).
RUNNING_WINDOW_SECONDS = 3600

#: The DataSync counters of report.json, in the order pages show them.
COUNTER_KEYS = ["FilesPrepared", "FilesTransferred", "BytesWritten", "BytesTransferred", "FilesSkipped", "FilesDeleted",
                "FilesVerified", "FilesFailed", "FilesResumed", "EstimatedFilesToTransfer", "EstimatedBytesToTransfer",
                "EstimatedFilesToDelete"]

#: The phases of the timeline, in order; the last entry is the final SUCCESS or ERROR.
PHASES = ["LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING"]
FINAL_STATUSES = ("SUCCESS", "ERROR")
STATUSES = ["LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING", "SUCCESS", "ERROR"]

#: Parquet files a user may download from the UI (never the JSON records: they name connections).
DOWNLOADABLE = ("report.parquet", "manifest.parquet", "verify.parquet")

_ID_TIME = re.compile(r"^exec-(\d{8}T\d{12})-")

ExecutionInfo = dict[str, Any]


@dataclass(frozen=True)
class StoreRef:
    """A manifest store to read: a directory or an ``s3://`` prefix, and for S3 the AWS connection id."""

    uri: str
    conn_id: str | None = None

    @classmethod
    def parse(cls, text: str) -> StoreRef:
        """``uri`` or ``uri::conn_id`` (the form of ``[datasync] manifest_stores``)."""
        uri, _, conn_id = text.strip().partition("::")
        return cls(uri.strip(), conn_id.strip() or None)

    @property
    def display(self) -> str:
        return redact_uri(self.uri)


@dataclass
class Execution:
    """One execution found in a store: its files and its list row (:func:`execution_info`)."""

    dir: ExecutionDir
    store: StoreRef
    info: ExecutionInfo = field(default_factory=dict)

    @property
    def dag_id(self) -> str | None:
        return (self.info.get("airflow") or {}).get("dag_id")


def store_refs(stores: Iterable[StoreRef | str] | StoreRef | str) -> list[StoreRef]:
    if isinstance(stores, (StoreRef, str)):
        stores = [stores]
    return [s if isinstance(s, StoreRef) else StoreRef.parse(s) for s in stores]


def launch_time(execution_id: str) -> dt.datetime | None:
    """The UTC launch time written in an execution id (``exec-<YYYYmmddTHHMMSSffffff>-<random>``)."""
    match = _ID_TIME.match(execution_id)
    if not match:
        return None
    return dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=dt.UTC)


def as_time(value: dt.datetime | str | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _execution_uri(store: StoreRef, task_name: str, execution_id: str) -> str:
    if store.uri.startswith("s3://"):
        return f"{store.uri.rstrip('/')}/{task_name}/{execution_id}"
    return os.path.join(Store.path_of(store.uri), task_name, execution_id)


def _candidates(store: StoreRef, task_name: str | None) -> Iterator[tuple[str, str]]:
    """(task name, execution id) of every execution directory in a store, read from two directory levels."""
    if task_name:
        try:
            check_name("task name", task_name)  # one path component: a filter never reads outside the store
        except ValueError:
            return
    fs_store = Store.for_uri(store.uri, store.conn_id)
    root = Store.path_of(store.uri)
    tasks = [task_name] if task_name else fs_store.listdir(root)
    for task in tasks:
        for execution_id in fs_store.listdir(f"{root}/{task}"):
            if execution_id.startswith("exec-") and ".tmp-" not in execution_id:
                yield task, execution_id


# -- reading one execution -----------------------------------------------------------------------------
class _Files:
    """The JSON records of one execution, each read once."""

    def __init__(self, ex: ExecutionDir) -> None:
        self.ex = ex
        self.launch = ex.read_json(ex.launch)
        self.report = ex.read_json(ex.report)
        self._shards: dict[int, dict[str, Any]] | None = None
        self._progress: dict[int, dict[str, Any]] | None = None

    # The other records are read when first asked for, absent ones (None) included.
    @cached_property
    def prepare(self) -> dict[str, Any] | None:
        return self.ex.read_json(self.ex.prepare)

    @cached_property
    def finalize(self) -> dict[str, Any] | None:
        return self.ex.read_json(self.ex.finalize)

    @cached_property
    def verify(self) -> dict[str, Any] | None:
        return self.ex.read_json(self.ex.verify)

    @property
    def shards(self) -> dict[int, dict[str, Any]]:
        if self._shards is None:
            self._shards = {int(s["shard"]): s for s in self.ex.shard_summaries() if "shard" in s}
        return self._shards

    @property
    def progress(self) -> dict[int, dict[str, Any]]:
        if self._progress is None:
            self._progress = {}
            folder = self.ex.file("progress")
            for name in self.ex.store.listdir(folder):
                if name.startswith("shard-") and name.endswith(".json"):
                    data = self.ex.read_json(f"{folder}/{name}")
                    if data is not None and "shard" in data:
                        self._progress[int(data["shard"])] = data
        return self._progress

    @property
    def options(self) -> dict[str, Any]:
        return (self.launch or {}).get("options_dict") or {}

    @property
    def dry_run(self) -> bool:
        if self.report is not None and "DryRun" in self.report:
            return bool(self.report["DryRun"])
        opts = self.options
        return bool(opts.get("dry_run", opts.get("DryRun", False)))


def _status_and_phase(files: _Files) -> tuple[str, str]:
    """(status, phase): phase is the phase running now, or for a finished execution the last one reached."""
    if files.report is not None:
        status = files.report.get("Status") or "ERROR"
        if files.verify is not None:
            phase = "VERIFYING"
        elif files.finalize is not None or files.shards:
            phase = "TRANSFERRING"
        elif files.prepare is not None or files.launch is not None:
            phase = "PREPARING"
        else:
            phase = "LAUNCHING"
        return status, phase
    if files.launch is None:
        return "LAUNCHING", "LAUNCHING"
    if files.prepare is None or files.dry_run:
        return "PREPARING", "PREPARING"
    if files.finalize is None:
        return "TRANSFERRING", "TRANSFERRING"
    return "VERIFYING", "VERIFYING"


def newest_change(ex: ExecutionDir) -> dt.datetime | None:
    """When any file of the execution last changed (one recursive listing)."""
    infos = ex.store.fs.get_file_info(pafs.FileSelector(ex.root, recursive=True, allow_not_found=True))
    times = [i.mtime for i in infos if i.mtime is not None]
    if not times:
        return None
    newest = max(times)
    return newest if newest.tzinfo else newest.replace(tzinfo=dt.UTC)


def is_running(ex: ExecutionDir, *, now: dt.datetime | None = None, report_exists: bool | None = None) -> bool:
    """No report.json and some file changed within :data:`RUNNING_WINDOW_SECONDS` (prune keeps it)."""
    if report_exists is None:
        report_exists = ex.store.exists(ex.report)
    if report_exists:
        return False
    now = now or dt.datetime.now(dt.UTC)
    newest = newest_change(ex)
    return newest is not None and (now - newest).total_seconds() < RUNNING_WINDOW_SECONDS


def _ms(a: str | None, b: str | None) -> int | None:
    if not a or not b:
        return None
    return int((as_time(b) - as_time(a)).total_seconds() * 1000)


def _live_counters(files: _Files) -> dict[str, Any]:
    prepare = files.prepare or {}
    done_files = done_bytes = failed = 0
    for summary in files.shards.values():
        done_files += int(summary.get("succeeded") or 0)
        done_bytes += int(summary.get("bytes_total") or 0)
        failed += int(summary.get("failed") or 0)
    for number, progress in files.progress.items():
        if number not in files.shards:
            done_files += int(progress.get("files_done") or 0)
            done_bytes += int(progress.get("bytes_done") or 0)
    counters = {key: 0 for key in COUNTER_KEYS}
    counters.update({
        "FilesPrepared": prepare.get("FilesPrepared", 0),
        "EstimatedFilesToTransfer": prepare.get("EstimatedFilesToTransfer", 0),
        "EstimatedBytesToTransfer": prepare.get("EstimatedBytesToTransfer", 0),
        "EstimatedFilesToDelete": prepare.get("EstimatedFilesToDelete", 0),
        "FilesTransferred": done_files, "BytesWritten": done_bytes, "BytesTransferred": done_bytes,
        "FilesFailed": failed,
        "FilesDeleted": int((files.finalize or {}).get("deleted") or 0),
        "FilesVerified": int((files.verify or {}).get("verified") or 0),
    })
    return counters


def _timeline(files: _Files, status: str) -> list[dict[str, Any]]:
    """One entry per phase (and the final status): started_at, ended_at, duration_ms, state."""
    final = files.report is not None
    launch, prepare, finalize, verify, report = (files.launch or {}), files.prepare, files.finalize, files.verify, files.report
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    never = "SKIPPED" if final else "PENDING"

    def entry(phase: str, start: str | None, end: str | None, state: str) -> dict[str, Any]:
        running_end = now if state == "RUNNING" else end
        return {"phase": phase, "started_at": start, "ended_at": end if state != "RUNNING" else None,
                "duration_ms": _ms(start, running_end) if start else None, "state": state}

    launched = launch.get("launched_at") or (report or {}).get("StartTime")
    out = [entry("LAUNCHING", launched, (prepare or {}).get("started_at") or launched,
                 "SUCCESS" if files.launch else ("FAILED" if final else "RUNNING"))]
    if prepare:
        out.append(entry("PREPARING", prepare.get("started_at"), prepare.get("ended_at"), "SUCCESS"))
    elif files.launch and not final:
        out.append(entry("PREPARING", launched, None, "RUNNING"))
    else:
        out.append(entry("PREPARING", None, None, "FAILED" if final and files.launch else never))

    shard_starts = [s.get("started_at") for s in files.shards.values()] + [
        p.get("started_at") for p in files.progress.values()]
    shard_starts = [s for s in shard_starts if s]
    shard_ends = [s.get("ended_at") for s in files.shards.values() if s.get("ended_at")]
    if finalize:
        shard_ends.append(finalize.get("ended_at"))
    expected = int((prepare or {}).get("shard_count") or 0)
    shards_failed = any(int(s.get("failed") or 0) for s in files.shards.values()) or any(
        p.get("state") == "FAILED" for n, p in files.progress.items() if n not in files.shards)
    if files.dry_run or not prepare:
        out.append(entry("TRANSFERRING", None, None, "SKIPPED" if files.dry_run and prepare else never))
    else:
        start = min(shard_starts) if shard_starts else (prepare.get("ended_at") if finalize or final else None)
        if finalize and not shards_failed and len(files.shards) >= expected:
            state = "SUCCESS"
        elif final:  # a shard failed or never finished, or finalize did not run
            state = "FAILED"
        else:
            state = "RUNNING"
            start = start or prepare.get("ended_at")
        out.append(entry("TRANSFERRING", start, max(shard_ends) if shard_ends else None, state))
    if verify:
        out.append(entry("VERIFYING", verify.get("started_at"), verify.get("ended_at"),
                         "FAILED" if int(verify.get("failed") or 0) else "SUCCESS"))
    elif finalize and not final:
        out.append(entry("VERIFYING", finalize.get("ended_at"), None, "RUNNING"))
    else:
        skipped = final and (files.dry_run or files.options.get("VerifyMode") == "NONE")
        out.append(entry("VERIFYING", None, None, "SKIPPED" if skipped else never))
    if final:
        end = report.get("EndTime")
        out.append({"phase": status, "started_at": end, "ended_at": end, "duration_ms": 0, "state": status})
    return out


def _durations(files: _Files, timeline: list[dict[str, Any]]) -> dict[str, int | None]:
    report = files.report
    if report is not None:
        return {"PREPARING": report.get("PrepareDuration"), "TRANSFERRING": report.get("TransferDuration"),
                "VERIFYING": report.get("VerifyDuration"), "TOTAL": report.get("TotalDuration")}
    by_phase = {t["phase"]: t["duration_ms"] for t in timeline}
    launched = (files.launch or {}).get("launched_at")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    return {"PREPARING": by_phase.get("PREPARING"), "TRANSFERRING": by_phase.get("TRANSFERRING"),
            "VERIFYING": by_phase.get("VERIFYING"), "TOTAL": _ms(launched, now) if launched else None}


def _info(ex: ExecutionDir, store: StoreRef, files: _Files) -> ExecutionInfo:
    status, phase = _status_and_phase(files)
    launch, report = files.launch or {}, files.report
    timeline = _timeline(files, status)
    counters = {key: report.get(key, 0) for key in COUNTER_KEYS} if report is not None else _live_counters(files)
    launched = launch.get("launched_at") or (report or {}).get("StartTime")
    if launched is None and launch_time(ex.execution_id):
        launched = launch_time(ex.execution_id).isoformat(timespec="milliseconds")
    return {
        "execution_id": ex.execution_id,
        "task_name": ex.task_name,
        "store": store.display,
        "status": status,
        "phase": phase,
        "final": report is not None,
        "dry_run": files.dry_run,
        "airflow": launch.get("airflow"),
        "source": redact_uri((launch.get("source") or {}).get("uri") or (report or {}).get("SourceLocation") or ""),
        "destination": redact_uri((launch.get("destination") or {}).get("uri")
                                  or (report or {}).get("DestinationLocation") or ""),
        "launched_at": launched,
        "ended_at": (report or {}).get("EndTime"),
        "counters": counters,
        "phase_durations_ms": _durations(files, timeline),
        "error_code": (report or {}).get("ErrorCode"),
    }


#: List rows of finished executions keyed by execution URI, so that a page of a store with many executions
#: reads only the new and the running ones. A cleared and re-run report task rewrites report.json (an ERROR
#: may become a SUCCESS), so an entry holds while report.json keeps its modification time (one stat, local
#: stores) or, for object stores where that check costs a request, for :data:`_S3_INFO_SECONDS`.
_FINAL_INFO: OrderedDict[tuple[str, str | None], tuple[ExecutionInfo, Any, float]] = OrderedDict()
_FINAL_INFO_MAX = 4096
_S3_INFO_SECONDS = 30.0
_cache_lock = threading.Lock()


def _report_stamp(ex: ExecutionDir) -> Any:
    if not ex.store.local:
        return None
    try:
        stat = os.stat(ex.report)
    except FileNotFoundError:
        return "missing"
    return (stat.st_mtime_ns, stat.st_size)


def execution_info(ex: ExecutionDir, store: StoreRef | None = None) -> ExecutionInfo:
    """The list row of one execution (see the module docstring for ``status``)."""
    key = (ex.uri, ex.conn_id)
    with _cache_lock:
        cached = _FINAL_INFO.get(key)
    if cached is not None:
        info, stamp, at = cached
        if (stamp is not None and stamp == _report_stamp(ex)) or (
                stamp is None and time.monotonic() - at < _S3_INFO_SECONDS):
            return dict(info)
    store = store or StoreRef(posixpath.dirname(posixpath.dirname(ex.uri)), ex.conn_id)
    stamp = _report_stamp(ex)
    info = _info(ex, store, _Files(ex))
    if info["final"]:
        with _cache_lock:
            _FINAL_INFO[key] = (info, stamp, time.monotonic())
            while len(_FINAL_INFO) > _FINAL_INFO_MAX:
                _FINAL_INFO.popitem(last=False)
    return dict(info)


def forget(ex: ExecutionDir) -> None:
    with _cache_lock:
        _FINAL_INFO.pop((ex.uri, ex.conn_id), None)


# -- listing -------------------------------------------------------------------------------------------
def iter_executions(stores: Iterable[StoreRef | str] | StoreRef | str, *, task_name: str | None = None,
                    since: dt.datetime | str | None = None, until: dt.datetime | str | None = None
                    ) -> Iterator[Execution]:
    """Every execution of the stores, newest first, without reading their files yet (``info`` empty).

    ``since``/``until`` are compared with the launch time in the execution id, so they cost no read."""
    since, until = as_time(since), as_time(until)
    found: list[tuple[str, str, StoreRef]] = []
    for store in store_refs(stores):
        for task, execution_id in _candidates(store, task_name):
            launched = launch_time(execution_id)
            if launched is not None and ((since and launched < since) or (until and launched > until)):
                continue
            found.append((execution_id, task, store))
    found.sort(key=lambda item: item[0], reverse=True)
    for execution_id, task, store in found:
        yield Execution(ExecutionDir(_execution_uri(store, task, execution_id), store.conn_id), store)


def list_executions(stores: Iterable[StoreRef | str] | StoreRef | str, *, task_name: str | None = None,
                    status: str | None = None, dag_id: str | None = None, run_id: str | None = None,
                    task_id: str | None = None, group_id: str | None = None, since: dt.datetime | str | None = None,
                    until: dt.datetime | str | None = None, dag_ids: Iterable[str] | None = None,
                    include_unowned: bool = True, offset: int = 0, limit: int = 50) -> Page:
    """A page of execution list rows, newest first.

    ``dag_ids`` restricts the page to executions launched by those DAGs (``None``: no restriction);
    ``include_unowned`` says whether executions no DAG launched (CLI runs) are listed. ``task_id`` matches
    the launching task or any task of its group (``group_id``)."""
    allowed = None if dag_ids is None else set(dag_ids)
    items: list[ExecutionInfo] = []
    total = 0
    for execution in iter_executions(stores, task_name=task_name, since=since, until=until):
        info = execution_info(execution.dir, execution.store)
        airflow = info.get("airflow") or {}
        owner = airflow.get("dag_id")
        if owner is None and not include_unowned:
            continue
        if owner is not None and allowed is not None and owner not in allowed:
            continue
        if status and info["status"] != status.upper():
            continue
        if dag_id and owner != dag_id:
            continue
        if run_id and airflow.get("run_id") != run_id:
            continue
        if group_id is not None and airflow.get("group_id") != group_id:
            continue
        if task_id and not _task_matches(airflow, task_id):
            continue
        if offset <= total < offset + limit:
            items.append(info)
        total += 1
    return {"items": items, "total": total, "offset": offset, "limit": limit}


def _task_matches(airflow: dict[str, Any], task_id: str) -> bool:
    """The launching task itself, or any task inside its task group (``<group_id>.<task>``)."""
    group = airflow.get("group_id")
    return airflow.get("task_id") == task_id or bool(group and task_id.startswith(f"{group}."))


def find_execution(stores: Iterable[StoreRef | str] | StoreRef | str, execution_id: str) -> Execution | None:
    """The execution of that id in any store (any task name), or None. Refuses ids that are not one path
    component, so that a URL can never name a file outside a store."""
    try:
        check_name("execution id", execution_id)
    except ValueError:
        return None
    for store in store_refs(stores):
        fs_store = Store.for_uri(store.uri, store.conn_id)
        root = Store.path_of(store.uri)
        for task in fs_store.listdir(root):
            if fs_store.exists(f"{root}/{task}/{execution_id}"):
                ex = ExecutionDir(_execution_uri(store, task, execution_id), store.conn_id)
                return Execution(ex, store, execution_info(ex, store))
    return None


# -- one execution in detail ---------------------------------------------------------------------------
#: Per-shard (files, bytes) of a manifest, keyed by its URI: a manifest never changes once written.
_SHARD_SIZES: OrderedDict[str, dict[int, tuple[int, int]]] = OrderedDict()


def shard_sizes(ex: ExecutionDir) -> dict[int, tuple[int, int]]:
    """{shard: (entries, bytes to copy)} from manifest.parquet's shard/size/action columns only."""
    with _cache_lock:
        cached = _SHARD_SIZES.get(ex.uri)
    if cached is not None:
        return cached
    if not ex.store.exists(ex.manifest):
        return {}
    table = pq.read_table(ex.manifest, columns=["shard", "size", "action"], filesystem=ex.store.fs)
    work = table.filter(pc.greater_equal(table["shard"], 0))
    sizes = pc.if_else(pc.equal(work["action"], "copy"), pc.fill_null(work["size"], 0), 0)
    grouped = pa.table({"shard": work["shard"], "size": sizes}).group_by("shard").aggregate(
        [("size", "sum"), ("size", "count")])
    result = {int(s): (int(c), int(b)) for s, c, b in zip(grouped["shard"].to_pylist(),
                                                           grouped["size_count"].to_pylist(),
                                                           grouped["size_sum"].to_pylist())}
    with _cache_lock:
        _SHARD_SIZES[ex.uri] = result
        while len(_SHARD_SIZES) > 256:
            _SHARD_SIZES.popitem(last=False)
    return result


def _shard_rows(files: _Files) -> list[dict[str, Any]]:
    sizes = shard_sizes(files.ex)
    expected = int((files.prepare or {}).get("shard_count") or 0)
    numbers = sorted(set(sizes) | set(files.shards) | set(files.progress) | set(range(expected)))
    rows = []
    for number in numbers:
        summary, progress = files.shards.get(number), files.progress.get(number)
        entries, nbytes = sizes.get(number, (0, 0))
        if summary is not None:
            state = "FAILED" if int(summary.get("failed") or 0) else "SUCCESS"
            duration = summary.get("duration_ms")
            try_number = summary.get("try_number", (progress or {}).get("try_number"))
        elif progress is not None:
            state = progress.get("state") or "RUNNING"
            duration = _ms(progress.get("started_at"), progress.get("updated_at"))
            try_number = progress.get("try_number")
        else:
            state, duration, try_number = "PENDING", None, None
        rows.append({"shard": number, "files": entries, "bytes": nbytes, "state": state, "try_number": try_number,
                     "duration_ms": duration, "started_at": (summary or progress or {}).get("started_at"),
                     "ended_at": (summary or {}).get("ended_at"), "hostname": (progress or {}).get("hostname"),
                     "progress": progress})
    return rows


def _overall_progress(shards: list[dict[str, Any]], status: str) -> dict[str, Any] | None:
    """Files/bytes done of total over all shards, the summed rate of running shards and an ETA."""
    if status != "TRANSFERRING" or not shards:
        return None
    files_total = sum(s["files"] for s in shards)
    bytes_total = sum(s["bytes"] for s in shards)
    files_done = bytes_done = 0
    bps = fps = 0.0
    for s in shards:
        p = s["progress"] or {}
        if s["state"] in ("SUCCESS", "FAILED") and not p:
            files_done += s["files"]
            bytes_done += s["bytes"]
        else:
            files_done += int(p.get("files_done") or 0)
            bytes_done += int(p.get("bytes_done") or 0)
        if s["state"] == "RUNNING":
            bps += float(p.get("bytes_per_second") or 0)
            fps += float(p.get("files_per_second") or 0)
    if bps > 0 and bytes_total > bytes_done:
        eta = (bytes_total - bytes_done) / bps
    elif fps > 0 and files_total > files_done:
        eta = (files_total - files_done) / fps
    else:
        eta = None
    return {"files_done": files_done, "files_total": files_total, "bytes_done": bytes_done,
            "bytes_total": bytes_total, "bytes_per_second": bps, "files_per_second": fps, "eta_seconds": eta,
            "shards_running": sum(1 for s in shards if s["state"] == "RUNNING"),
            "shards_done": sum(1 for s in shards if s["state"] in ("SUCCESS", "FAILED"))}


def execution_detail(ex: ExecutionDir, store: StoreRef | None = None) -> dict[str, Any]:
    """The list row plus the phase timeline, shards, live progress, warnings, errors and report files."""
    store = store or StoreRef(posixpath.dirname(posixpath.dirname(ex.uri)), ex.conn_id)
    files = _Files(ex)
    info = _info(ex, store, files)
    shards = _shard_rows(files)
    report = files.report
    if report is not None:
        warnings = list(report.get("Warnings") or [])
    else:
        warnings = list((files.prepare or {}).get("warnings") or []) + list((files.finalize or {}).get("warnings") or [])
    report_files = []
    for name in DOWNLOADABLE:
        path = ex.file(name)
        meta = ex.store.fs.get_file_info(path)
        if meta.type == pafs.FileType.File:
            report_files.append({"name": name, "size": meta.size})
    return {
        **info,
        "timeline": _timeline(files, info["status"]),
        "shards": shards,
        "progress": _overall_progress(shards, info["status"]),
        "warnings": warnings,
        "error_code": (report or {}).get("ErrorCode"),
        "error_detail": (report or {}).get("ErrorDetail"),
        "verify_mode": (report or {}).get("VerifyMode") or files.options.get("VerifyMode"),
        "shard_count": int((files.prepare or {}).get("shard_count") or 0),
        "report_files": report_files,
        "running": report is None and is_running(ex, report_exists=False),
    }


def download_path(ex: ExecutionDir, name: str) -> str | None:
    """The store path of a downloadable Parquet file of the execution, or None (unknown name or absent)."""
    if name not in DOWNLOADABLE:
        return None
    path = ex.file(name)
    return path if ex.store.exists(path) else None


__all__ = ["COUNTER_KEYS", "DOWNLOADABLE", "Execution", "ExecutionInfo", "Page", "RUNNING_WINDOW_SECONDS", "STATUSES",
           "StoreRef", "download_path", "execution_detail", "execution_files", "execution_info", "find_execution",
           "is_running", "iter_executions", "launch_time", "list_executions", "shard_sizes"]
