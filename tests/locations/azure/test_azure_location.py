"""What is specific to Azure Blob Storage, against Azurite: block commits with a veto, metadata names as the
service stores them, pinned reads, markers, and the error table. The contract every backend keeps is
tested once for all in the conformance suite."""

from __future__ import annotations

import os

import pytest

from airflow_datasync.errors import (
    AlreadyExistsError,
    ChangedSinceListingError,
    DirectoryNotEmptyError,
    LocationError,
    NotFoundError,
    UnsafePathError,
)
from airflow_datasync.locations import open_location
from airflow_datasync.locations.azure import AZURE_METADATA
from airflow_datasync.locations.azure.errors import to_location_error
from airflow_datasync.locations.base import Metadata, StatResult, Written

MIB = 1 << 20
NS = 1_700_000_000_123_456_789


@pytest.fixture
def small_blocks(azure_container):
    """A location whose blobs above 1 MiB are staged as 1 MiB blocks: the block path on small data."""
    return open_location(azure_container.uri("root?block_size=1MiB&block_concurrency=3"), azure_container.conn_id)


def _names(container) -> list[str]:
    return sorted(b.name for b in container.client.list_blobs())


class Veto(Exception):
    pass


def _veto(size: int) -> None:
    raise Veto(size)


@pytest.mark.parametrize("size", [10, 5 * MIB + 7], ids=["put-blob", "staged-blocks"])
def test_a_vetoed_commit_leaves_nothing_visible(small_blocks, azure_container, size):
    data = os.urandom(size)
    with pytest.raises(Veto) as caught:
        small_blocks.write("f.bin", iter([data[i:i + 256 * 1024] for i in range(0, size, 256 * 1024)]),
                           Metadata(mtime_ns=NS), tag="t", before_commit=_veto)
    assert caught.value.args == (size,)  # called with every byte staged, before the commit
    assert _names(azure_container) == [] and small_blocks.stat("f.bin") is None
    # The staged blocks stay uncommitted (the service discards them): listing with them shows no data.
    uncommitted = list(azure_container.client.list_blobs(include=["uncommittedblobs"]))
    assert all(b.size == 0 for b in uncommitted)


