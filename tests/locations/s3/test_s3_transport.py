"""The S3 transport (``locations/s3/transport.py`` over ``sigv4.py``): exact against boto3 on a real
S3-compatible server, signed as AWS's own SigV4 example, errors in the vocabulary; and the one fallback
(boto3, for connections the SigV4 client cannot reproduce) serving the same operations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_datasync.errors import (
    ConnectionLostError,
    NotFoundError,
    PermissionDeniedError,
)
from airflow_datasync.locations import open_location
from airflow_datasync.locations.s3.sigv4 import EMPTY_SHA256, SigV4Client, parse_listing
from tests.locations.s3.conftest import CONN_ID, s3_requests

ROOT = Path(__file__).resolve().parents[3]
ODD = ["f0", "with space/50% off+plus#hash&amp;.txt", "naïve café/日本語 ✓.txt", "tab\tname", "<lt>", "q?x=1&y=2",
       "semi;colon,comma=eq@at!bang'quote(paren)*star~tilde"]


def test_signature_matches_aws_sigv4_example():
    """AWS's documented example (GET /test.txt with a Range header, 2013-05-24, us-east-1)."""
    client = SigV4Client(None, "us-east-1", lambda: ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None))
    signed = client._sign("GET", "examplebucket.s3.amazonaws.com", "/test.txt", "", {"range": "bytes=0-9"},
                          EMPTY_SHA256, "us-east-1", amz_date="20130524T000000Z")
    assert signed["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_listing_page_parsing_decodes_keys_and_refuses_what_it_does_not_know():
    page = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated><NextContinuationToken>tok+/=</NextContinuationToken>"
            b"<Contents><Key>a+b%2Bc%25d/</Key><Size>0</Size><ETag>&quot;x&quot;</ETag>"
            b"<LastModified>2026-11-26T15:39:12.033Z</LastModified><StorageClass>STANDARD</StorageClass></Contents>"
            b"</ListBucketResult>")
    parsed = parse_listing(page)
    contents, token = parsed.contents, parsed.next_token
    assert token == "tok+/=" and contents[0]["Key"] == "a b+c%d/" and contents[0]["ETag"] == '"x"'
    assert contents[0]["LastModified"].isoformat() == "2026-11-26T15:39:12.033000+00:00"
    for bad in (b"<Error><Code>InternalError</Code></Error>", page[:-20],
                page.replace(b"<NextContinuationToken>tok+/=</NextContinuationToken>", b"")):
        assert parse_listing(bad) is None


def _listing_xml(entries: list[bytes], *, url: bool = True, truncated: bool = False) -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Name>b</Name><Prefix>p/</Prefix>" + (b"<EncodingType>url</EncodingType>" if url else b"")
            + b"<IsTruncated>" + (b"true</IsTruncated><NextContinuationToken>t</NextContinuationToken>" if truncated
                                  else b"false</IsTruncated>")
            + b"".join(b"<Contents>" + e + b"</Contents>" for e in entries)
            + b"<CommonPrefixes><Prefix>p/sub/</Prefix></CommonPrefixes></ListBucketResult>")


