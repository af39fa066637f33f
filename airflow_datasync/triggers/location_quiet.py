"""Waiting for a location to settle: a snapshot of its listing, the rule that says "quiet", and the trigger.

A location (any backend: local path, ``s3://``, ``smb://``) is *quiet* once two listings taken at least
``quiet_period`` seconds apart are identical: the same entries with the same sizes and modification
times (ETags on object stores), and, when a ``marker`` such as ``_SUCCESS`` is asked for, that marker
exists. A location that does not exist yet, or holds nothing, is not ready (keep waiting), never an error:
a producer may not have created today's folder. The marker itself is left out of the fingerprint, so a
producer that writes it last does not restart the quiet period.

Listing is blocking (smbprotocol, boto3, the file system): the trigger runs it through
``asyncio.to_thread``; the sensor runs it on the worker for its first poke.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_datasync.locations import Location, LocationError, open_location
from airflow_datasync.locations.base import FILE
from airflow_datasync.uri import redact_uri

log = logging.getLogger("airflow_datasync")


def watched_uri(uri: str, prefix: str | None = None) -> str:
    """The URI to list: ``uri``, or its sub-folder/key prefix ``prefix``. Refuses credentials in the URI
    (they would travel in the trigger's kwargs): they belong in the Airflow connection."""
    if redact_uri(uri) != uri:
        raise LocationError(f"{redact_uri(uri)}: put credentials in an Airflow connection (conn_id), not in the "
                            "URI; a sensor's URI is stored in the triggers table and shown in the UI.")
    if not prefix:
        return uri
    return f"{uri.rstrip('/')}/{prefix.strip('/')}"


@dataclass(frozen=True)
class LocationSnapshot:
    """What one listing saw. Two snapshots are the same listing when their ``fingerprint`` matches."""

    exists: bool
    entries: int = 0
    files: int = 0
    total_bytes: int = 0
    newest_mtime_ns: int | None = None
    fingerprint: str = ""
    marker_present: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LocationSnapshot | None:
        return None if not data else cls(**data)

    def describe(self) -> str:
        if not self.exists:
            return "does not exist yet"
        return (f"{self.files} files, {self.total_bytes:,} bytes, newest mtime_ns {self.newest_mtime_ns}"
                f"{', marker present' if self.marker_present else ''}")


def take_snapshot(location: Location, marker: str | None = None) -> LocationSnapshot:
    """List ``location`` once (no per-object HEAD on object stores: the listing's size, time and ETag are
    what changes when a producer writes). A root that cannot be listed because it is not there is
    ``exists=False``; any other listing error is raised."""
    digest = hashlib.sha256()
    entries = files = total = 0
    newest: int | None = None
    marker_present = False
    lines: list[str] = []
    try:
        for batch in location.scan(needs_metadata=lambda _path, _size: False):
            cols = batch.select(["path", "type", "size", "mtime_ns", "etag"]).to_pydict()
            for path, kind, size, mtime, etag in zip(cols["path"], cols["type"], cols["size"], cols["mtime_ns"],
                                                     cols["etag"]):
                if marker and path.rstrip("/") == marker.strip("/"):
                    marker_present = True
                    continue
                entries += 1
                if kind == FILE:
                    files += 1
                    total += size or 0
                if mtime is not None and (newest is None or mtime > newest):
                    newest = mtime
                lines.append(f"{path}\0{kind}\0{size}\0{mtime}\0{etag or ''}")
    except LocationError:
        if location.stat("") is None:
            return LocationSnapshot(exists=False)
        raise
    # Sorted, so that a backend listing in another order between two polls is still the same listing.
    for line in sorted(lines):
        digest.update(line.encode("utf-8", "surrogatepass") + b"\n")
    return LocationSnapshot(True, entries, files, total, newest, digest.hexdigest(), marker_present)


@dataclass
class QuietWatch:
    """The quiet rule across polls. ``previous`` and ``stable_since`` (epoch seconds when ``previous`` was
    first seen) are all the state there is, so a sensor hands them to its trigger or keeps them in the task
    state store between reschedules."""

    quiet_period: float
    marker: str | None = None
    previous: LocationSnapshot | None = None
    stable_since: float | None = None

    def observe(self, snapshot: LocationSnapshot, now: float | None = None) -> bool:
        """Record one snapshot; True once the location is ready."""
        now = time.time() if now is None else now
        if snapshot != self.previous or self.stable_since is None:
            self.previous, self.stable_since = snapshot, now
        if not snapshot.exists or not snapshot.entries and not snapshot.marker_present:
            return False
        if self.marker and not snapshot.marker_present:
            return False
        return now - self.stable_since >= self.quiet_period

    def reason(self) -> str:
        snap = self.previous
        if snap is None or not snap.exists:
            return "the location does not exist yet"
        if not snap.entries and not snap.marker_present:
            return "the location is empty (an object-store prefix with no objects does not exist yet)"
        if self.marker and not snap.marker_present:
            return f"marker {self.marker!r} not there yet"
        return f"unchanged for {time.time() - (self.stable_since or time.time()):.0f}s of {self.quiet_period:.0f}s"

    def to_kwargs(self) -> dict[str, Any]:
        return {"previous": self.previous.to_dict() if self.previous else None, "stable_since": self.stable_since}


class LocationQuietTrigger(BaseTrigger):
    """Lists a location every ``poll_interval`` seconds until it is quiet (see the module docstring); one event.

    Payloads: ``{"status": "success", "snapshot": {...}}`` or ``{"status": "timeout", "message", "snapshot"}``
    once ``deadline`` (epoch seconds) has passed. Kwargs hold the URI and a connection id, never a secret.
    """

    def __init__(self, *, uri: str, conn_id: str | None = None, quiet_period: float = 60.0,
                 marker: str | None = None, poll_interval: float = 30.0, deadline: float | None = None,
                 previous: dict[str, Any] | None = None, stable_since: float | None = None) -> None:
        super().__init__()
        self.uri, self.conn_id, self.marker = watched_uri(uri), conn_id, marker
        self.poll_interval, self.deadline = float(poll_interval), deadline
        self.watch = QuietWatch(float(quiet_period), marker, LocationSnapshot.from_dict(previous), stable_since)
        self._location: Location | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("airflow_datasync.triggers.location_quiet.LocationQuietTrigger",
                {"uri": self.uri, "conn_id": self.conn_id, "quiet_period": self.watch.quiet_period,
                 "marker": self.marker, "poll_interval": self.poll_interval, "deadline": self.deadline,
                 **self.watch.to_kwargs()})

    def _poll(self) -> LocationSnapshot:
        if self._location is None:
            self._location = open_location(self.uri, self.conn_id)
        return take_snapshot(self._location, self.marker)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        last_error: str | None = None
        try:
            while True:
                try:
                    snapshot = await asyncio.to_thread(self._poll)
                    if self.watch.observe(snapshot):
                        yield TriggerEvent({"status": "success", "uri": redact_uri(self.uri),
                                            "snapshot": snapshot.to_dict()})
                        return
                    last_error = None
                except (LocationError, OSError) as exc:  # unreachable for now: retried until the deadline
                    last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("%s: cannot list it yet (%s); polling again", redact_uri(self.uri), exc)
                if self.deadline is not None and time.time() >= self.deadline:
                    why = f"the last listing failed ({last_error})" if last_error else self.watch.reason()
                    yield TriggerEvent({"status": "timeout", "uri": redact_uri(self.uri),
                                        "message": f"{redact_uri(self.uri)} not quiet in time: {why}",
                                        "snapshot": self.watch.previous.to_dict() if self.watch.previous else None})
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await self.cleanup()

    async def cleanup(self) -> None:
        location, self._location = self._location, None
        if location is not None:
            await asyncio.to_thread(location.close)
