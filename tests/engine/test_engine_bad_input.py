"""Bad input is refused clearly and before anything is written."""

from __future__ import annotations

import os

import pytest

from airflow_datasync.engine import LocationSpec, run_execution
from airflow_datasync.locations import LocationError
from airflow_datasync.options import OptionsError


@pytest.fixture
def src(tmp_path, make_tree):
    return make_tree(tmp_path / "src", {"a.txt": "a", "sub": {"b.txt": "b"}})


@pytest.fixture
def dst(tmp_path):
    d = tmp_path / "dst"
    d.mkdir()
    return d


def nothing_written(store, dst):
    assert not store.exists() or not any(store.rglob("*")), list(store.rglob("*"))
    assert not any(dst.iterdir())


def test_missing_source(tmp_path, dst, store):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(LocationError) as info:
        run_execution(str(missing), str(dst), {}, store=str(store))
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)
    nothing_written(store, dst)


def test_missing_destination_parent_refused(tmp_path, src, store):
    missing = tmp_path / "no-parent" / "dst"
    with pytest.raises(LocationError, match="does not exist"):
        run_execution(str(src), str(missing), {}, store=str(store))
    assert not missing.parent.exists()
    assert not store.exists()


def test_missing_destination_with_existing_parent_is_created(tmp_path, src, store):
    dst = tmp_path / "daily"
    summary = run_execution(str(src), str(dst), {}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    assert (dst / "sub" / "b.txt").read_text() == "b"


def test_source_is_a_file(tmp_path, dst, store):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(LocationError, match="not a directory"):
        run_execution(str(f), str(dst), {}, store=str(store))
    nothing_written(store, dst)


@pytest.mark.parametrize("uri", ["relative/path", "file://otherhost/tmp/x", "s3://bucket/key", "", "   "])
def test_unsupported_or_malformed_uris(uri, dst, store):
    with pytest.raises(LocationError):
        run_execution(uri, str(dst), {}, store=str(store))
    nothing_written(store, dst)


def test_file_uri_form_works(src, dst, store):
    summary = run_execution(f"file://{src}", f"file://{dst}", {}, store=str(store))
    assert summary["Status"] == "SUCCESS" and (dst / "sub" / "b.txt").read_text() == "b"


def test_destination_inside_source_refused(src, store):
    inner = src / "sub" / "backup"
    inner.mkdir()
    before = sorted(p.name for p in src.rglob("*"))
    with pytest.raises(LocationError, match="overlap"):
        run_execution(str(src), str(inner), {}, store=str(store))
    assert sorted(p.name for p in src.rglob("*")) == before
    assert not any(inner.iterdir())
    assert not store.exists()


def test_new_destination_inside_source_refused_without_creating_it(src, store, snapshot):
    before = snapshot(src)
    with pytest.raises(LocationError, match="overlap"):
        run_execution(str(src), str(src / "backup"), {}, store=str(store))
    assert snapshot(src) == before
    assert not store.exists()


def test_source_inside_destination_refused(tmp_path, make_tree, store):
    dst = make_tree(tmp_path / "dst", {"keep.txt": "k", "src": {"a": "a"}})
    with pytest.raises(LocationError, match="overlap"):
        run_execution(str(dst / "src"), str(dst), {"PreserveDeletedFiles": "REMOVE"}, store=str(store))
    assert (dst / "keep.txt").read_text() == "k"
    assert not store.exists()


def test_same_directory_refused(src, store):
    with pytest.raises(LocationError, match="overlap"):
        run_execution(str(src), str(src) + "/", {}, store=str(store))


def test_overlap_through_a_symlink_refused(tmp_path, src, store):
    alias = tmp_path / "alias"
    os.symlink(src / "sub", alias)
    with pytest.raises(LocationError, match="overlap"):
        run_execution(str(src), str(alias), {}, store=str(store))
    assert sorted(p.name for p in (src / "sub").iterdir()) == ["b.txt"]


def test_sibling_with_common_prefix_is_not_overlap(tmp_path, src, store):
    sibling = tmp_path / "src-copy"  # starts with "src" but is not inside it
    sibling.mkdir()
    assert run_execution(str(src), str(sibling), {}, store=str(store))["Status"] == "SUCCESS"
    assert (sibling / "a.txt").read_text() == "a"


@pytest.mark.parametrize("template", [
    "file://alice:{pw}@localhost{path}",
    "smb://alice:{pw}@fileserver/share",
    "s3://AKIAEXAMPLE:{pw}@bucket/prefix",
])
@pytest.mark.parametrize("side", ["source", "destination"])
def test_password_in_uri_refused_and_never_written(tmp_path, src, dst, store, store_bytes, template, side, caplog):
    # A real execution first, so the store holds records that a leak could end up in.
    other = tmp_path / "other"
    other.mkdir()
    assert run_execution(str(src), str(other), {}, store=str(store))["Status"] == "SUCCESS"
    files_before = sorted(store.rglob("*"))
    pw = "Sup3rS3cretPassw0rd"
    uri = template.format(pw=pw, path=src if side == "source" else dst)
    args = (uri, str(dst)) if side == "source" else (str(src), uri)
    with pytest.raises(LocationError) as info:
        run_execution(*args, {}, store=str(store))
    assert pw not in str(info.value)
    assert "conn_id" in str(info.value)
    assert pw not in caplog.text
    assert sorted(store.rglob("*")) == files_before
    assert pw.encode() not in store_bytes(store)
    assert not any(dst.iterdir())


def test_location_spec_keeps_a_user_without_password(src):
    """A user name is no secret, and later phases reopen the location from the record, so it is kept."""
    spec = LocationSpec("smb://alice@host/share")
    assert spec.to_dict() == {"uri": "smb://alice@host/share", "conn_id": None}


@pytest.mark.parametrize("options,name", [
    ({"PreserveDeletedFiles": "REMOVE", "TransferMode": "ALL"}, "TransferMode"),
    ({"Atime": "BEST_EFFORT", "Mtime": "NONE"}, "Mtime"),
    ({"VerifyMode": "SOMETIMES"}, "VerifyMode"),
    ({"Bogus": 1}, "Bogus"),
    ({"Excludes": "a||b"}, "Excludes"),
    ({"BytesPerSecond": 0}, "BytesPerSecond"),
])
def test_invalid_options_refused_before_anything_is_written(src, dst, store, options, name):
    with pytest.raises(OptionsError, match=name):
        run_execution(str(src), str(dst), options, store=str(store))
    nothing_written(store, dst)


def test_invalid_options_checked_even_when_locations_are_bad(tmp_path, store):
    # Options are validated first, so a bad option is reported even if the paths are also wrong.
    with pytest.raises(OptionsError, match="OverwriteMode"):
        run_execution(str(tmp_path / "nope"), str(tmp_path / "nope2"), {"OverwriteMode": "SOMETIMES"}, store=str(store))


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 200])
def test_bad_task_name_refused(src, dst, store, name):
    with pytest.raises(ValueError, match="task name"):
        run_execution(str(src), str(dst), {}, store=str(store), task_name=name)
    assert not (store.parent / "escape").exists()
    assert not any(dst.iterdir())
