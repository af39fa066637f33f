"""A small SigV4-signed HTTP client for the S3 requests a re-run is made of: ListObjectsV2 pages and HEADs
(plus the empty PUT and the DELETE of LAUNCHING's write probe).

Why: a re-run of 5,000 unchanged files is a few LISTs, yet importing boto3 and building its client took
~0.35 s of a ~1.1 s run, and botocore spends ~1 ms of Python per request where this client spends
~0.1 ms. It signs with AWS Signature Version 4 (stdlib ``hmac``/``hashlib``), talks HTTP/1.1 through
``http.client`` with a small pool of kept-alive connections, and parses listing pages with ElementTree.

It is a fast path, never the only one: anything it does not expect — a status other than 2xx (or 404 for
a HEAD), a redirect to another region, a body that does not parse, a transport error after retries —
raises :class:`LiteUnavailable`, and the caller redoes that request with boto3, whose answer (or error)
is the one that counts. :func:`usable` keeps it out of the way wherever boto3 would do something this
client does not (proxies, FIPS or dual-stack endpoints, accelerate, a custom CA it cannot load).
"""

from __future__ import annotations

import collections
import datetime
import email.utils
import hashlib
import hmac
import http.client
import os
import re
import ssl
import threading
import time
import urllib.parse
from typing import Any, Callable
from xml.etree import ElementTree

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNRESERVED = "-_.~"
#: Transient answers retried here before giving up (and letting boto3, with its own retries, try).
_RETRY_STATUS = {500, 502, 503, 504}
_ATTEMPTS = 3
#: Answers meaning "not here" (a bucket in another region, a moved endpoint): boto3 takes over for good.
_REDIRECTS = {301, 307, 308, 400}
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_BOTO_ONLY_VARIABLES = ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT")


class LiteUnavailable(Exception):
    """This request needs boto3: an answer the fast path does not handle (the caller retries with boto3)."""


def usable(s3_config: dict[str, Any] | None, has_proxies: bool) -> bool:
    """True when this client reaches S3 exactly as boto3 would with these settings."""
    if has_proxies or any(os.environ.get(v) for v in _PROXY_VARIABLES + _BOTO_ONLY_VARIABLES):
        return False
    extra = set((s3_config or {}).keys()) - {"addressing_style"}
    return not extra


