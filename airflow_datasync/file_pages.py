"""A page of an execution's per-file report for the file browser, read without loading the file whole.

``report.parquet`` once the report exists; before that (a running execution), the manifest's plan with the
shard results so far. Filter columns are read alone, then only the row groups that hold the page's rows,
so a page of a report of millions of rows costs milliseconds. Part of :mod:`airflow_datasync.catalog`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from airflow_datasync.manifest import ExecutionDir

Page = dict[str, Any]  # {"items": [...], "total": int, "offset": int, "limit": int}

#: File browser columns when no report.parquet exists yet (a running execution): the manifest's plan plus
#: the shard results so far.
_LIVE_COLUMNS = ["path", "type", "size", "action", "reason", "shard", "status", "bytes_written", "error", "warning"]

def _failed_mask(table: pa.Table) -> np.ndarray:
    mask = pc.fill_null(pc.equal(table["status"], "FAILED"), False)
    if "error" in table.column_names:
        mask = pc.or_(mask, pc.is_valid(table["error"]))
    return mask.to_numpy(zero_copy_only=False)


def _match_mask(table: pa.Table, n: int, action: str | None, status: str | None, path_prefix: str | None,
                path_contains: str | None) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    if action:
        mask &= pc.fill_null(pc.equal(table["action"], action), False).to_numpy(zero_copy_only=False)
    if status:
        if status.upper() == "FAILED":
            mask &= _failed_mask(table)
        else:
            mask &= pc.fill_null(pc.equal(table["status"], status.upper()), False).to_numpy(zero_copy_only=False)
    if path_prefix:
        mask &= pc.starts_with(table["path"], path_prefix.lstrip("/")).to_numpy(zero_copy_only=False)
    if path_contains:
        mask &= pc.match_substring(table["path"], path_contains).to_numpy(zero_copy_only=False)
    return mask


def _rows_at(pf: pq.ParquetFile, indices: np.ndarray, columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows at ``indices`` (in that order), reading only the row groups that hold them."""
    if len(indices) == 0:
        return []
    bounds = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)])
    groups = np.searchsorted(bounds, indices, side="right") - 1
    by_index: dict[int, dict[str, Any]] = {}
    for group in np.unique(groups):
        wanted = indices[groups == group]
        table = pf.read_row_group(int(group), columns=list(columns), use_threads=False)
        picked = table.take(pa.array(wanted - bounds[group]))
        for index, row in zip(wanted.tolist(), picked.to_pylist()):
            by_index[index] = row
    return [by_index[i] for i in indices.tolist()]


def execution_files(ex: ExecutionDir, *, action: str | None = None, status: str | None = None,
                    path_prefix: str | None = None, path_contains: str | None = None, offset: int = 0,
                    limit: int = 100, failed_first: bool = True) -> Page:
    """A page of the per-file report (report.parquet; before the report exists, the manifest with the
    shard results so far), failed entries first, without reading the whole file: the filter columns are
    read alone, then only the row groups holding the page's rows."""
    offset, limit = max(0, int(offset)), max(0, int(limit))
    if ex.store.exists(ex.report_rows):
        return _report_page(ex, action, status, path_prefix, path_contains, offset, limit, failed_first)
    return _live_page(ex, action, status, path_prefix, path_contains, offset, limit, failed_first)


def _order(mask: np.ndarray, failed: np.ndarray | None) -> np.ndarray:
    if failed is None:
        return np.flatnonzero(mask)
    return np.concatenate([np.flatnonzero(mask & failed), np.flatnonzero(mask & ~failed)])


def _report_page(ex: ExecutionDir, action, status, path_prefix, path_contains, offset, limit, failed_first) -> Page:
    with ex.store.fs.open_input_file(ex.report_rows) as fh:
        pf = pq.ParquetFile(fh)
        columns = pf.schema_arrow.names
        needed = ["status", "error"] if (failed_first or status) else []
        needed += ["action"] if action else []
        needed += ["path"] if (path_prefix or path_contains) else []
        needed = [c for c in dict.fromkeys(needed) if c in columns]
        n = pf.metadata.num_rows
        table = pf.read(columns=needed, use_threads=False) if needed else pa.table({})
        mask = _match_mask(table, n, action, status, path_prefix, path_contains)
        order = _order(mask, _failed_mask(table) if failed_first and "status" in needed else None)
        items = _rows_at(pf, order[offset:offset + limit], columns)
    return {"items": items, "total": int(len(order)), "offset": offset, "limit": limit, "source": "report.parquet"}


def _live_page(ex: ExecutionDir, action, status, path_prefix, path_contains, offset, limit, failed_first) -> Page:
    if not ex.store.exists(ex.manifest):
        return {"items": [], "total": 0, "offset": offset, "limit": limit, "source": None}
    with ex.store.fs.open_input_file(ex.manifest) as fh:
        pf = pq.ParquetFile(fh)
        plan = pf.read(columns=["path", "action", "reason"], use_threads=False)
        results = ex.shard_results().select(["path", "status", "bytes_written", "error", "warning"])
        # Where each manifest row's result is (-1: none yet), by path.
        where = pc.fill_null(pc.index_in(plan["path"], value_set=results["path"]), -1).to_numpy(zero_copy_only=False)
        has = where >= 0
        status_col = np.full(len(where), None, dtype=object)
        error_col = np.full(len(where), None, dtype=object)
        res_status = results["status"].to_numpy(zero_copy_only=False)
        res_error = results["error"].to_numpy(zero_copy_only=False)
        status_col[has] = res_status[where[has]]
        error_col[has] = res_error[where[has]]
        is_error = pc.fill_null(pc.equal(plan["action"], "error"), False).to_numpy(zero_copy_only=False)
        status_col[is_error] = "FAILED"
        error_col[is_error & ~has] = plan["reason"].to_numpy(zero_copy_only=False)[is_error & ~has]
        view = pa.table({"path": plan["path"], "action": plan["action"],
                         "status": pa.array(status_col, pa.string()), "error": pa.array(error_col, pa.string())})
        mask = _match_mask(view, view.num_rows, action, status, path_prefix, path_contains)
        order = _order(mask, _failed_mask(view) if failed_first else None)
        page = order[offset:offset + limit]
        base = _rows_at(pf, page, ["path", "type", "size", "action", "reason", "shard"])
    items = []
    for index, row in zip(page.tolist(), base):
        result = results.slice(int(where[index]), 1).to_pylist()[0] if where[index] >= 0 else {}
        row.update({"status": status_col[index], "bytes_written": result.get("bytes_written"),
                    "error": error_col[index], "warning": result.get("warning")})
        items.append({key: row.get(key) for key in _LIVE_COLUMNS})
    return {"items": items, "total": int(len(order)), "offset": offset, "limit": limit, "source": "manifest.parquet"}
