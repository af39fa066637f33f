"""POINT_IN_TIME_CONSISTENT's comparison of the two listings, in Arrow.

Presence, type, size, mtime and symlink targets are compared for every entry at once; Python runs per
entry only to word the error of an entry that differs and to compare the content of the files that agree
so far. For that comparison, a file this execution just copied brings its source checksums from the
transfer results, as long as the source listing still shows the size and mtime the copy read (the same
test TransferMode=CHANGED trusts); every other file is read (or its store's checksum asked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_datasync.locations.base import FILE, SYMLINK

#: Stands for a null link target or time in the comparisons: no link target holds a NUL, no time is -1.
_NO_TARGET, _NO_VALUE = "\x00", -1
#: The columns a content check reads (see :func:`split_by_listings`).
CONTENT_COLUMNS = ("path", "size", "etag", "dst_etag", "copied_md5", "copied_checksum")


def _row(path: str, status: str, error: str | None = None) -> dict[str, Any]:
    return {"path": path, "verify_status": status, "checksum_algo": None, "src_checksum": None, "dst_checksum": None,
            "verify_error": error}


def _filled(column: pa.ChunkedArray, value: Any) -> pa.ChunkedArray:
    return pc.fill_null(column, value)


def split_by_listings(joined: pa.Table, results: pa.Table, *, compare_mtime: bool
                      ) -> tuple[list[dict[str, Any]], pa.Table, int]:
    """``joined``: the source listing with the destination's ``dst_type``, ``dst_size``, ``dst_mtime_ns``,
    ``dst_link_target`` and ``dst_etag`` (a left join by path); ``results``: this execution's transfer
    results. Returns the verify rows the listings decide (every difference, and the entries that have no
    content to compare), the files whose content is still to compare (:data:`CONTENT_COLUMNS`) and the
    bytes of the entries decided."""
    kind, dst_kind = joined["type"], joined["dst_type"]
    present = pc.is_valid(dst_kind)
    same_kind = pc.and_(present, pc.equal(kind, _filled(dst_kind, "")))
    is_link = pc.and_(same_kind, pc.equal(kind, SYMLINK))
    link_differs = pc.and_(is_link, pc.not_equal(_filled(joined["link_target"], _NO_TARGET),
                                                 _filled(joined["dst_link_target"], _NO_TARGET)))
    is_file = pc.and_(same_kind, pc.equal(kind, FILE))
    size_differs = pc.and_(is_file, pc.not_equal(_filled(joined["size"], _NO_VALUE), _filled(joined["dst_size"], _NO_VALUE)))
    mtime_differs = pc.and_(pc.and_(is_file, pc.invert(size_differs)),
                            pc.not_equal(_filled(joined["mtime_ns"], _NO_VALUE), _filled(joined["dst_mtime_ns"], _NO_VALUE)))
    if not compare_mtime:
        mtime_differs = pc.and_(mtime_differs, pa.scalar(False))
    to_compare = pc.and_(pc.and_(is_file, pc.invert(size_differs)), pc.invert(mtime_differs))
    agrees = pc.and_(same_kind, pc.and_(pc.invert(is_file), pc.invert(link_differs)))

    rows = [_row(p, "VERIFIED") for p in joined.filter(agrees)["path"].to_pylist()]
    for r in joined.filter(pc.invert(present)).select(["path"]).to_pylist():
        rows.append(_row(r["path"], "MISSING", f"{r['path']}: in the source but missing at the destination"))
    for r in joined.filter(pc.and_(present, pc.invert(same_kind))).select(["path", "type", "dst_type"]).to_pylist():
        rows.append(_row(r["path"], "MISMATCH", f"{r['path']}: {r['type']} at the source, {r['dst_type']} at the destination"))
    for r in joined.filter(link_differs).select(["path", "link_target", "dst_link_target"]).to_pylist():
        rows.append(_row(r["path"], "MISMATCH",
                         f"{r['path']}: symlink target {r['link_target']!r} ≠ {r['dst_link_target']!r}"))
    for r in joined.filter(size_differs).select(["path", "size", "dst_size"]).to_pylist():
        rows.append(_row(r["path"], "MISMATCH",
                         f"{r['path']}: size {r['size']} at the source, {r['dst_size']} at the destination"))
    for r in joined.filter(mtime_differs).select(["path"]).to_pylist():
        rows.append(_row(r["path"], "MISMATCH", f"{r['path']}: mtime differs between source and destination"))
    decided_bytes = pc.sum(joined.filter(pc.and_(is_file, pc.invert(to_compare)))["size"]).as_py() or 0
    return rows, _with_copied_checksums(joined.filter(to_compare), results), decided_bytes


def _with_copied_checksums(files: pa.Table, results: pa.Table) -> pa.Table:
    """``files`` with ``copied_md5``/``copied_checksum``: the source checksums this execution's copy took,
    where the listing still shows the size and mtime that copy read; null elsewhere."""
    copied = results.filter(pc.and_(pc.equal(results["status"], "SUCCESS"), pc.equal(results["action"], "copy")))
    copied = copied.select(["path", "bytes_written", "src_mtime_ns", "src_md5", "src_checksum"]).rename_columns(
        ["path", "copied_size", "copied_mtime_ns", "copied_md5", "copied_checksum"])
    files = files.select(["path", "size", "mtime_ns", "etag", "dst_etag"])
    if copied.num_rows:
        files = files.join(copied, keys="path", join_type="left outer")
        unchanged = pc.and_(pc.equal(_filled(files["size"], _NO_VALUE), _filled(files["copied_size"], -2)),
                            pc.equal(_filled(files["mtime_ns"], _NO_VALUE), _filled(files["copied_mtime_ns"], -2)))
        unchanged = _filled(unchanged, False)
        none = pa.nulls(files.num_rows, pa.string())
        files = files.set_column(files.schema.get_field_index("copied_md5"), "copied_md5",
                                 pc.if_else(unchanged, files["copied_md5"], none))
        files = files.set_column(files.schema.get_field_index("copied_checksum"), "copied_checksum",
                                 pc.if_else(unchanged, files["copied_checksum"], none))
    else:
        files = files.append_column("copied_md5", pa.nulls(files.num_rows, pa.string()))
        files = files.append_column("copied_checksum", pa.nulls(files.num_rows, pa.string()))
    return files.select(list(CONTENT_COLUMNS))


def etag_md5s(etags: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """:func:`checksum.md5_of_etag` of a whole column: the MD5 each ETag stands for, null where it stands
    for none (multipart, SSE-KMS, no ETag)."""
    value = pc.utf8_trim(etags, '"')
    return pc.if_else(pc.match_substring_regex(value, "^[0-9a-f]{32}$"), value, pa.scalar(None, pa.string()))


def by_etag_md5s(files: pa.Table, read_md5s: Callable[[list[str], list[int | None]], list[str | None]] | None
                 ) -> tuple[pa.Table, pa.Table]:
    """The content check of ``files`` (:data:`CONTENT_COLUMNS`) whose destination ETag is the server's MD5
    of its bytes, in Arrow: compared with the source's MD5 (its own listed ETag on an object store, the one
    this execution's copy took, else what ``read_md5s`` reads for the paths (and sizes) it is given; None: a store
    that keeps a checksum of its own is compared by that instead of a whole read). Returns the
    verified files (``path``, ``size``, ``src_checksum``, ``dst_checksum``) and every other file, with ``src_md5`` where one was
    found or read (None from ``read_md5s``: the read failed, and the per-file check words why)."""
    dst_md5 = etag_md5s(files["dst_etag"].combine_chunks())
    src_md5 = pc.coalesce(etag_md5s(files["etag"].combine_chunks()), files["copied_md5"].combine_chunks())
    if read_md5s is not None:
        to_read = pc.and_(pc.is_valid(dst_md5), pc.is_null(src_md5))
        if pc.any(to_read).as_py():
            read = read_md5s(files["path"].filter(to_read).to_pylist(), files["size"].filter(to_read).to_pylist())
            src_md5 = pc.replace_with_mask(src_md5, to_read, pa.array(read, pa.string()))
    same = pc.fill_null(pc.equal(src_md5, dst_md5), False)
    verified = pa.table({"path": files["path"], "size": files["size"], "src_checksum": src_md5,
                         "dst_checksum": dst_md5}).filter(same)
    rest = files.append_column("src_md5", src_md5).filter(pc.invert(same))
    return verified, rest
