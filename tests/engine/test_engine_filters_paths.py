"""Filters (DataSync patterns over Arrow columns), safe_relpath and redact_uri."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from airflow_datasync.filters import FilterError, compile_filter, keep_mask, pattern_to_regex, split_patterns
from airflow_datasync.locations.base import UnsafePathError, safe_relpath
from airflow_datasync.uri import redact_uri

PATHS = {
    "logs": "dir",
    "logs/a.txt": "file",
    "logs/2026": "dir",
    "logs/2026/b.txt": "file",
    "logs2": "dir",
    "logs2/c.txt": "file",
    "data": "dir",
    "data/logs": "dir",
    "data/logs/d.txt": "file",
    "data/x.tmp": "file",
    "data/x.tmpl": "file",
    "x.tmp": "file",
    "deep/er/still/y.tmp": "file",
    "cache.tmp": "dir",
    "cache.tmp/inner.bin": "file",
    "readme.md": "file",
}


def kept(includes=None, excludes=None, paths=PATHS) -> set[str]:
    names = list(paths)
    mask = keep_mask(pa.array(names), pa.array([paths[n] for n in names]), includes, excludes).to_pylist()
    return {n for n, k in zip(names, mask) if k}


def test_no_filter_keeps_everything():
    assert kept() == set(PATHS)
    assert compile_filter(None) is None


def test_anchored_dir_matches_itself_and_everything_below_only():
    excluded = set(PATHS) - kept(excludes="/logs")
    assert excluded == {"logs", "logs/a.txt", "logs/2026", "logs/2026/b.txt"}
    # Not a prefix match on names (logs2), not at another depth (data/logs).
    assert "logs2/c.txt" in kept(excludes="/logs") and "data/logs/d.txt" in kept(excludes="/logs")


def test_anchored_include_keeps_subtree_and_its_ancestor_dirs():
    assert kept(includes="/data/logs") == {"data", "data/logs", "data/logs/d.txt"}
    # The ancestor directory is kept, its other files are not.
    assert "data/x.tmp" not in kept(includes="/data/logs")


def test_unanchored_glob_matches_at_any_depth():
    excluded = set(PATHS) - kept(excludes="*.tmp")
    assert excluded == {"data/x.tmp", "x.tmp", "deep/er/still/y.tmp", "cache.tmp", "cache.tmp/inner.bin"}
    assert "data/x.tmpl" in kept(excludes="*.tmp")


def test_star_does_not_cross_slashes():
    regex = pattern_to_regex("/logs/*.txt")
    assert re.search(regex, "logs/a.txt")
    assert not re.search(regex, "logs2/a.txt")
    # logs/2026/b.txt does not match "*.txt" directly under logs ("*" stops at "/").
    assert not re.search(regex, "logs/2026/b.txt")


def test_several_patterns_with_pipe():
    assert set(PATHS) - kept(excludes="/logs|*.md") == {"logs", "logs/a.txt", "logs/2026", "logs/2026/b.txt", "readme.md"}
    assert split_patterns(" /a | *.b ") == ["/a", "*.b"]


def test_excludes_win_over_includes():
    assert kept(includes="/logs", excludes="/logs/2026") == {"logs", "logs/a.txt"}
    assert kept(includes="*.tmp", excludes="/data") == {"x.tmp", "deep/er/still/y.tmp", "cache.tmp", "cache.tmp/inner.bin"}


def test_regex_metacharacters_are_literal():
    paths = {"a+b.txt": "file", "aab.txt": "file", "a.b": "file", "axb": "file"}
    assert kept(excludes="a+b.txt", paths=paths) == {"aab.txt", "a.b", "axb"}
    assert kept(excludes="a.b", paths=paths) == {"a+b.txt", "aab.txt", "axb"}


def test_root_pattern_matches_everything():
    assert kept(excludes="/") == set()


@pytest.mark.parametrize("bad", ["a||b", "a|", " | ", "x\x00"])
def test_bad_filter_strings(bad):
    with pytest.raises(FilterError):
        compile_filter(bad)


# -- safe_relpath ----------------------------------------------------------------------------------
# A backslash is an ordinary character (one name on POSIX, S3, Azure); SMB refuses it itself (name_problem).
@pytest.mark.parametrize("good", ["a", "a/b/c.txt", "with space/and\nnewline", "ünï/ç", ".hidden", "a/..b", "...", "a/b..",
                                  "a\\b.txt", "a\\..\\b"])
def test_safe_relpath_accepts_clean_paths(good):
    assert safe_relpath(good) == good


@pytest.mark.parametrize("bad", ["../x", "/abs", "/etc/passwd", "a/../../b", "a/..", "..", ".", "./a", "a/./b",
                                 "a\x00b", "", "a//b", "a/", "/"])
def test_safe_relpath_refuses_escapes(bad):
    with pytest.raises(UnsafePathError):
        safe_relpath(bad)


# -- redact_uri ------------------------------------------------------------------------------------
@pytest.mark.parametrize("uri,expected", [
    ("smb://alice:s3cret@host/share", "smb://***@host/share"),
    ("smb://alice:a%2Fb%40c@host/share", "smb://***@host/share"),
    ("file://user:pw@localhost/tmp/x", "file://***@localhost/tmp/x"),
    ("smb://host/share/a@b", "smb://host/share/a@b"),
    ("/plain/path", "/plain/path"),
    ("file:///tmp/x", "file:///tmp/x"),
    ("smb://bob@host/share", "smb://***@host/share"),
])
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected
    for secret in ("s3cret", ":pw@", "a%2Fb"):
        assert secret not in redact_uri(uri)
