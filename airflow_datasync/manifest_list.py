"""ManifestConfig: transfer exactly the files a CSV manifest lists, as DataSync does, without listing the source.

DataSync's manifest is a CSV file, UTF-8, no header: one path per line relative to the source location,
and optionally a second column with an object version id. It may live in any location here: DataSync's
``{"S3": {"S3BucketArn": ..., "ManifestObjectPath": ...}}`` form, or the native ``{"Uri": ..., "ConnId": ...}``
form naming it by one of our location URIs (a local path, ``s3://``, ``smb://``).

PREPARING stats each listed path at the source and the same paths (and their parent folders) at the
destination, in parallel, instead of listing either side: a manifest of ten files in a tree of a million
costs twenty-odd requests, not a million-entry listing. The destination is stat'ed rather than listed for
the same reason; nothing else there matters, since a manifest never deletes (PreserveDeletedFiles=REMOVE is
refused with one, as by DataSync). Paths outside the source root, missing files, folders and rows naming an
object version (not supported by the native engine) become ``error`` rows of the execution manifest, one
per entry, with the reason: reported, never copied.
"""

from __future__ import annotations

import csv
import io
import posixpath
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from airflow_datasync.locations import Location, open_location
from airflow_datasync.locations.base import DIR, FILE, LISTING_SCHEMA, StatResult, UnsafePathError, safe_relpath
from airflow_datasync.options import OptionsError, TaskOptions
from airflow_datasync.phases.transfer import run_parallel

#: Larger manifests are refused: the listed paths are held in memory while PREPARING stats them.
MAX_MANIFEST_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class ListedEntry:
    """One row of the manifest: the path as written, its line number and the version column if any."""

    line: int
    path: str
    version: str | None = None


def manifest_uri(config: dict[str, Any], source: dict[str, Any], destination: dict[str, Any]) -> tuple[str, str | None]:
    """Where the manifest lives, as (URI, connection id).

    DataSync's S3 form reads ``s3://<bucket of S3BucketArn>/<ManifestObjectPath>`` with the connection of
    the source location if that is on S3, else of the destination if that is, else the default AWS
    credentials (DataSync's BucketAccessRoleArn is an IAM role for the service; the native engine reads
    with an Airflow connection instead)."""
    where = config["Source"]
    if "Uri" in where:
        return where["Uri"], where.get("ConnId")
    s3 = where["S3"]
    bucket = s3["S3BucketArn"].rsplit(":", 1)[-1].split("/", 1)[0]
    if s3.get("ManifestObjectVersionId"):
        raise OptionsError("ManifestConfig.Source.S3.ManifestObjectVersionId: the native engine reads the current "
                           "version of the manifest object only; remove it, or run the task with the AWS engine")
    conn_id = next((side.get("conn_id") for side in (source, destination)
                    if str(side.get("uri", "")).lower().startswith("s3://")), None)
    return f"s3://{bucket}/{s3['ManifestObjectPath'].lstrip('/')}", conn_id


def read_manifest(uri: str, conn_id: str | None) -> list[ListedEntry]:
    """The rows of the CSV manifest at ``uri`` (empty lines skipped), read through its location."""
    folder, name = uri.rstrip("/").rsplit("/", 1)
    if not folder or folder.endswith(":/"):  # "/list.csv" or "s3://bucket/list.csv" without a folder part
        folder += "/"
    with open_location(folder, conn_id) as location, location.open_read(name) as stream:
        data = stream.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise OptionsError(f"ManifestConfig: the manifest {uri} is larger than {MAX_MANIFEST_BYTES} bytes")
    rows = []
    for number, fields in enumerate(csv.reader(io.StringIO(data.decode("utf-8-sig"))), start=1):
        if not fields or not "".join(fields).strip():
            continue
        version = fields[1].strip() if len(fields) > 1 and fields[1].strip() else None
        rows.append(ListedEntry(number, fields[0], version))
    return rows