def test_listing_pages_read_by_expression_equal_the_element_tree_reading():
    """The objects of a page are read by regular expressions, not a tree: whatever the order of an entry's
    fields, nested or missing ones, entities, mixed entry shapes or pretty-printing, the page equals what
    ElementTree reads of it; what the expressions do not expect goes to ElementTree, and an incomplete page
    is refused either way."""
    from airflow_datasync.locations.s3.sigv4 import _parse_listing_tree

    aws = (b"<Key>p/a%%20b+c</Key><LastModified>2026-11-26T15:39:12.033Z</LastModified><ETag>&quot;%s&quot;</ETag>"
           b"<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><Size>%d</Size>"
           b"<Owner><ID>o</ID><DisplayName>d</DisplayName></Owner><StorageClass>STANDARD</StorageClass>")
    seaweed = b"<Key>p/%s</Key><ETag>&#34;e&#34;</ETag><Size>%d</Size><StorageClass>STANDARD</StorageClass>" \
              b"<LastModified>2026-12-02T05:31:58Z</LastModified>"
    pages = {
        "AWS's order": _listing_xml([aws % (b"e" * 32, i) for i in range(5)], truncated=True),
        "SeaweedFS's order": _listing_xml([seaweed % (b"f%d" % i, i) for i in range(5)]),
        "entities, no URL encoding": _listing_xml([b"<Key>p/&lt;x&gt; &amp; &#233;&#x263A;&apos;</Key>"
                                                   b"<LastModified>2026-12-02T05:31:58Z</LastModified><Size>1</Size>"],
                                                  url=False),
        "mixed shapes": _listing_xml([seaweed % (b"a", 1), b"<Key>p/b</Key><LastModified>2026-12-02T05:31:58Z"
                                      b"</LastModified>", b"<Size>3</Size><Key>p/c</Key><LastModified>2026-12-02T05:31:58Z"
                                      b"</LastModified><ETag>&quot;x&quot;</ETag>"]),
        "pretty-printed": _listing_xml([b"\n  <Key>p/k</Key>\n  <LastModified>2026-12-02T05:31:58Z</LastModified>\n"
                                        b"  <Owner>\n    <ID>o</ID>\n  </Owner>\n  <Size>7</Size>\n"] * 2),
        "CDATA": _listing_xml([b"<Key><![CDATA[p/<cdata>]]></Key><LastModified>2026-12-02T05:31:58Z</LastModified>"],
                              url=False),
        "a comment": _listing_xml([b"<!-- x --><Key>p/k</Key><LastModified>2026-12-02T05:31:58Z</LastModified>"]),
        "an empty key": _listing_xml([b"<Key></Key><LastModified>2026-12-02T05:31:58Z</LastModified>"]),
        "no objects": _listing_xml([]),
    }
    for what, page in pages.items():
        ours, tree = parse_listing(page), _parse_listing_tree(page)
        assert ours is not None and ours == tree, what
    assert parse_listing(pages["AWS's order"]).contents[0]["Key"] == "p/a b c"
    assert parse_listing(pages["entities, no URL encoding"]).contents[0]["Key"] == "p/<x> & \u00e9\u263a'"
    assert parse_listing(pages["CDATA"]).contents[0]["Key"] == "p/<cdata>"
    assert [c["Size"] for c in parse_listing(pages["mixed shapes"]).contents] == [1, 0, 3]
    complete = pages["SeaweedFS's order"]
    for bad in (complete[:-20], complete[:complete.rfind(b"</Contents>")],
                _listing_xml([b"<Key>p/no-time</Key><Size>1</Size>"]),
                _listing_xml([b"<Key>p/k</Key><LastModified>not a time</LastModified>"])):
        assert parse_listing(bad) is None and _parse_listing_tree(bad) is None


def test_transport_lists_and_heads_exactly_like_boto3(s3, bucket):
    for i, name in enumerate(ODD):
        s3.put_object(Bucket=bucket, Key=f"data/{name}", Body=b"x" * i, ChecksumAlgorithm="CRC64NVME",
                      Metadata={"ds-mtime-ns": str(1_600_000_000_000_000_000 + i), "Other-Tool": "kept"})
    s3.put_object(Bucket=bucket, Key="data/dir/", Body=b"")
    loc = open_location(f"s3://{bucket}/data", CONN_ID)
    transport = loc.transport
    with s3_requests() as sent:
        # Pages of two keys: continuation tokens carried across, every key decoded exactly.
        keys, token = [], None
        while True:
            page = transport.list_page(bucket, "data/", token, max_keys=2)
            keys += [(c["Key"], c["Size"], c["ETag"], c["LastModified"]) for c in page.contents]
            if page.next_token is None:
                break
            token = page.next_token
        heads = {key: loc._head(key) for key, *_ in keys}
        missing = loc._head("data/no such key")
    assert sent.count("ListObjectsV2") == 4 and sent.count("HeadObject") == len(ODD) + 2
    plain = s3.list_objects_v2(Bucket=bucket, Prefix="data/")["Contents"]
    assert keys == [(o["Key"], o["Size"], o["ETag"], o["LastModified"]) for o in plain]
    assert sorted(k[5:] for k, *_ in keys) == sorted(ODD + ["dir/"])
    assert missing is None
    for key, ours in heads.items():
        theirs = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        for field in ("ContentLength", "ETag", "LastModified", "Metadata", "ChecksumCRC64NVME", "ChecksumType"):
            assert ours.get(field) == theirs.get(field), (key, field)
    assert heads["data/f0"]["Metadata"] == {"ds-mtime-ns": "1600000000000000000", "other-tool": "kept"}
    # A range GET says what a HEAD says (the whole object's size) and returns the range.
    head, body = transport.get(bucket, "data/" + ODD[3], byte_range=(1, 2))
    with body:
        assert body.read() == b"xx" and head["ContentLength"] == 3


