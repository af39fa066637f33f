"""Patches that make boto3's S3 listings cheaper: ISO timestamps through ``datetime``'s C parser and
ListObjectsV2 pages parsed with ElementTree, skipping botocore's second look for a 200-with-error body."""

from __future__ import annotations

import datetime
import logging
import re
from typing import Any

from airflow_datasync.locations.s3 import sigv4

log = logging.getLogger("airflow_datasync")


def fast_timestamp(value: Any) -> Any:
    """ISO 8601 timestamps (every ``LastModified`` of a listing) through the C parser of ``datetime``.

    botocore's default goes through ``dateutil``: ~170 µs per timestamp, most of a 5,000-object re-run's
    LIST time. HTTP-date headers (HEAD) and anything unusual still go to botocore's own parser.
    """
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        try:
            parsed = datetime.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    from botocore.parsers import DEFAULT_TIMESTAMP_PARSER  # the rare case: imported here, not per timestamp

    return DEFAULT_TIMESTAMP_PARSER(value)


def use_fast_timestamps(session: Any) -> None:
    """Make clients of this boto3 session parse response timestamps with :func:`fast_timestamp`."""
    core = getattr(session, "_session", session)  # boto3.Session wraps a botocore session
    try:
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=fast_timestamp)
    except Exception:  # noqa: BLE001 - an optimisation only: botocore's parser stays correct
        log.debug("could not install the fast timestamp parser", exc_info=True)


def lighter_listings(client: Any) -> None:
    """Make this client's listings cheaper: no second XML parse of complete pages looking for an error,
    and the objects of each page parsed by :func:`parse_listing_page`.

    S3 may answer 200 with an ``<Error>`` body, so botocore parses each response body once to look for one
    (a third of a 1,000-key page's CPU) before parsing it again for the result. A ListObjectsV2 body that
    starts with ``<ListBucketResult`` and ends with ``</ListBucketResult>`` is neither an error nor
    truncated; every other response (CopyObject, CompleteMultipartUpload, …) keeps botocore's check.
    """
    from botocore import handlers

    original = getattr(handlers, "_handle_200_error", None)
    if original is None:
        return

    def check(operation_model: Any, response_dict: Any, **kwargs: Any) -> None:
        if operation_model.name == "ListObjectsV2" and response_dict and response_dict.get("status_code") == 200:
            body = response_dict.get("body") or b""
            head = body[:256].lstrip()
            if head.startswith(b"<?xml"):
                head = head[head.find(b"?>") + 2:].lstrip()
            if head.startswith(b"<ListBucketResult") and body.rstrip().endswith(b"</ListBucketResult>"):
                return
        original(operation_model=operation_model, response_dict=response_dict, **kwargs)

    events = client.meta.events
    events.unregister("before-parse.s3.*", original)
    events.register_first("before-parse.s3.*", check)
    events.register("before-parse.s3.ListObjectsV2", parse_listing_page)


_CONTENTS = re.compile(rb"<Contents>.*?</Contents>", re.S)


def parse_listing_page(operation_model: Any, response_dict: Any, customized_response_dict: Any,
                        **kwargs: Any) -> None:
    """Parse a ListObjectsV2 page's ``Contents`` with ElementTree's C parser (~14 ms per 1,000 objects,
    against ~40 ms through botocore's generic shape walk): 20 s of CPU saved per million objects listed.

    The objects go to ``customized_response_dict`` (botocore merges it into the parsed page, before its
    own handlers URL-decode the keys) and leave the body, so botocore parses only the page's few other
    fields (continuation token, truncation). Each object carries ``Key``, ``Size``, ``ETag``,
    ``LastModified`` and ``StorageClass``. Anything unexpected is left to botocore untouched.
    """
    body = response_dict.get("body") if response_dict and response_dict.get("status_code") == 200 else None
    if not body or b"<Contents>" not in body:
        return
    document = sigv4.xml_document(body)
    if document is None:
        return  # botocore's parser and 200-error check deal with it
    root, ns = document
    if root.tag != ns + "ListBucketResult":
        return
    contents = sigv4.listing_contents(root, ns, fast_timestamp)
    if contents is None:
        return
    customized_response_dict["Contents"] = contents
    response_dict["body"] = _CONTENTS.sub(b"", body)

