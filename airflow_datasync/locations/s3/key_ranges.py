"""A prefix listed over ranges of keys at once, split at the keys an earlier listing saw.

ListObjectsV2 pages one after another: each page's continuation token comes with the page before, so a
listing of N pages costs N round trips in a row, most of them the server's time. Where an earlier listing
of the prefix is known (the last execution's, or PREPARING's for VERIFYING), every thousandth key of it
bounds a range; each range is listed from its lower bound (``start-after``) until it passes its upper
one, several at a time, and the pages come out in key order as one listing would give them. Keys written
or deleted since only make a range longer or shorter: the ranges together still cover every key, each
exactly once, and a tree as it was costs the same pages as one listing.

This needs what S3 promises of a general purpose bucket: keys listed in ascending (UTF-8 binary) order and
``start-after`` honoured. A page that breaks it (a store that does not sort) ends the ranges: the rest
is listed the plain way, without the keys already given. Directory buckets (``--x-s3``), which list
unordered, are never split.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

from airflow_datasync.locations.s3.sigv4 import ListPage

#: Keys per range: one page, as S3 pages by 1,000.
KEYS_PER_RANGE = 1000
#: Ranges listed at once.
RANGES_IN_FLIGHT = 8

ListPageFn = Callable[..., ListPage]


class _Unordered(Exception):
    """A page that is not in ascending key order after its range's lower bound."""


def range_bounds(known_keys: list[str]) -> list[str]:
    """The upper bounds of all ranges but the last (which is open): every :data:`KEYS_PER_RANGE`-th of the
    sorted ``known_keys``, except the very last key (its range would list an empty page after it)."""
    keys, per_range = sorted(set(known_keys)), KEYS_PER_RANGE
    return [keys[i] for i in range(per_range - 1, len(keys) - 1, per_range)]


def splittable(bucket: str) -> bool:
    """Whether the bucket lists in key order (not an S3 Express directory bucket)."""
    return not bucket.endswith("--x-s3")


def _range_pages(list_page: ListPageFn, bucket: str, prefix: str, after: str | None, upto: str | None
                 ) -> list[list[dict[str, Any]]]:
    """The pages of the keys in (``after``, ``upto``] (None: unbounded)."""
    pages, token, previous = [], None, after
    while True:
        page = list_page(bucket, prefix, token, start_after=after if token is None else None)
        contents = page.contents
        for obj in contents:
            if previous is not None and obj["Key"] <= previous:
                raise _Unordered
            previous = obj["Key"]
        if upto is not None and contents and contents[-1]["Key"] >= upto:
            pages.append([obj for obj in contents if obj["Key"] <= upto])
            return pages
        pages.append(contents)
        if page.next_token is None:
            return pages
        token = page.next_token


def ranged_pages(list_page: ListPageFn, bucket: str, prefix: str, bounds: list[str], pool: Executor,
                 plain_pages: Callable[[], Iterator[list[dict[str, Any]]]]) -> Iterator[list[dict[str, Any]]]:
    """Every page under ``prefix`` in key order, the ranges cut at ``bounds`` listed ``RANGES_IN_FLIGHT``
    at a time on ``pool``; ``plain_pages``: the one-after-another listing, for a store that breaks the order."""
    ranges = list(zip([None, *bounds], [*bounds, None]))
    waiting: deque[tuple[str | None, Future[list[list[dict[str, Any]]]]]] = deque()
    given = None  # every key up to this one has been given
    try:
        for after, upto in ranges[:RANGES_IN_FLIGHT]:
            waiting.append((upto, pool.submit(_range_pages, list_page, bucket, prefix, after, upto)))
        following = iter(ranges[RANGES_IN_FLIGHT:])
        while waiting:
            upto, future = waiting.popleft()
            try:
                pages = future.result()
            except _Unordered:
                break
            if (more := next(following, None)) is not None:
                waiting.append((more[1], pool.submit(_range_pages, list_page, bucket, prefix, *more)))
            yield from pages
            given = upto
        else:
            return
    finally:
        for _upto, future in waiting:
            future.cancel()
    for contents in plain_pages():
        yield [obj for obj in contents if given is None or obj["Key"] > given]