class S3Lite:
    """Signed requests to one S3 endpoint (AWS's regional endpoint when ``endpoint`` is None).

    ``credentials`` returns (access key, secret key, session token or None); it is called per request so
    refreshable credentials (an assumed role) stay fresh. Thread-safe: each request takes a connection
    from the pool and gives it back.
    """

    def __init__(self, endpoint: str | None, region: str, credentials: Callable[[], tuple[str, str, str | None]],
                 verify: bool | str | None = None, addressing_style: str | None = None) -> None:
        self.region = region
        self.credentials = credentials
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
        self._context: ssl.SSLContext | None = None
        if self.secure:
            self._context = _ssl_context(verify)
        self._pool: dict[str, list[http.client.HTTPConnection]] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], bytes] = {}
        #: Called with each request's operation name before it is sent (boto3's have their events).
        self.observers: list[Callable[[str], None]] = []
        #: Set when S3 answered with a redirect: every later request goes to boto3.
        self.broken = False

    # -- requests ---------------------------------------------------------------------------------
    def list_page(self, bucket: str, prefix: str, token: str | None = None, max_keys: int = 1000
                  ) -> tuple[list[dict[str, Any]], str | None]:
        """One ListObjectsV2 page: its objects (Key, Size, ETag, LastModified, StorageClass, as boto3
        returns them) and the continuation token of the next page (None on the last)."""
        query = [("encoding-type", "url"), ("list-type", "2"), ("max-keys", str(max_keys)), ("prefix", prefix)]
        if token is not None:
            query.append(("continuation-token", token))
        status, _headers, body = self.request("ListObjectsV2", "GET", bucket, "", query)
        if status != 200:
            raise LiteUnavailable(f"ListObjectsV2 answered {status}")
        return parse_listing(body)

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """HeadObject with checksums (as boto3's ``head_object(..., ChecksumMode="ENABLED")`` returns the
        fields used here), or None when the object does not exist."""
        status, headers, _ = self.request("HeadObject", "HEAD", bucket, key, [], {"x-amz-checksum-mode": "ENABLED"})
        if status == 404:
            return None
        if status != 200:
            raise LiteUnavailable(f"HeadObject answered {status}")
        try:
            out: dict[str, Any] = {
                "ContentLength": int(headers["content-length"]),
                "ETag": headers.get("etag"),
                "LastModified": email.utils.parsedate_to_datetime(headers["last-modified"]),
                "Metadata": {k[11:]: v for k, v in headers.items() if k.startswith("x-amz-meta-")},
            }
        except (KeyError, ValueError, TypeError) as exc:
            raise LiteUnavailable(f"HeadObject: unexpected headers ({exc})") from None
        for header, field in (("x-amz-checksum-crc64nvme", "ChecksumCRC64NVME"), ("x-amz-checksum-type", "ChecksumType")):
            if header in headers:
                out[field] = headers[header]
        return out

    def put(self, bucket: str, key: str, body: bytes = b"", metadata: dict[str, str] | None = None,
            if_none_match: bool = False) -> str | None:
        """PutObject of a small body (directory markers, the write probe) with user metadata; its ETag.

        Metadata that is not printable ASCII (which S3 would need encoded) is left to boto3."""
        headers = {"content-length": str(len(body)), **_meta_headers(metadata or {})}
        if if_none_match:
            headers["if-none-match"] = "*"
        status, answer, _ = self.request("PutObject", "PUT", bucket, key, [], headers, body)
        if status != 200:
            raise LiteUnavailable(f"PutObject answered {status}")
        return answer.get("etag")

    def copy_object(self, bucket: str, key: str, source_bucket: str, source_key: str, metadata: dict[str, str],
                    if_match: str, keep_tags: bool, storage_class: str | None) -> str | None:
        """Server-side CopyObject with new metadata (``REPLACE``), pinned to the source's ETag, with a
        CRC64NVME computed by the server. S3 may answer 200 with an ``<Error>`` body: that goes to boto3
        like any other unexpected answer. Returns the copy's ETag."""
        headers = {"x-amz-copy-source": urllib.parse.quote(f"/{source_bucket}/{source_key}", safe="/~"),
                   "x-amz-copy-source-if-match": if_match, "x-amz-metadata-directive": "REPLACE",
                   "x-amz-checksum-algorithm": "CRC64NVME", **_meta_headers(metadata)}
        if keep_tags:
            headers["x-amz-tagging-directive"] = "COPY"
        else:
            headers.update({"x-amz-tagging-directive": "REPLACE", "x-amz-tagging": ""})
        if storage_class:
            headers["x-amz-storage-class"] = storage_class
        status, _, body = self.request("CopyObject", "PUT", bucket, key, [], headers)
        if status != 200 or b"<CopyObjectResult" not in body:
            raise LiteUnavailable(f"CopyObject answered {status}")
        return _xml_field(body, "CopyObjectResult", "ETag")

    # -- multipart uploads (the caller completes only when whole, and aborts on any failure) ----------
    def create_multipart(self, bucket: str, key: str, metadata: dict[str, str], extra: dict[str, str]) -> str:
        """CreateMultipartUpload with a full-object CRC64NVME; ``extra`` holds other headers (storage class,
        tagging). Returns the upload id."""
        headers = {"x-amz-checksum-algorithm": "CRC64NVME", "x-amz-checksum-type": "FULL_OBJECT", **extra}
        headers.update(_meta_headers(metadata))
        status, _, body = self.request("CreateMultipartUpload", "POST", bucket, key, [("uploads", "")], headers)
        upload_id = _xml_field(body, "InitiateMultipartUploadResult", "UploadId") if status == 200 else None
        if not upload_id:
            raise LiteUnavailable(f"CreateMultipartUpload answered {status}")
        return upload_id

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes, crc64: str) -> str:
        """One part, its CRC64NVME (base64) checked by the server; the payload itself is not hashed for the
        signature (``UNSIGNED-PAYLOAD``: the CRC protects the bytes, a SHA-256 of each part would cost ~2 s
        of CPU per GB). Returns the part's ETag."""
        status, headers, _ = self.request(
            "UploadPart", "PUT", bucket, key, [("partNumber", str(number)), ("uploadId", upload_id)],
            {"content-length": str(len(body)), "x-amz-checksum-crc64nvme": crc64}, body, unsigned_payload=True)
        if status != 200 or not headers.get("etag"):
            raise OSError(f"UploadPart {number} of s3://{bucket}/{key} answered {status}")
        return headers["etag"]

    def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str, str]],
                           crc64: str, if_none_match: bool) -> str | None:
        """CompleteMultipartUpload of (number, ETag, CRC64NVME) parts with the whole object's CRC64NVME.
        S3 may answer 200 with an ``<Error>`` body: that is an error here. Returns the object's ETag."""
        from xml.sax.saxutils import escape

        xml = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(etag)}</ETag>"
                      f"<ChecksumCRC64NVME>{escape(crc)}</ChecksumCRC64NVME></Part>" for n, etag, crc in parts)
        body = f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{xml}</CompleteMultipartUpload>'
        headers = {"content-type": "application/xml", "x-amz-checksum-crc64nvme": crc64,
                   "x-amz-checksum-type": "FULL_OBJECT"}
        if if_none_match:
            headers["if-none-match"] = "*"
        status, _, answer = self.request("CompleteMultipartUpload", "POST", bucket, key, [("uploadId", upload_id)],
                                         headers, body.encode())
        if status == 412:
            raise FileExistsError(f"{key} already exists (OverwriteMode=NEVER)")
        if status != 200 or b"<CompleteMultipartUploadResult" not in answer:
            code = _xml_field(answer, "Error", "Code") or status
            raise OSError(f"CompleteMultipartUpload of s3://{bucket}/{key} failed: {code}")
        return _xml_field(answer, "CompleteMultipartUploadResult", "ETag")

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        status, _, _ = self.request("AbortMultipartUpload", "DELETE", bucket, key, [("uploadId", upload_id)])
        if status not in (200, 204, 404):
            raise OSError(f"AbortMultipartUpload answered {status}")

    def delete(self, bucket: str, key: str) -> None:
        status, _, _ = self.request("DeleteObject", "DELETE", bucket, key, [])
        if status not in (200, 204):
            raise LiteUnavailable(f"DeleteObject answered {status}")

    def request(self, operation: str, method: str, bucket: str, key: str, query: list[tuple[str, str]],
                headers: dict[str, str] | None = None, body: bytes = b"", unsigned_payload: bool = False
                ) -> tuple[int, dict[str, str], bytes]:
        """Send one signed request; transient failures are retried. Returns (status, lower-cased headers, body)."""
        host, path = self.address(bucket, key)
        query_string = "&".join(f"{urllib.parse.quote(k, safe=_UNRESERVED)}={urllib.parse.quote(v, safe=_UNRESERVED)}"
                                for k, v in sorted(query))
        target = f"{path}?{query_string}" if query_string else path
        for observe in self.observers:
            observe(operation)
        payload = ("UNSIGNED-PAYLOAD" if unsigned_payload else
                   hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256)
        for attempt in range(_ATTEMPTS):
            signed = self._sign(method, host, path, query_string, dict(headers or {}), payload)
            conn = self._take(host)
            try:
                conn.request(method, target, body=body or None, headers=signed)
                resp = conn.getresponse()
                data = resp.read()
            except ssl.SSLError as exc:  # a certificate problem does not go away by retrying
                conn.close()
                raise LiteUnavailable(f"{operation}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._drop_idle(host)  # the server closed one kept-alive connection: likely all of them
                if attempt == _ATTEMPTS - 1:
                    raise LiteUnavailable(f"{operation}: {type(exc).__name__}: {exc}") from None
                time.sleep(0.05 * 2**attempt)
                continue
            if resp.will_close:
                conn.close()
            else:
                self._give(host, conn)
            if resp.status in _REDIRECTS:
                self.broken = True  # another region or endpoint: boto3 follows those, for every later request too
            if resp.status in _RETRY_STATUS and attempt < _ATTEMPTS - 1:
                time.sleep(0.05 * 2**attempt)
                continue
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")

    def address(self, bucket: str, key: str) -> tuple[str, str]:
        """(host, URL-encoded path) of an object: virtual-hosted where the settings and the bucket name
        allow it (a dotted name breaks TLS certificates of ``*.s3…``), else path-style."""
        if self.virtual and _DNS_BUCKET.match(bucket) and not (self.secure and "." in bucket):
            host, path = f"{bucket}.{self.base_host}", f"{self.base_path}/{key}"
        else:
            host, path = self.base_host, f"{self.base_path}/{bucket}/{key}" if key else f"{self.base_path}/{bucket}"
        return host, urllib.parse.quote(path, safe="/" + _UNRESERVED)

    # -- signing ----------------------------------------------------------------------------------
    def _sign(self, method: str, host: str, path: str, query_string: str, headers: dict[str, str],
              payload: str, amz_date: str | None = None) -> dict[str, str]:
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
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()))
        signature = hmac.new(self._signing_key(secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                    f"SignedHeaders={signed_headers}, Signature={signature}")
        return headers

    def _signing_key(self, secret_key: str, day: str) -> bytes:
        cached = self._keys.get((secret_key, day))
        if cached is None:
            key = ("AWS4" + secret_key).encode()
            for part in (day, self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(secret_key, day): key}  # one day and one secret at a time: nothing piles up
            cached = key
        return cached

    # -- connections ------------------------------------------------------------------------------
    def _take(self, host: str) -> http.client.HTTPConnection:
        with self._lock:
            free = self._pool[host]
            if free:
                return free.pop()
        if self.secure:
            return http.client.HTTPSConnection(host, timeout=60, context=self._context)
        return http.client.HTTPConnection(host, timeout=60)

    def _drop_idle(self, host: str) -> None:
        with self._lock:
            idle, self._pool[host] = self._pool[host], []
        for conn in idle:
            conn.close()

    def _give(self, host: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            free = self._pool[host]
            if len(free) < 64:
                free.append(conn)
                return
        conn.close()


def _meta_headers(metadata: dict[str, str]) -> dict[str, str]:
    """User metadata as ``x-amz-meta-*`` headers; what is not printable ASCII (S3 would need it encoded)
    is left to boto3."""
    headers = {}
    for name, value in metadata.items():
        if not (name.isascii() and value.isascii() and name.isprintable() and value.isprintable()):
            raise LiteUnavailable("metadata that is not printable ASCII")
        headers["x-amz-meta-" + name.lower()] = value
    return headers


def xml_document(body: bytes) -> tuple[ElementTree.Element, str] | None:
    """An S3 XML answer's root element and its namespace prefix (``{…}`` or ""), or None if it does not parse."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None
    return root, root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""


def _xml_field(body: bytes, root_tag: str, field: str) -> str | None:
    """The text of ``field`` in a small S3 XML answer whose root is ``root_tag`` (any namespace)."""
    document = xml_document(body)
    if document is None:
        return None
    root, ns = document
    return root.findtext(ns + field) if root.tag == ns + root_tag else None


def listing_contents(root: ElementTree.Element, ns: str, timestamp: Callable[[str], Any], decode: bool = False
                     ) -> list[dict[str, Any]] | None:
    """The ``Contents`` of a ListBucketResult as boto3 gives them: Key (URL-decoded with ``decode``), Size,
    ETag, LastModified (through ``timestamp``) and StorageClass. None if an object has no Key."""
    key, size, etag, modified, storage = (ns + "Key", ns + "Size", ns + "ETag", ns + "LastModified",
                                          ns + "StorageClass")
    contents = []
    for item in root.iterfind(ns + "Contents"):
        name = item.findtext(key)
        if name is None:
            return None
        entry = {"Key": urllib.parse.unquote_plus(name) if decode else name, "Size": int(item.findtext(size) or 0),
                 "ETag": item.findtext(etag), "LastModified": timestamp(item.findtext(modified) or "")}
        if (sc := item.findtext(storage)) is not None:
            entry["StorageClass"] = sc
        contents.append(entry)
    return contents


def _ssl_context(verify: bool | str | None) -> ssl.SSLContext:
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
    return ssl.create_default_context(cafile=cafile)


def parse_listing(body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """A ListObjectsV2 page (``encoding-type=url``) as (objects, next continuation token or None)."""
    document = xml_document(body)
    if document is None:
        raise LiteUnavailable("ListObjectsV2: the page does not parse")
    root, ns = document
    if root.tag != ns + "ListBucketResult":
        raise LiteUnavailable(f"ListObjectsV2: a {root.tag!r} document, not a listing")
    encoded = (root.findtext(ns + "EncodingType") or "").lower() == "url"
    contents = listing_contents(root, ns, iso_timestamp, decode=encoded)
    if contents is None:
        raise LiteUnavailable("ListObjectsV2: an object without a Key")
    truncated = (root.findtext(ns + "IsTruncated") or "false").strip().lower() == "true"
    token = root.findtext(ns + "NextContinuationToken") if truncated else None
    if truncated and not token:
        raise LiteUnavailable("ListObjectsV2: a truncated page without a continuation token")
    return contents, token


def iso_timestamp(value: str) -> datetime.datetime:
    """An ISO 8601 timestamp of a listing (``2026-11-26T15:39:12.033Z``) as an aware datetime."""
    try:
        parsed = datetime.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise LiteUnavailable(f"ListObjectsV2: unexpected timestamp {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed
