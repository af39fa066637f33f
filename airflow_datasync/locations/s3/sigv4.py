"""Signed HTTP to one S3 endpoint: AWS Signature Version 4 (stdlib ``hmac``/``hashlib``) over a small pool
of kept-alive ``http.client`` connections, and the XML of S3's answers parsed with ElementTree.

This is the wire layer of :class:`~airflow_datasync.locations.s3.transport.SigV4Transport`: it sends one
request and returns its answer, whatever the status. Transport failures become
:class:`~airflow_datasync.errors.ConnectionLostError` (the transport's retries reconnect), a TLS
failure a permanent :class:`~airflow_datasync.errors.LocationError`. A bucket in another AWS region (S3
answers 301/400 with ``x-amz-bucket-region``) is followed once and remembered, as boto3 does.
"""

from __future__ import annotations

import collections
import datetime
import functools
import hashlib
import hmac
import http.client
import operator
import os
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from airflow_datasync.errors import ConnectionLostError, LocationError

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNRESERVED = "-_.~"
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
#: Answers that may name the bucket's real region in ``x-amz-bucket-region``.
_WRONG_REGION = {301, 307, 400}
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_BOTO_ONLY_VARIABLES = ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT")
POOL_SIZE = 64
#: Seconds to wait for a TCP (and TLS) connection, and then for each read or write on it: a server that
#: stops answering (a stall, a half-open connection) fails the attempt, which is then retried, instead of
#: hanging the copy. botocore's names and meaning; a connection's ``config_kwargs`` may set either.
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 60.0


def usable(s3_config: dict[str, Any] | None, has_proxies: bool) -> bool:
    """True when this client reaches S3 exactly as boto3 would with these settings: no proxy, no FIPS or
    dual-stack endpoint, no per-service option beyond the addressing style."""
    if has_proxies or any(os.environ.get(v) for v in _PROXY_VARIABLES + _BOTO_ONLY_VARIABLES):
        return False
    return not set((s3_config or {}).keys()) - {"addressing_style"}


@dataclass
class Answer:
    """One HTTP answer: status, lower-cased headers, and the body (read whole unless streamed)."""

    status: int
    headers: dict[str, str]
    body: bytes
    #: With ``stream=True`` and a 2xx status: the unread response, released by :meth:`SigV4Client.release`.
    response: http.client.HTTPResponse | None = None
    connection: http.client.HTTPConnection | None = None
    host: str = ""


