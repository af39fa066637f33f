"""Rate-limited progress lines for long phases (files/s, MB/s, ETA) and the BytesPerSecond limiter."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("airflow_datasync")


class Progress:
    """Counts work from many threads and logs a line at most every ``every`` seconds."""

    def __init__(self, what: str, total_items: int | None = None, total_bytes: int | None = None, every: float = 5.0):
        self.what, self.total_items, self.total_bytes, self.every = what, total_items, total_bytes, every
        self.items = self.bytes = 0
        self.started = self._last = time.monotonic()
        self._lock = threading.Lock()

    def add(self, items: int = 1, nbytes: int = 0) -> None:
        with self._lock:
            self.items += items
            self.bytes += nbytes
            now = time.monotonic()
            if now - self._last < self.every:
                return
            self._last = now
        self.log()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate, mbps = self.items / elapsed, self.bytes / elapsed / 1e6
        parts = [f"{self.what}: {self.items:,}" + (f"/{self.total_items:,}" if self.total_items else "") + " entries",
                 f"{self.bytes / 1e6:,.1f} MB", f"{rate:,.0f} files/s", f"{mbps:,.1f} MB/s"]
        if self.total_bytes and mbps > 0 and self.total_bytes > self.bytes:
            parts.append(f"ETA {(self.total_bytes - self.bytes) / 1e6 / mbps:,.0f} s")
        elif self.total_items and rate > 0 and self.total_items > self.items:
            parts.append(f"ETA {(self.total_items - self.items) / rate:,.0f} s")
        return ", ".join(parts)

    def log(self) -> None:
        log.info("%s", self.line())


class RateLimiter:
    """A token bucket shared by all copy threads of one task (BytesPerSecond)."""

    def __init__(self, bytes_per_second: int) -> None:
        self.rate = bytes_per_second
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def acquire(self, nbytes: int) -> None:
        if self.rate <= 0 or nbytes <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + nbytes / self.rate
            wait = start - now
        if wait > 0:
            time.sleep(wait)