def test_staged_blocks_are_committed_whole_with_their_metadata(small_blocks, azure_container):
    data = os.urandom(3 * MIB + 5)
    seen = []
    written = small_blocks.write("big.bin", iter([data[:MIB // 3], data[MIB // 3:]]), Metadata(mtime_ns=NS, mode=0o600),
                                 tag="t", before_commit=seen.append)
    assert seen == [len(data)] and isinstance(written, Written) and written.size == len(data)
    blob = azure_container.client.get_blob_client("root/big.bin")
    assert [b.size for b in blob.get_block_list("committed")[0]] == [MIB, MIB, MIB, 5]
    assert blob.download_blob().readall() == data
    props = blob.get_blob_properties()
    assert props.etag == written.etag and props.metadata["ds_mtime_ns"] == str(NS) and props.metadata["ds_mode"] == "600"


@pytest.mark.parametrize("size", [3, 2 * MIB], ids=["put-blob", "staged-blocks"])
def test_never_overwrite_is_a_conditional_commit(small_blocks, azure_container, size):
    small_blocks.write("x", iter([b"first"]), Metadata(), tag="t")
    with pytest.raises(AlreadyExistsError):
        small_blocks.write("x", iter([os.urandom(size)]), Metadata(), tag="t", overwrite=False)
    assert azure_container.client.get_blob_client("root/x").download_blob().readall() == b"first"


def test_metadata_names_are_identifiers_and_round_trip(azure_container):
    loc = open_location(azure_container.uri("m"), azure_container.conn_id)
    meta = Metadata(mtime_ns=NS, atime_ns=NS - 5, mode=0o4751, uid=1001, gid=50, user_name="émile", group_name="staff x")
    loc.write("f", iter([b"data"]), meta, tag="t")
    stored = azure_container.client.get_blob_client("m/f").get_blob_properties().metadata
    assert stored == {"ds_mtime_ns": str(NS), "mtime": "2023-11-14T22:13:20.123456789Z", "ds_atime_ns": str(NS - 5),
                      "ds_mode": "4751", "ds_uid": "1001", "ds_gid": "50", "ds_user": "%C3%A9mile",
                      "ds_group": "staff%20x"}
    got = loc.stat("f")
    assert (got.type, got.size, got.mtime_ns, got.atime_ns, got.mode, got.uid, got.gid, got.user_name, got.group_name) == (
        "file", 4, NS, NS - 5, 0o4751, 1001, 50, "émile", "staff x")
    [listed] = [row for batch in loc.scan() for row in batch.to_pylist()]
    assert (listed["mtime_ns"], listed["mode"], listed["uid"], listed["etag"]) == (NS, 0o4751, 1001, got.etag)


def test_blobs_other_tools_wrote(azure_container):
    """No ds_* metadata: rclone's mtime where it wrote one, else Last-Modified; their metadata is an extra."""
    azure_container.client.upload_blob("o/rclone.txt", b"r", metadata={"mtime": "2024-02-03T04:05:06.5Z", "Owner": "a"})
    azure_container.client.upload_blob("o/plain.txt", b"p")
    loc = open_location(azure_container.uri("o"), azure_container.conn_id)
    rclone, plain = loc.stat("rclone.txt"), loc.stat("plain.txt")
    assert rclone.mtime_ns == 1706933106_500000000 and rclone.mode is None
    assert dict(rclone.extras) == {AZURE_METADATA: {"Owner": "a"}}
    last_modified = azure_container.client.get_blob_client("o/plain.txt").get_blob_properties().last_modified
    assert plain.mtime_ns == int(last_modified.timestamp()) * 1_000_000_000 and not plain.extras


def test_other_metadata_travels_as_an_extra_and_set_metadata_keeps_it(azure_container):
    loc = open_location(azure_container.uri("e"), azure_container.conn_id)
    loc.write("f", iter([b"x"]), Metadata(mtime_ns=1, extras={AZURE_METADATA: {"project": "p1", "ds_mode": "777"}}), tag="t")
    assert dict(loc.stat("f").extras) == {AZURE_METADATA: {"project": "p1"}}  # ours are never taken from an extra
    assert loc.set_metadata("f", Metadata(mtime_ns=2, mode=0o644)) == []
    after = loc.stat("f")
    assert (after.mtime_ns, after.mode, dict(after.extras)) == (2, 0o644, {AZURE_METADATA: {"project": "p1"}})
    loc.set_metadata("f", Metadata(mtime_ns=3, extras={AZURE_METADATA: {"team": "t"}}))
    assert dict(loc.stat("f").extras) == {AZURE_METADATA: {"team": "t"}}  # the source's own replace this blob's


def test_directories_are_markers_and_symlinks_are_marked_blobs(azure_container):
    loc = open_location(azure_container.uri("d"), azure_container.conn_id)
    loc.mkdir("dir", Metadata(mtime_ns=NS, mode=0o750))
    loc.symlink("dir/link", "../target", Metadata(mtime_ns=NS), tag="t")
    assert _names(azure_container) == ["d/dir/", "d/dir/link"]
    assert loc.stat("dir") == StatResult("dir", 0, NS, mode=0o750, etag=loc.stat("dir").etag)
    link = loc.stat("dir/link")
    assert (link.type, link.size, link.link_target) == ("symlink", 0, "../target")
    with pytest.raises(DirectoryNotEmptyError):
        loc.delete("dir", is_dir=True)
    loc.delete("dir/link", is_dir=False)
    loc.delete("dir", is_dir=True)
    loc.delete("dir", is_dir=True)  # gone already: what was asked
    assert _names(azure_container) == []


def test_a_pinned_read_refuses_a_newer_version(azure_container):
    loc = open_location(azure_container.uri("v"), azure_container.conn_id)
    first = loc.write("f", iter([b"one"]), Metadata(mtime_ns=5, mode=0o640), tag="t")
    stream, stat = loc.open_version("f", first.etag)
    assert stream.read() == b"one" and (stat.mtime_ns, stat.mode, stat.etag) == (5, 0o640, first.etag)
    loc.write("f", iter([b"two"]), Metadata(), tag="t")
    with pytest.raises(ChangedSinceListingError, match="changed at the source since PREPARING"):
        loc.open_version("f", first.etag)
    with pytest.raises((NotFoundError, ChangedSinceListingError)):  # Azurite answers 412 for a missing blob
        loc.open_version("missing", first.etag)
    with pytest.raises(NotFoundError):
        loc.open_read("missing")


def test_a_large_pinned_read_streams_in_pieces(azure_container):
    loc = open_location(azure_container.uri("r"), azure_container.conn_id)
    data = os.urandom(9 * MIB + 1)
    written = loc.write("f", iter([data]), Metadata(), tag="t")
    stream, _ = loc.open_version("f", written.etag)
    pieces = list(iter(lambda: stream.read(8 * MIB), b""))  # the SDK's GETs are 4 MiB each: never 8 at once
    assert b"".join(pieces) == data and len(pieces) > 2 and max(map(len, pieces)) <= 4 * MIB


@pytest.mark.parametrize("path", ["../x", "/abs", "a//b", "a/./b", "nul\x00", "trailing./x", "dot."])
def test_names_azure_cannot_hold_are_refused_before_any_request(path):
    # No connection exists for this id: the refusal comes before the client is even built.
    loc = open_location("azure://container/p", "no_such_connection")
    with pytest.raises(UnsafePathError):
        loc.stat(path)
    with pytest.raises(UnsafePathError):
        loc.write(path, iter([b"x"]), Metadata(), tag="t")


def test_the_probe_of_a_check_is_never_listed(azure_container):
    loc = open_location(azure_container.uri("c"), azure_container.conn_id)
    azure_container.client.upload_blob("c/.~ds-probe-1-2", b"")
    azure_container.client.upload_blob("c/sub/.~ds-left", b"")
    assert loc.check(writable=True)
    assert [row["path"] for batch in loc.scan() for row in batch.to_pylist()] == []


def test_the_error_table_reads_codes_then_statuses():
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    class Response:
        def __init__(self, status: int, code: str | None) -> None:
            self.status_code, self.reason, self.headers = status, "Reason", ({"x-ms-error-code": code} if code else {})
            self.request = None

        def text(self, *args) -> str:
            return ""

    def mapped(status: int, code: str | None, **kwargs) -> LocationError:
        error = HttpResponseError(response=Response(status, code))
        error.error_code = code
        return to_location_error(error, "azure://c/p", **kwargs)

    assert type(mapped(404, "BlobNotFound")) is NotFoundError
    assert type(mapped(409, "BlobAlreadyExists")) is AlreadyExistsError
    assert type(mapped(412, "ConditionNotMet", precondition=ChangedSinceListingError)) is ChangedSinceListingError
    assert type(mapped(412, None)) is AlreadyExistsError
    assert mapped(503, "ServerBusy").retryable and mapped(500, None).retryable
    assert not mapped(403, "AuthorizationFailure").retryable
    lost = to_location_error(ServiceRequestError("refused: GET /c?sv=1&sig=SECRETSIG"), "azure://c/p")
    assert lost.retryable and "SECRETSIG" not in str(lost) and "sig=***" in str(lost)