class SigV4Client:
    """Signed requests to one S3 endpoint (AWS's regional endpoint when ``endpoint`` is None).

    ``credentials`` returns (access key, secret key, session token or None); it is called per request so
    refreshable credentials (an assumed role) stay fresh. Thread-safe: each request takes a connection
    from the pool and gives it back.
    """

    def __init__(self, endpoint: str | None, region: str, credentials: Callable[[], tuple[str, str, str | None]],
                 verify: bool | str | None = None, addressing_style: str | None = None, *,
                 connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT) -> None:
        self.region = region
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.credentials = credentials
        self.aws = not endpoint
        if endpoint:
            parsed = urllib.parse.urlsplit(endpoint)
            self.secure = parsed.scheme == "https"
            self.base_host = parsed.netloc
            self.base_path = parsed.path.rstrip("/")
            self.virtual = addressing_style == "virtual"
        else:
            self.secure = True
            self.base_host = f"s3.{region}.amazonaws.com"
            self.base_path = ""
            self.virtual = addressing_style != "path"
        self._context: ssl.SSLContext | None = ssl_context(verify) if self.secure else None
        self._pool: dict[str, list[http.client.HTTPConnection]] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str, str], bytes] = {}
        #: Buckets found in another region than the connection's (followed from S3's redirect answers).
        self._bucket_regions: dict[str, str] = {}
        #: Called with each request's operation name before it is sent (the tests count requests).
        self.observers: list[Callable[[str], None]] = []

    def request(self, operation: str, method: str, bucket: str, key: str, query: list[tuple[str, str]] | None = None,
                headers: dict[str, str] | None = None, body: bytes = b"", *, unsigned_payload: bool = False,
                stream: bool = False) -> Answer:
        """Send one signed request; its answer, whatever the status (a redirect to the bucket's region is
        followed once). With ``stream`` a 2xx body is left unread in :attr:`Answer.response`."""
        for observe in self.observers:
            observe(operation)
        answer = self._send(operation, method, bucket, key, query or [], headers or {}, body, unsigned_payload, stream)
        region = answer.headers.get("x-amz-bucket-region")
        if answer.status in _WRONG_REGION and region and region != self._bucket_regions.get(bucket, self.region):
            self._bucket_regions[bucket] = region
            answer = self._send(operation, method, bucket, key, query or [], headers or {}, body, unsigned_payload,
                                stream)
        return answer

    def _send(self, operation: str, method: str, bucket: str, key: str, query: list[tuple[str, str]],
              headers: dict[str, str], body: bytes, unsigned_payload: bool, stream: bool) -> Answer:
        region = self._bucket_regions.get(bucket, self.region)
        host, path = self.address(bucket, key, region)
        query_string = "&".join(f"{urllib.parse.quote(k, safe=_UNRESERVED)}={urllib.parse.quote(v, safe=_UNRESERVED)}"
                                for k, v in sorted(query))
        target = f"{path}?{query_string}" if query_string else path
        payload = ("UNSIGNED-PAYLOAD" if unsigned_payload else
                   hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256)
        signed = self._sign(method, host, path, query_string, dict(headers), payload, region)
        conn = self._take(host)
        try:
            conn.request(method, target, body=body or None, headers=signed)
            resp = conn.getresponse()
            answer = Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, b"", host=host)
            if stream and 200 <= resp.status < 300:
                answer.response, answer.connection = resp, conn
                return answer
            answer.body = resp.read()
        except ssl.SSLError as exc:  # a certificate problem does not go away by retrying
            conn.close()
            raise LocationError(f"cannot reach S3 at {host} ({operation}): {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ConnectionLostError(f"{operation} to {host}: {type(exc).__name__}: {exc}") from None
        self._finish(host, conn, resp)
        return answer

    def release(self, answer: Answer) -> None:
        """Give a streamed answer's connection back (fully read) or close it (abandoned midway)."""
        resp, conn, answer.response, answer.connection = answer.response, answer.connection, None, None
        if resp is None or conn is None:
            return
        if resp.isclosed() or resp.length == 0:
            self._finish(answer.host, conn, resp)
        else:
            conn.close()

    def _finish(self, host: str, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        if resp.will_close:
            conn.close()
        else:
            self._give(host, conn)

    def address(self, bucket: str, key: str, region: str | None = None) -> tuple[str, str]:
        """(host, URL-encoded path) of an object: virtual-hosted where the settings and the bucket name
        allow it (a dotted name breaks TLS certificates of ``*.s3…``), else path-style."""
        base = self.base_host
        if self.aws and region and region != self.region:
            base = f"s3.{region}.amazonaws.com"
        if self.virtual and _DNS_BUCKET.match(bucket) and not (self.secure and "." in bucket):
            host, path = f"{bucket}.{base}", f"{self.base_path}/{key}"
        else:
            host, path = base, f"{self.base_path}/{bucket}/{key}" if key else f"{self.base_path}/{bucket}"
        return host, urllib.parse.quote(path, safe="/" + _UNRESERVED)

    # -- signing ----------------------------------------------------------------------------------
    def _sign(self, method: str, host: str, path: str, query_string: str, headers: dict[str, str],
              payload: str, region: str, amz_date: str | None = None) -> dict[str, str]:
        """``headers`` with host, date, payload hash, token and the SigV4 ``authorization`` added."""
        access_key, secret_key, token = self.credentials()
        amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        headers.update({"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload})
        if token:
            headers["x-amz-security-token"] = token
        names = sorted(headers)
        canonical_headers = "".join(f"{n}:{' '.join(str(headers[n]).split())}\n" for n in names)
        signed_headers = ";".join(names)
        canonical = "\n".join((method, path, query_string, canonical_headers, signed_headers, payload))
        scope = f"{day}/{region}/s3/aws4_request"
        to_sign = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()))
        signature = hmac.new(self._signing_key(secret_key, day, region), to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                    f"SignedHeaders={signed_headers}, Signature={signature}")
        return headers

    def _signing_key(self, secret_key: str, day: str, region: str) -> bytes:
        cached = self._keys.get((secret_key, day, region))
        if cached is None:
            key = ("AWS4" + secret_key).encode()
            for part in (day, region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            if len(self._keys) > 8:  # a new day or secret: the old keys are of no more use
                self._keys = {}
            self._keys[(secret_key, day, region)] = cached = key
        return cached

    # -- connections ------------------------------------------------------------------------------
    def _take(self, host: str) -> http.client.HTTPConnection:
        with self._lock:
            free = self._pool[host]
            if free:
                return free.pop()
        if self.secure:
            return _HTTPSConnection(host, self.connect_timeout, self.read_timeout, context=self._context)
        return _HTTPConnection(host, self.connect_timeout, self.read_timeout)

    def drop_idle(self) -> None:
        """Close every kept-alive connection: after one dropped, the server likely closed all of them."""
        with self._lock:
            idle, self._pool = self._pool, collections.defaultdict(list)
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _give(self, host: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            free = self._pool[host]
            if len(free) < POOL_SIZE:
                free.append(conn)
                return
        conn.close()


class _LineWatch:
    """A response's socket file that remembers the last line read (see :class:`_Response`)."""

    def __init__(self, fp: Any) -> None:
        self._fp, self.last = fp, None

    def readline(self, limit: int = -1) -> bytes:
        self.last = self._fp.readline(limit)
        return self.last

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


class _Response(http.client.HTTPResponse):
    """http.client takes the end of the stream inside a header block for its end: an answer cut there
    would pass for a complete one without the headers after the cut (an ETag, an upload id). Here it is a
    lost connection, so the request is retried."""

    def begin(self) -> None:
        fp = self.fp
        watch = self.fp = _LineWatch(fp)
        try:
            super().begin()
        finally:
            if self.fp is watch:
                self.fp = fp
        if watch.last == b"":
            self.close()
            raise http.client.IncompleteRead(b"", None)


class _TwoTimeouts:
    """Botocore's two timeouts on an http.client connection (which has one for both): ``connect_timeout``
    while connecting (the TLS handshake included), ``read_timeout`` for every socket operation after."""

    response_class = _Response

    def __init__(self, host: str, connect_timeout: float, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(host, timeout=connect_timeout, **kwargs)  # type: ignore[call-arg]
        self.read_timeout = read_timeout

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.sock.settimeout(self.read_timeout)  # type: ignore[attr-defined]


class _HTTPConnection(_TwoTimeouts, http.client.HTTPConnection):
    """A plain connection with botocore's two timeouts."""


class _HTTPSConnection(_TwoTimeouts, http.client.HTTPSConnection):
    """A TLS connection with botocore's two timeouts."""


def ssl_context(verify: bool | str | None) -> ssl.SSLContext:
    """The trust boto3 would use: ``verify=False`` trusts anything, a path is a CA bundle, otherwise the
    CA bundle of ``AWS_CA_BUNDLE`` or certifi's (botocore's default), else the system's."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = verify if isinstance(verify, str) else os.environ.get("AWS_CA_BUNDLE")
    if not cafile:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            cafile = None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise LocationError(f"cannot read the CA bundle {cafile!r}: {exc}") from None


# -- S3's XML ---------------------------------------------------------------------------------------
def xml_document(body: bytes) -> tuple[ElementTree.Element, str] | None:
    """An S3 XML answer's root element and its namespace prefix (``{…}`` or ""), or None if it does not parse."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None
    return root, root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""


def xml_field(body: bytes, root_tag: str, field: str) -> str | None:
    """The text of ``field`` in a small S3 XML answer whose root is ``root_tag`` (any namespace)."""
    document = xml_document(body)
    if document is None:
        return None
    root, ns = document
    return root.findtext(ns + field) if root.tag == ns + root_tag else None


def error_code(body: bytes) -> str | None:
    """The ``<Code>`` of an S3 ``<Error>`` answer, or None."""
    return xml_field(body, "Error", "Code") if body else None


@dataclass
class ListPage:
    """One ListObjectsV2 page: objects as boto3 returns them (Key, Size, ETag, LastModified, StorageClass),
    the common prefixes (with a delimiter) and the continuation token of the next page (None on the last)."""

    contents: list[dict[str, Any]]
    prefixes: list[str]
    next_token: str | None


#: The leaf fields of a ``<Contents>`` the engine reads, and each entry's end, in one pass over a page.
_CONTENTS_FIELD = re.compile(rb"<(Key|Size|ETag|LastModified|StorageClass|/Contents)>([^<]*)")
_TAG = re.compile(rb"<(/?)([A-Za-z0-9]+)>")
_ENTITY = re.compile(r"&(?:#([0-9]+)|#x([0-9a-fA-F]+)|(amp|lt|gt|quot|apos));")
_NAMED_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_READ = (b"Key", b"Size", b"ETag", b"LastModified", b"StorageClass")


def _entity(match: re.Match[str]) -> str:
    number, hex_number, name = match.groups()
    return _NAMED_ENTITIES[name] if name else chr(int(number) if number else int(hex_number, 16))


def _xml_text(raw: bytes) -> str:
    if b"&" not in raw:
        return raw.decode()
    # An ETag's quotes come as &#34; or &quot; on every object: replaced without a call per match.
    text = raw.replace(b"&#34;", b'"').replace(b"&quot;", b'"').decode()
    return _ENTITY.sub(_entity, text) if "&" in text else text


@functools.lru_cache(maxsize=16)
def _entry_pattern(skeleton: tuple[tuple[bytes, bytes], ...]) -> tuple[re.Pattern[bytes], tuple[bytes, ...]]:
    """A regular expression of one ``<Contents>`` with exactly the tags of ``skeleton`` (the first entry's,
    in order), capturing each leaf's text; and the leaves' names in capture order."""
    pattern, leaves = b"", []
    for i, (close, name) in enumerate(skeleton):
        pattern += re.escape(b"<" + close + name + b">")
        if not close and i + 1 < len(skeleton) and skeleton[i + 1] == (b"/", name):
            pattern, leaves = pattern + b"([^<]*)", leaves + [name]
        else:
            pattern += rb"\s*"
    return re.compile(pattern), tuple(leaves)


def _entries(objects: bytes) -> list[tuple[bytes | None, ...]] | None:
    """The leaf fields :data:`_READ` of every ``<Contents>`` of ``objects`` (the run of them in a page), in
    that order (None where absent), by one expression when every entry has the first one's tags (a store
    writes them alike), else tag by tag; None if an entry lacks a Key or a LastModified."""
    skeleton = tuple(_TAG.findall(objects[:objects.find(b"</Contents>") + len(b"</Contents>")]))
    pattern, leaves = _entry_pattern(skeleton)
    if b"Key" in leaves and b"LastModified" in leaves:
        matches = pattern.findall(objects)
        if len(matches) == objects.count(b"<Contents>"):
            if len(leaves) == 1:
                matches = [(m,) for m in matches]
            at = [leaves.index(name) if name in leaves else None for name in _READ]
            if None not in at:
                return [operator.itemgetter(*at)(m) for m in matches]
            return [tuple(None if i is None else m[i] for i in at) for m in matches]
    entries, entry = [], {}
    for name, raw in _CONTENTS_FIELD.findall(objects):
        if name != b"/Contents":
            entry[name] = raw
            continue
        if b"Key" not in entry or b"LastModified" not in entry:
            return None
        entries.append(tuple(entry.get(name) for name in _READ))
        entry = {}
    return entries if len(entries) == objects.count(b"<Contents>") else None


def parse_listing(body: bytes) -> ListPage | None:
    """A ListObjectsV2 page (keys URL-decoded where ``encoding-type=url`` applied), or None if ``body`` is
    not a complete one.

    ElementTree reads the page without its ``<Contents>`` (names, flags, token, common prefixes), which
    also proves the document complete; the objects are read by regular expressions over the run of
    ``<Contents>`` elements, whose fields are leaves (a tree of a thousand objects cost most of a page's
    parse). A page this reading does not expect (CDATA, comments, another encoding, a prefixed
    namespace) goes through ElementTree whole."""
    first, last = body.find(b"<Contents>"), body.rfind(b"</Contents>")
    if first < 0:  # no objects, or not in S3's default namespace
        return _parse_listing_tree(body)
    if last < first:
        return None
    head, objects = body[:first], body[first:last + len(b"</Contents>")]
    if b"<!" in objects or b"<?" in objects or not _plain_utf8(head):
        return _parse_listing_tree(body)
    if (listing := _listing_root(head + body[last + len(b"</Contents>"):])) is None:
        return None
    root, ns, decode = listing
    entries = _entries(objects)
    if entries is None:
        return None
    contents, stamps, classes = [], {}, {}
    for key, size, etag, modified, storage in entries:
        if (stamp := stamps.get(modified)) is None:  # objects written in one second share it
            stamp = stamps[modified] = iso_timestamp(modified.decode())
            if stamp is None:
                return None
        item = {"Key": decode(_xml_text(key)), "Size": int(size or 0),
                "ETag": None if etag is None else _xml_text(etag), "LastModified": stamp}
        if storage is not None:
            item["StorageClass"] = classes.get(storage) or classes.setdefault(storage, _xml_text(storage))
        contents.append(item)
    return _page_of(root, ns, decode, contents)


def _listing_root(body: bytes) -> tuple[Any, str, Callable[[str], str]] | None:
    """The root of a ListBucketResult document, its namespace and the key decoding its EncodingType asks
    for; None if ``body`` is not one."""
    document = xml_document(body)
    if document is None:
        return None
    root, ns = document
    if root.tag != ns + "ListBucketResult":
        return None
    return root, ns, urllib.parse.unquote_plus if (root.findtext(ns + "EncodingType") or "").lower() == "url" else str


def _plain_utf8(head: bytes) -> bool:
    """Whether a page's start is UTF-8 XML with S3's default namespace and nothing ElementTree alone reads."""
    declaration = head[:head.find(b"?>") + 2] if head.startswith(b"<?xml") else b""
    return (not declaration or b"utf-8" in declaration.lower()) and b"<!" not in head


def _parse_listing_tree(body: bytes) -> ListPage | None:
    """:func:`parse_listing` all through ElementTree."""
    if (listing := _listing_root(body)) is None:
        return None
    root, ns, decode = listing
    key, size, etag, modified, storage = (ns + "Key", ns + "Size", ns + "ETag", ns + "LastModified",
                                          ns + "StorageClass")
    contents = []
    for item in root.iterfind(ns + "Contents"):
        name = item.findtext(key)
        stamp = iso_timestamp(item.findtext(modified) or "")
        if name is None or stamp is None:
            return None
        entry = {"Key": decode(name), "Size": int(item.findtext(size) or 0), "ETag": item.findtext(etag),
                 "LastModified": stamp}
        if (sc := item.findtext(storage)) is not None:
            entry["StorageClass"] = sc
        contents.append(entry)
    return _page_of(root, ns, decode, contents)


def _page_of(root: ElementTree.Element, ns: str, decode: Callable[[str], str], contents: list[dict[str, Any]]
             ) -> ListPage | None:
    prefixes = [decode(p.findtext(ns + "Prefix") or "") for p in root.iterfind(ns + "CommonPrefixes")]
    truncated = (root.findtext(ns + "IsTruncated") or "false").strip().lower() == "true"
    token = root.findtext(ns + "NextContinuationToken") if truncated else None
    if truncated and not token:
        return None
    return ListPage(contents, prefixes, token)


def iso_timestamp(value: str) -> datetime.datetime | None:
    """An ISO 8601 timestamp of a listing (``2026-11-26T15:39:12.033Z``) as an aware datetime (None if not one)."""
    try:
        parsed = datetime.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)
