"""plan.diff decisions and assign_shards bounds, on hand-made listings."""

from __future__ import annotations

import pyarrow.compute as pc

from airflow_datasync.options import TaskOptions
from airflow_datasync.plan import assign_shards, diff, estimates

T0 = 1_700_000_000_000_000_000


def f(path, size=10, mtime=T0, mode=0o644, uid=0, gid=0, **kw):
    return {"path": path, "type": "file", "size": size, "mtime_ns": mtime, "atime_ns": mtime, "mode": mode,
            "uid": uid, "gid": gid, **kw}


def d(path, mtime=T0, mode=0o755):
    return {"path": path, "type": "dir", "size": 0, "mtime_ns": mtime, "atime_ns": mtime, "mode": mode, "uid": 0, "gid": 0}


def link(path, target, mtime=T0):
    return {"path": path, "type": "symlink", "size": 0, "mtime_ns": mtime, "atime_ns": mtime, "mode": 0o777,
            "uid": 0, "gid": 0, "link_target": target}


def plan(make_listing, src, dst, **opts):
    out = diff(make_listing(src), make_listing(dst), TaskOptions.from_dict(opts))
    return {r["path"]: (r["action"], r["reason"]) for r in out.to_pylist()}


def actions(p):
    return {k: v[0] for k, v in p.items()}


def test_basic_decisions(make_listing):
    src = [d("dir"), f("dir/new"), f("same"), f("bigger", size=11), f("touched", mtime=T0 + 1),
           f("chmod", mode=0o600), f("chown", uid=1000), d("newdir"), link("l", "same"), link("l2", "new-target"),
           f("now-file")]
    dst = [d("dir"), f("same"), f("bigger"), f("touched"), f("chmod"), f("chown"), link("l", "same"),
           link("l2", "old-target"), d("now-file"), f("only-dst")]
    p = plan(make_listing, src, dst)
    assert p == {
        "dir": ("skip", "exists"),
        "dir/new": ("copy", "new"),
        "same": ("skip", "unchanged"),
        "bigger": ("copy", "size changed"),
        "touched": ("copy", "mtime changed"),
        "chmod": ("meta", "metadata changed"),
        "chown": ("meta", "metadata changed"),
        "newdir": ("mkdir", "new"),
        "l": ("skip", "unchanged"),
        "l2": ("copy", "link target changed"),
        "now-file": ("copy", "type changed"),
    }
    # Without REMOVE, entries only at the destination are left alone and absent from the plan.
    assert "only-dst" not in p


def test_metadata_only_respects_options(make_listing):
    src = [f("chmod", mode=0o600), f("chown", uid=1000, gid=1000)]
    dst = [f("chmod"), f("chown")]
    assert actions(plan(make_listing, src, dst)) == {"chmod": "meta", "chown": "meta"}
    assert actions(plan(make_listing, src, dst, PosixPermissions="NONE", Uid="NONE", Gid="NONE")) == {
        "chmod": "skip", "chown": "skip"}


def test_mtime_none_ignores_mtime_but_not_size(make_listing):
    src = [f("touched", mtime=T0 + 5), f("bigger", size=99)]
    dst = [f("touched"), f("bigger")]
    p = actions(plan(make_listing, src, dst, Mtime="NONE", Atime="NONE"))
    assert p == {"touched": "skip", "bigger": "copy"}


def test_overwrite_never_keeps_existing_but_copies_new(make_listing):
    src = [f("new"), f("bigger", size=11), f("chmod", mode=0o600), f("same")]
    dst = [f("bigger"), f("chmod"), f("same")]
    p = plan(make_listing, src, dst, OverwriteMode="NEVER")
    assert actions(p) == {"new": "copy", "bigger": "skip", "chmod": "skip", "same": "skip"}
    assert p["bigger"][1] == "exists (OverwriteMode=NEVER)"


def test_transfer_mode_all_copies_unchanged_files_but_not_dirs(make_listing):
    src = [d("dir"), f("dir/same"), link("l", "x"), f("new")]
    dst = [d("dir"), f("dir/same"), link("l", "x")]
    p = plan(make_listing, src, dst, TransferMode="ALL")
    assert actions(p) == {"dir": "skip", "dir/same": "copy", "l": "copy", "new": "copy"}
    assert p["dir/same"][1] == "forced (TransferMode=ALL)"


def test_deletes_only_with_remove(make_listing):
    src = [d("keep"), f("keep/a")]
    dst = [d("keep"), f("keep/a"), f("keep/gone"), d("old"), f("old/x"), link("old-link", "/elsewhere")]
    assert actions(plan(make_listing, src, dst)) == {"keep": "skip", "keep/a": "skip"}
    p = plan(make_listing, src, dst, PreserveDeletedFiles="REMOVE")
    assert actions(p) == {"keep": "skip", "keep/a": "skip", "keep/gone": "delete", "old": "delete",
                          "old/x": "delete", "old-link": "delete"}
    assert p["old"][1] == "not in source"


def test_remove_never_deletes_excluded_destination_entries(make_listing):
    src = [f("a")]
    dst = [f("a"), f("b.tmp"), f("c")]
    p = actions(plan(make_listing, src, dst, PreserveDeletedFiles="REMOVE", Excludes="*.tmp"))
    assert p == {"a": "skip", "c": "delete"}