def test_errors_are_the_vocabulary_by_s3_code(s3_server, s3, bucket, monkeypatch):
    """A missing bucket, a wrong secret and a server that is not there: each the vocabulary's error, the
    transient one after the retries, and the message says what is wrong."""
    from airflow_datasync.locations.s3.transport import SigV4Transport
    from tests.servers import free_port

    keys = lambda: (s3_server.access_key, s3_server.secret_key, None)  # noqa: E731
    transport = SigV4Transport(SigV4Client(s3_server.endpoint, s3_server.region, keys))
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        transport.list_page("no-such-bucket-here", "")
    with pytest.raises(NotFoundError):
        transport.get(bucket, "nothing/here")
    wrong = SigV4Transport(SigV4Client(s3_server.endpoint, s3_server.region,
                                       lambda: (s3_server.access_key, "wrong-secret", None)))
    with pytest.raises(PermissionDeniedError, match="secret key is wrong|AccessDenied"):
        wrong.list_page(bucket, "")
    from airflow_datasync import retry

    monkeypatch.setattr(retry.time, "sleep", lambda _s: None)  # the pauses, not the attempts, are skipped
    gone = SigV4Transport(SigV4Client(f"http://127.0.0.1:{free_port()}", "us-east-1", keys))
    sent: list[str] = []
    gone.observers.append(sent.append)
    with pytest.raises(ConnectionLostError):
        gone.head(bucket, "k")
    assert sent == ["HeadObject"] * 4


