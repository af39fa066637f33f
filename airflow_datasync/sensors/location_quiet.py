"""``LocationQuietSensor``: wait until a folder, share or prefix stops changing (and a marker appears)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException

from airflow_datasync.locations import LocationError, open_location
from airflow_datasync.sensors._deferral import DeferringSensor, seconds
from airflow_datasync.triggers.location_quiet import (
    LocationQuietTrigger,
    LocationSnapshot,
    QuietWatch,
    take_snapshot,
    watched_uri,
)
from airflow_datasync.uri import redact_uri

#: The task state store key that carries the quiet watch between reschedules (``mode="reschedule"``).
_STATE_KEY = "location_quiet_watch"


class LocationQuietSensor(DeferringSensor):
    """Wait until ``uri`` (any backend: a path, ``s3://bucket/prefix``, ``smb://host/share/folder``), or
    ``prefix`` below it, has listed the same entries, sizes and modification times (ETags on S3) for
    ``quiet_period``, and, if ``marker`` is given (e.g. ``"_SUCCESS"``), that marker exists.

    A location that does not exist yet, or is empty, is not ready: the sensor keeps waiting until
    ``timeout``. ``uri``, ``prefix`` and ``marker`` are templated, so a daily run waits for its own day's
    folder (``.../{{ ds }}``). Pushes the last snapshot (``files``, ``total_bytes``, ``newest_mtime_ns``…).

    :param conn_id: the Airflow connection of a remote location (AWS for ``s3://``, ``datasync_smb`` for ``smb://``).
    :param quiet_period: seconds (or a timedelta) the listing must stay unchanged; 0 means "exists and not
        empty" (with the marker, "the marker exists").
    :param poke_interval: seconds between listings; keep it below ``quiet_period``.
    :param deferrable: wait in the triggerer (default) or, with False, in ``poke``/``reschedule`` mode.
    """

    template_fields: Sequence[str] = ("uri", "prefix", "marker")
    ui_color = "#d5f5e3"

    def __init__(self, *, uri: str, conn_id: str | None = None, prefix: str | None = None,
                 quiet_period: timedelta | float = 60, marker: str | None = None, poke_interval: float = 15,
                 **kwargs: Any) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.uri, self.conn_id, self.prefix, self.marker = uri, conn_id, prefix, marker
        self.quiet_period = seconds(quiet_period)
        self._watch: QuietWatch | None = None

    def _watched(self) -> str:
        try:
            return watched_uri(self.uri, self.prefix)
        except LocationError as exc:
            raise AirflowFailException(str(exc)) from exc

    def _load_watch(self, context) -> QuietWatch:
        if self._watch is None:
            self._watch = QuietWatch(self.quiet_period, self.marker or None)
            if self.reschedule:  # a rescheduled poke is a new process: the watch lives in the task state store
                saved = context["task_state_store"].get(_STATE_KEY) or {}
                self._watch.previous = LocationSnapshot.from_dict(saved.get("previous"))
                self._watch.stable_since = saved.get("stable_since")
        return self._watch

    def poke(self, context) -> PokeReturnValue:
        watch = self._load_watch(context)
        with open_location(self._watched(), self.conn_id) as location:
            snapshot = take_snapshot(location, self.marker or None)
        ready = watch.observe(snapshot)
        if self.reschedule and not ready:
            context["task_state_store"].set(_STATE_KEY, watch.to_kwargs())
        if not ready:
            self.log.info("%s: not ready (%s): %s", redact_uri(self._watched()), watch.reason(), snapshot.describe())
        return PokeReturnValue(ready, snapshot.to_dict() if ready else None)

    def done_value(self, context) -> dict[str, Any] | None:
        return self._watch.previous.to_dict() if self._watch and self._watch.previous else None

    def make_trigger(self, context, deadline: float) -> LocationQuietTrigger:
        watch = self._load_watch(context)
        return LocationQuietTrigger(uri=self._watched(), conn_id=self.conn_id, quiet_period=self.quiet_period,
                                    marker=self.marker or None, poll_interval=self.poke_interval, deadline=deadline,
                                    **watch.to_kwargs())

    def on_success_event(self, context, event: dict[str, Any]) -> dict[str, Any]:
        self.log.info("%s is quiet: %s", event.get("uri"), LocationSnapshot.from_dict(event["snapshot"]).describe())
        return event["snapshot"]