def test_remove_never_deletes_destination_entries_outside_includes(make_listing):
    src = [d("keep"), f("keep/a")]
    dst = [d("keep"), f("keep/a"), f("keep/gone"), d("other"), f("other/x")]
    p = actions(plan(make_listing, src, dst, PreserveDeletedFiles="REMOVE", Includes="/keep"))
    assert p == {"keep": "skip", "keep/a": "skip", "keep/gone": "delete"}


def test_delete_rows_describe_the_destination_entry(make_listing):
    out = diff(make_listing([]), make_listing([f("gone", size=77, mtime=T0 + 9)]),
               TaskOptions.from_dict({"PreserveDeletedFiles": "REMOVE"}))
    row = out.to_pylist()[0]
    assert (row["path"], row["type"], row["size"], row["mtime_ns"], row["action"]) == ("gone", "file", 77, T0 + 9, "delete")


def test_source_error_rows(make_listing):
    src = [f("ok"), {"path": "secret", "type": "other", "error": "cannot stat: Permission denied"},
           {"path": "sub/", "type": "dir", "error": "cannot list directory: Permission denied"}]
    dst = [f("secret")]
    p = plan(make_listing, src, dst, PreserveDeletedFiles="REMOVE")
    assert p["ok"] == ("copy", "new")
    assert p["secret"] == ("error", "cannot stat: Permission denied")
    assert p["sub/"] == ("error", "cannot list directory: Permission denied")
    est = estimates(diff(make_listing(src), make_listing(dst), TaskOptions()))
    assert est["FilesWithErrors"] == 2 and est["EstimatedFilesToTransfer"] == 1


def test_filters_apply_to_plan(make_listing):
    src = [d("logs"), f("logs/a"), f("x.tmp"), f("keep")]
    p = actions(plan(make_listing, src, [], Excludes="/logs|*.tmp"))
    assert p == {"keep": "copy"}


def test_estimates(make_listing):
    src = [d("d"), f("d/a", size=100), f("b", size=5), f("same", size=3), f("m", mode=0o600)]
    dst = [f("same", size=3), f("m"), f("old", size=1000)]
    out = diff(make_listing(src), make_listing(dst), TaskOptions.from_dict({"PreserveDeletedFiles": "REMOVE"}))
    est = estimates(out)
    assert est["EstimatedFilesToTransfer"] == 4  # mkdir d, copy d/a, copy b, meta m
    assert est["EstimatedBytesToTransfer"] == 105
    assert est["EstimatedFilesToDelete"] == 1
    assert est["FilesSkippedEstimate"] == 1
    assert est["FilesPrepared"] == 5


# -- assign_shards ---------------------------------------------------------------------------------
def manifest_of(make_listing, files):
    return diff(make_listing(files), make_listing([]), TaskOptions())


def shard_stats(m):
    rows = [r for r in m.to_pylist() if r["shard"] >= 0]
    stats: dict[int, list] = {}
    for r in rows:
        s = stats.setdefault(r["shard"], [0, 0])
        s[0] += 1
        s[1] += r["size"] if r["action"] == "copy" else 0
    return stats


def test_shards_bounded_by_files(make_listing):
    m, sp = assign_shards(manifest_of(make_listing, [f(f"f{i:02d}", size=1) for i in range(10)]), 3, 10**9, 100)
    stats = shard_stats(m)
    assert sp.count == 4 == len(stats)
    assert [s[0] for s in stats.values()] == [3, 3, 3, 1]


def test_shards_bounded_by_bytes_and_oversized_file_alone(make_listing):
    files = [f("a", size=10), f("b", size=10), f("c", size=10), f("huge", size=1000), f("d", size=10), f("e", size=10)]
    m, sp = assign_shards(manifest_of(make_listing, files), 100, 25, 100)
    by_path = {r["path"]: r["shard"] for r in m.to_pylist()}
    stats = shard_stats(m)
    assert all(nbytes <= 25 for s, (n, nbytes) in stats.items() if s != by_path["huge"])
    assert stats[by_path["huge"]] == [1, 1000]
    assert sp.count == len(stats)
    # Contiguous in path order, every file in exactly one shard.
    assert sorted(by_path) == sorted(p["path"] for p in files)
    assert all(v >= 0 for v in by_path.values())


def test_shard_count_never_above_max_shards(make_listing):
    files = [f(f"f{i:03d}", size=7) for i in range(200)]
    for max_shards in (1, 2, 7, 50, 199):
        m, sp = assign_shards(manifest_of(make_listing, files), 1, 1, max_shards)
        stats = shard_stats(m)
        assert sp.count == len(stats) <= max_shards
        assert sum(n for n, _ in stats.values()) == 200
        assert sp.files_per_shard >= 1 and max(n for n, _ in stats.values()) <= sp.files_per_shard


def test_only_actionable_rows_get_shards(make_listing):
    src = [f("copy-me", size=5), f("same"), d("newdir"), f("m", mode=0o600)]
    dst = [f("same"), f("m"), f("gone")]
    m, sp = assign_shards(diff(make_listing(src), make_listing(dst), TaskOptions.from_dict({"PreserveDeletedFiles": "REMOVE"})),
                          10, 10**9, 10)
    shards = {r["path"]: r["shard"] for r in m.to_pylist()}
    assert shards == {"copy-me": 0, "same": -1, "newdir": 0, "m": 0, "gone": -1}
    assert sp.count == 1


def test_no_work_means_no_shards(make_listing):
    m, sp = assign_shards(diff(make_listing([f("a")]), make_listing([f("a")]), TaskOptions()), 10, 10, 10)
    assert sp.count == 0
    assert pc.all(pc.equal(m["shard"], -1)).as_py()