def test_connections_the_sigv4_client_cannot_reproduce_go_through_boto3(tmp_path, s3, s3_server, bucket,
                                                                         monkeypatch):
    """The one fallback: a connection with a botocore S3 option of its own is served by boto3, behind the
    same transport interface, for a whole execution (multipart, markers, verify)."""
    from airflow_datasync.engine import LocationSpec, run_execution
    from airflow_datasync.locations.s3 import settings as s3settings
    from airflow_datasync.locations.s3.boto_transport import BotoTransport

    conn = json.loads(s3_server.connection_uri_json())
    conn["extra"]["config_kwargs"] = {"s3": {"addressing_style": "path", "payload_signing_enabled": True}}
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_BOTO_ONLY", json.dumps(conn))
    monkeypatch.setattr(s3settings, "_CACHE", {})
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "small.txt").write_text("through boto3")
    from airflow_datasync.locations.s3 import MULTIPART_THRESHOLD

    big = os.urandom(MULTIPART_THRESHOLD + 5)
    (src / "big.bin").write_bytes(big)
    transport = s3settings.settings_for("datasync_boto_only").transport
    assert isinstance(transport, BotoTransport)
    with s3_requests("datasync_boto_only") as sent:
        summary = run_execution(str(src), LocationSpec(f"s3://{bucket}/boto", "datasync_boto_only"), {},
                                store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS" and summary["FilesVerified"] == 2, summary
    assert "CompleteMultipartUpload" in sent and "PutObject" in sent, sent
    assert s3.get_object(Bucket=bucket, Key="boto/big.bin")["Body"].read() == big
    back = tmp_path / "back"
    assert run_execution(LocationSpec(f"s3://{bucket}/boto", "datasync_boto_only"), str(back), {},
                         store=str(tmp_path / "store"))["Status"] == "SUCCESS"
    assert (back / "d" / "small.txt").read_text() == "through boto3" and (back / "big.bin").read_bytes() == big
    with pytest.raises(NotFoundError, match="bucket does not exist"):
        transport.list_page("no-such-bucket-here", "")


@pytest.mark.parametrize("credentials", ["environment", "connection"])
def test_runs_with_plain_credentials_never_import_boto3(tmp_path, s3_server, bucket, credentials):
    """A first run (files, directory markers, verify) and a re-run, with a key pair in the environment or in
    a plain Airflow AWS connection: the SigV4 transport does it all, so the cost of importing boto3
    and building a client is never paid."""
    src = tmp_path / "src"
    for rel in ("a.txt", "d/b.txt", "d/e/c.txt"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    env.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "no-config"))
    if credentials == "environment":
        env.update(AWS_ACCESS_KEY_ID=s3_server.access_key, AWS_SECRET_ACCESS_KEY=s3_server.secret_key,
                   AWS_ENDPOINT_URL=s3_server.endpoint, AWS_DEFAULT_REGION=s3_server.region)
        conn = "None"
    else:
        env["AIRFLOW_CONN_PLAIN_S3"] = s3_server.connection_uri_json()
        conn = "'plain_s3'"
    script = (
        "import json, sys\n"
        "from airflow_datasync.engine import LocationSpec, run_execution\n"
        f"dst = LocationSpec(sys.argv[2], {conn})\n"
        "runs = [run_execution(sys.argv[1], dst, {}, store=sys.argv[3]) for _ in range(2)]\n"
        "print(json.dumps({'boto': sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')),\n"
        "                  'runs': [(r['Status'], r['FilesTransferred'], r['FilesVerified']) for r in runs]}))\n")
    out = subprocess.run([sys.executable, "-c", script, str(src), f"s3://{bucket}/env", str(tmp_path / "store")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["runs"] == [["SUCCESS", 5, 3], ["SUCCESS", 0, 0]], result  # 3 files and 2 directories
    assert result["boto"] == [], result


def test_only_plain_connections_skip_the_amazon_providers_hook(s3_server, monkeypatch):
    from airflow_datasync.locations.s3.settings import _simple_connection

    plain = json.loads(s3_server.connection_uri_json())
    variants = {
        "plain": plain,
        "addressing": {**plain, "extra": {**plain["extra"], "config_kwargs": {"s3": {"addressing_style": "path"}}}},
        "role": {**plain, "extra": {**plain["extra"], "role_arn": "arn:aws:iam::123456789012:role/x"}},
        "profile": {**plain, "extra": {**plain["extra"], "profile_name": "other"}},
        "per_service": {**plain, "extra": {"service_config": {"s3": {"endpoint_url": s3_server.endpoint}}}},
        "retries": {**plain, "extra": {**plain["extra"], "config_kwargs": {"retries": {"max_attempts": 9}}}},
        "no_key": {**plain, "login": None, "password": None},
    }
    for name, conn in variants.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_V_{name.upper()}", json.dumps(conn))
    settings = _simple_connection("v_plain")
    assert settings is not None and settings.endpoint_url == s3_server.endpoint and settings.region == s3_server.region
    assert settings.signs_itself and _simple_connection("v_addressing") is not None
    for name in ("role", "profile", "per_service", "retries", "no_key"):
        assert _simple_connection(f"v_{name}") is None, name


def test_a_connection_the_hook_must_read_still_works(tmp_path, s3, s3_server, bucket, monkeypatch):
    """The endpoint only in ``service_config.s3`` (read by the Amazon provider's hook, not by the plain path)."""
    from airflow_datasync.engine import LocationSpec, run_execution
    from airflow_datasync.locations.s3 import settings as s3settings

    conn = json.loads(s3_server.connection_uri_json())
    conn["extra"] = {"region_name": s3_server.region, "service_config": {"s3": {"endpoint_url": s3_server.endpoint}}}
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_PER_SERVICE", json.dumps(conn))
    monkeypatch.setattr(s3settings, "_CACHE", {})
    src = tmp_path / "src"
    src.mkdir()
    (src / "hook.txt").write_text("through the hook")
    summary = run_execution(str(src), LocationSpec(f"s3://{bucket}/hook", "datasync_per_service"), {},
                            store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS", summary
    assert s3.get_object(Bucket=bucket, Key="hook/hook.txt")["Body"].read() == b"through the hook"
    assert s3settings._CACHE["datasync_per_service"][1]._session is not None  # the hook's boto3 session


def test_multipart_uploads_carry_the_full_object_crc(tmp_path, s3, bucket):
    """Parts signed with UNSIGNED-PAYLOAD and protected by their CRC64NVME, completed with the whole
    object's CRC; OverwriteMode=NEVER is a conditional completion that leaves the first object alone."""
    from airflow_datasync import checksum
    from airflow_datasync.locations.base import Metadata
    from airflow_datasync.locations.s3 import MULTIPART_THRESHOLD

    data = os.urandom(2 * MULTIPART_THRESHOLD + 12345)
    loc = open_location(f"s3://{bucket}/mp", CONN_ID)
    chunks = [data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    with s3_requests() as sent:
        assert loc.write("big.bin", iter(chunks), Metadata(mtime_ns=1_600_000_000_000_000_000), tag="t").size == len(data)
    assert sent == ["CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart", "CompleteMultipartUpload"]
    head = s3.head_object(Bucket=bucket, Key="mp/big.bin", ChecksumMode="ENABLED")
    whole = checksum.new_hasher()
    whole.update(data)
    assert head["ChecksumCRC64NVME"] == whole.base64() and head["Metadata"]["ds-mtime-ns"] == "1600000000000000000"
    assert s3.get_object(Bucket=bucket, Key="mp/big.bin")["Body"].read() == data
    with pytest.raises(FileExistsError):
        loc.write("big.bin", iter([os.urandom(MULTIPART_THRESHOLD + 1)]), Metadata(), tag="t", overwrite=False)
    assert s3.get_object(Bucket=bucket, Key="mp/big.bin")["Body"].read() == data
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_s3_to_s3_copies_are_server_side(tmp_path, s3, bucket):
    """HEAD + CopyObject per object (pinned to the listed ETag, metadata replaced with ours plus the
    source's own), no byte through this process; the copies keep bytes, user metadata and tags."""
    from airflow_datasync.engine import LocationSpec, run_execution
    for i, name in enumerate(["a.txt", "dir/b.txt", "odd name+%.txt"]):
        s3.put_object(Bucket=bucket, Key=f"src/{name}", Body=f"object {i}".encode(), Metadata={"owner": "team-x"},
                      Tagging="k=v")
    with s3_requests() as sent:
        summary = run_execution(LocationSpec(f"s3://{bucket}/src", CONN_ID), LocationSpec(f"s3://{bucket}/dst", CONN_ID),
                                {"ObjectTags": "PRESERVE"}, store=str(tmp_path / "store"))
    assert summary["Status"] == "SUCCESS" and summary["FilesTransferred"] == 3, summary
    assert sent.count("CopyObject") == 3 and "GetObject" not in sent, sent
    assert sent.count("PutObject") == 1, sent  # LAUNCHING's write probe: no object's bytes go through here
    for i, name in enumerate(["a.txt", "dir/b.txt", "odd name+%.txt"]):
        got = s3.get_object(Bucket=bucket, Key=f"dst/{name}")
        assert got["Body"].read() == f"object {i}".encode() and got["Metadata"]["owner"] == "team-x"
        assert "ds-mtime-ns" in got["Metadata"]
        assert s3.get_object_tagging(Bucket=bucket, Key=f"dst/{name}")["TagSet"] == [{"Key": "k", "Value": "v"}]


def test_addresses_follow_the_settings_and_bucket_names():
    creds = lambda: ("k", "s", None)  # noqa: E731
    aws = SigV4Client(None, "eu-west-1", creds)
    assert aws.address("my-bucket", "a b/c+d.txt") == ("my-bucket.s3.eu-west-1.amazonaws.com", "/a%20b/c%2Bd.txt")
    assert aws.address("dotted.bucket", "k") == ("s3.eu-west-1.amazonaws.com", "/dotted.bucket/k")  # TLS-safe
    assert SigV4Client(None, "eu-west-1", creds, addressing_style="path").address("my-bucket", "k") == (
        "s3.eu-west-1.amazonaws.com", "/my-bucket/k")
    store = SigV4Client("http://127.0.0.1:9000/base/", "us-east-1", creds)
    assert store.address("b", "x/ü~") == ("127.0.0.1:9000", "/base/b/x/%C3%BC~") and store.address("b", "") == (
        "127.0.0.1:9000", "/base/b")
    virtual = SigV4Client("https://minio.example:9000", "us-east-1", creds, addressing_style="virtual")
    assert virtual.address("bkt", "k") == ("bkt.minio.example:9000", "/k")


def test_a_server_closing_kept_alive_connections_costs_a_retry_not_an_error(s3, bucket):
    s3.put_object(Bucket=bucket, Key="data/a.txt", Body=b"a")
    loc = open_location(f"s3://{bucket}/data", CONN_ID)
    transport = loc.transport
    assert transport.head(bucket, "data/a.txt")["ContentLength"] == 1
    for conns in transport.client._pool.values():  # what an idle timeout at the server does to the pool
        for conn in conns:
            conn.sock.shutdown(2)
    assert transport.head(bucket, "data/a.txt")["ContentLength"] == 1
