"""ManifestConfig in the native engine: only the listed files are stat'ed and copied, bad rows are reported
one by one, and the source is never listed (real local trees, real engine runs)."""

from __future__ import annotations

import pytest

from airflow_datasync import engine
from airflow_datasync.engine import run_execution
from airflow_datasync.locations.local import LocalLocation
from airflow_datasync.options import OptionsError, TaskOptions


def _many_files(make_tree, root):
    spec = {f"f{i:03d}.txt": f"file {i}" for i in range(60)}
    spec["deep"] = {"er": {"x.csv": "x,1", "y.csv": "y,2"}, "z.bin": b"\0" * 100}
    spec["folder"] = {"inside.txt": "in"}
    return make_tree(root, spec)


def _manifest(tmp_path, lines: list[str]) -> str:
    path = tmp_path / "lists" / "manifest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _config(uri: str, conn_id: str | None = None) -> dict:
    return {"Action": "TRANSFER", "Format": "CSV", "Source": {"Uri": uri, **({"ConnId": conn_id} if conn_id else {})}}


def test_only_the_listed_files_are_copied_without_listing_the_source(tmp_path, make_tree, store, report_rows,
                                                                     monkeypatch):
    src = _many_files(make_tree, tmp_path / "src")
    dst = tmp_path / "dst"
    manifest = _manifest(tmp_path, ["f007.txt", "deep/er/x.csv", "deep/z.bin", "f007.txt", ""])

    def no_scan(self, *args, **kwargs):
        raise AssertionError("the source was listed although a manifest names what to transfer")

    monkeypatch.setattr(LocalLocation, "scan", no_scan)  # neither side may be listed in PREPARING
    summary = run_execution(str(src), str(dst), {"ManifestConfig": _config(manifest)}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary
    copied = sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())
    assert copied == ["deep/er/x.csv", "deep/z.bin", "f007.txt"]
    assert (dst / "deep/er/x.csv").read_text() == "x,1"
    rows = {r["path"]: r for r in report_rows(summary)}
    assert "f000.txt" not in rows and "folder/inside.txt" not in rows  # the rest of the source is not even listed
    # A second run finds them in sync and copies nothing.
    again = run_execution(str(src), str(dst), {"ManifestConfig": _config(manifest)}, store=str(store))
    assert again["Status"] == "SUCCESS" and again["FilesTransferred"] == 0, again


def test_outside_missing_and_folder_rows_are_reported_per_entry(tmp_path, make_tree, store, report_rows):
    src = _many_files(make_tree, tmp_path / "src")
    (tmp_path / "secret.txt").write_text("outside")
    dst = tmp_path / "dst"
    manifest = _manifest(tmp_path, ["f001.txt", "../secret.txt", str(tmp_path / "secret.txt"), "gone.txt",
                                    "folder", "folder/", "f002.txt,3HL4kqtJlcpXroDTDmJ.rDSP"])
    summary = run_execution(str(src), str(dst), {"ManifestConfig": _config(f"file://{manifest}")}, store=str(store))
    assert summary["Status"] == "ERROR"
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*")) == ["f001.txt"]
    assert (tmp_path / "secret.txt").read_text() == "outside"  # never read as a source entry, never overwritten
    errors = {r["path"]: r["error"] for r in report_rows(summary) if r.get("error")}
    assert "outside the source location" in errors["../secret.txt"]
    assert "outside the source location" in errors[str(tmp_path / "secret.txt")]
    assert "not found at the source" in errors["gone.txt"]
    assert "folder" in errors["folder"]
    assert "object version" in errors["f002.txt"]


def test_point_in_time_verification_compares_the_listed_files_only(tmp_path, make_tree, store):
    src = _many_files(make_tree, tmp_path / "src")
    manifest = _manifest(tmp_path, ["f010.txt", "deep/er/y.csv"])
    summary = run_execution(str(src), str(tmp_path / "dst"), {"ManifestConfig": _config(manifest),
                                                             "VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store=str(store))
    assert summary["Status"] == "SUCCESS", summary


@pytest.mark.parametrize("config, message", [
    ({"Action": "TRANSFER", "Format": "JSON", "Source": {"Uri": "/x.csv"}}, "Format"),
    ({"Action": "COPY", "Format": "CSV", "Source": {"Uri": "/x.csv"}}, "Action"),
    ({"Action": "TRANSFER", "Format": "CSV"}, "Source is required"),
    ({"Action": "TRANSFER", "Format": "CSV", "Source": {"S3": {"S3BucketArn": "bucket", "ManifestObjectPath": "m.csv"}}},
     "not an ARN"),
    ({"Action": "TRANSFER", "Format": "CSV", "Source": {"Path": "/x.csv"}}, "Uri"),
])
def test_invalid_manifest_configs_are_refused_on_construction(config, message):
    with pytest.raises(OptionsError, match=message):
        TaskOptions.from_dict({"ManifestConfig": config})


def test_remove_with_a_manifest_is_refused_as_datasync_does():
    config = _config("/lists/m.csv")
    with pytest.raises(OptionsError, match="PreserveDeletedFiles=REMOVE cannot be combined with ManifestConfig"):
        TaskOptions.from_dict({"ManifestConfig": config, "PreserveDeletedFiles": "REMOVE"})
    assert TaskOptions.from_dict({"ManifestConfig": config}).ManifestConfig == config


def test_prepare_plans_from_the_manifest(tmp_path, make_tree, store):
    src = _many_files(make_tree, tmp_path / "src")
    manifest = _manifest(tmp_path, ["deep/er/x.csv"])
    execution = engine.launch(engine.LocationSpec(str(src)), engine.LocationSpec(str(tmp_path / "dst")),
                              {"ManifestConfig": _config(manifest)}, store=str(store))
    shards = engine.prepare(execution)
    assert sum(s["files"] for s in shards) == 3  # deep/, deep/er/ and the file
    prepared = execution.read_json(execution.prepare)
    assert prepared["source_entries"] == 3 and prepared["destination_entries"] == 0