def _checked(entry: ListedEntry) -> tuple[str, str | None]:
    """The clean relative path of a row and, for a row that cannot be transferred, why not."""
    path = entry.path.rstrip("/") if entry.path not in ("", "/") else entry.path
    if entry.version is not None:
        return path, (f"manifest line {entry.line}: {entry.path!r} names object version {entry.version!r}; the native "
                      "engine transfers current versions only (run the task with the AWS engine for versions)")
    try:
        safe_relpath(path)
    except UnsafePathError:
        return path or entry.path, (f"manifest line {entry.line}: {entry.path!r} is outside the source location "
                                    "(paths are relative to it, without '..' or a leading '/')")
    if path != entry.path:
        return path, f"manifest line {entry.line}: {entry.path!r} is a folder; a manifest lists files and objects"
    return path, None


def _row(path: str, stat: StatResult | None, error: str | None = None) -> dict[str, Any]:
    if stat is None:
        return {"path": path, "type": FILE, "error": error}
    return {"path": path, "type": stat.type, "size": stat.size, "mtime_ns": stat.mtime_ns, "atime_ns": stat.atime_ns,
            "mode": stat.mode, "uid": stat.uid, "gid": stat.gid, "link_target": stat.link_target,
            "etag": stat.etag, "meta_known": True, "error": error}


def listings(entries: list[ListedEntry], src: Location, dst: Location, options: TaskOptions
             ) -> tuple[pa.Table, pa.Table]:
    """The source and destination listings of what ``entries`` name: the listed files (or an error row each)
    and the folders above them, each stat'ed on both sides in parallel."""
    wanted: dict[str, str | None] = {}
    for entry in entries:
        path, error = _checked(entry)
        wanted.setdefault(path, error)  # a path listed twice is transferred once, as the first row says
    files = [p for p, e in wanted.items() if e is None]
    found = dict(zip(files, run_parallel(src.stat, files, options.workers(src, dst), "manifest-source")))
    rows: dict[str, dict[str, Any]] = {}
    for path, error in wanted.items():
        stat = found.get(path)
        if error is None and stat is None:
            error = f"{path}: listed in the manifest but not found at the source"
        elif error is None and stat.type == DIR:
            error, stat = f"{path}: listed in the manifest but a folder at the source; a manifest lists files", None
        rows[path] = _row(path, None if error else stat, error)
    good = [p for p, r in rows.items() if r["error"] is None]
    parents = sorted({a for p in good for a in _ancestors(p)} - set(rows))
    for path, stat in zip(parents, run_parallel(src.stat, parents, options.workers(src, dst), "manifest-folders")):
        if stat is not None and stat.type == DIR:
            rows[path] = _row(path, stat)
    at_dst = good + [p for p in parents if p in rows]
    dst_rows = [_row(p, s) for p, s in zip(at_dst, run_parallel(dst.stat, at_dst, options.workers(src, dst),
                                                                  "manifest-destination")) if s is not None]
    return _table(list(rows.values())), _table(dst_rows)


def _ancestors(path: str) -> list[str]:
    out = []
    parent = posixpath.dirname(path)
    while parent:
        out.append(parent)
        parent = posixpath.dirname(parent)
    return out


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=LISTING_SCHEMA).sort_by("path")


def listings_for(record: dict[str, Any], src: Location, dst: Location, options: TaskOptions) -> tuple[pa.Table, pa.Table]:
    """Read the manifest an execution's options name and stat what it lists (PREPARING, and VERIFYING with
    POINT_IN_TIME_CONSISTENT, which compares the listed files only)."""
    uri, conn_id = manifest_uri(options.ManifestConfig, record["source"], record["destination"])
    return listings(read_manifest(uri, conn_id), src, dst, options)


__all__ = ["ListedEntry", "listings", "listings_for", "manifest_uri", "read_manifest"]
