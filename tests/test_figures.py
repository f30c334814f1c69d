"""Figures that answer their captions: document counts in the captions, a fidelity figure (KL to dense),
the removed-layers panel telling removed, merged and replaced layers apart, a speed-up axis in plain
factors, and methods at one budget drawn side by side."""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.report import figures
from bench.report.evidence import evidence

STORE = Path(__file__).resolve().parent.parent / "reports" / "store"


def _smol():
    coll = report.load(STORE)
    ev = evidence(coll, report.load_samples(STORE, coll))
    group = next(g for g in coll.groups if g.model == "smollm2-135m")
    return group, ev.of(group)


def test_figures_state_documents_and_include_fidelity(tmp_path):
    group, ev = _smol()
    drawn = {f.path.name: f for f in figures.render(group, tmp_path, ev)}
    assert "smollm2-135m-fidelity-vs-layers.png" in drawn
    assert "arc_easy 50, piqa 50, winogrande 50 documents" in drawn["smollm2-135m-accuracy-vs-layers.png"].caption
    assert "KL(dense ‖ pruned)" in drawn["smollm2-135m-fidelity-vs-layers.png"].caption
    assert all(f.path.stat().st_size > 10_000 for f in drawn.values())


def test_removed_merged_and_replaced_layers_apart():
    group, _ = _smol()
    kinds = {(r.method, r.budget["ratio"]): set(figures.changed_layers(r)) for r in group.rows}
    assert kinds[("laco", 0.25)] == {"merged"} and kinds[("streamline", 0.25)] == {"replaced"}
    assert kinds[("shortgpt", 0.25)] == {"removed"}


def test_speedup_axis_reads_in_plain_factors():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0.9, 1.4], [1, 2])
    figures._speedup_axis(ax, [0.9, 1.0, 1.4])
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels == ["0.75×", "1×", "1.25×", "1.5×"]
    low, high = ax.get_xlim()
    assert 0.7 < low < 0.75 and 1.74 < high < 1.76  # the estimates, not a 0.05-10 interval, set the range
