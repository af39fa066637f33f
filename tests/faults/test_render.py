"""The reliability table is rendered from recorded figures, keeping rows of cases that did not run."""

from __future__ import annotations

from tests.faults import figures, render


def test_rows_recorded_replace_their_line_and_others_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("DATASYNC_FAULT_FIGURES", str(tmp_path))
    old = render.render([figures.Figure("kill9/local", "Process kills", "old", "old", 1, 1, 1),
                         figures.Figure("names/local", "Hostile names", "n", "n", 1, 0, 3)], "")
    figures.record(figures.Figure("kill9/local", "Process kills", "kill -9", "no partial file", 2, 20, 40,
                                  converge_s=1.5, seed=7))
    new = render.render(figures.load_all(), old)
    assert "| `kill9/local` | kill -9 (seed 7) | no partial file | 2 | 20 | 40 | 0 / 0 / 0 | 0 | 1.50 |" in new
    assert "| `names/local` | n | n | 1 | 0 | 3 |" in new
    assert new.index("### Process kills") < new.index("### Hostile names")
    assert "| old |" not in new
