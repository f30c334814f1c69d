"""The Streamline study (`scripts.streamline_study`) on real SmolLM2-135M at two tiny budgets: checkpoints of one run, the cached
teacher path equal to the model's own forward, saved modules that rebuild the same model, the page."""

from __future__ import annotations

import pytest
import torch

from bench.core.atomic import write_json
from bench.data.calibration import CalibSpec
from scripts.streamline_study import design
from scripts.streamline_study import teacher as T
from scripts.streamline_study.report import write_report
from scripts.streamline_study.study import Study
from scripts.streamline_study.teacher import training_stream
from scripts.streamline_study.train import run_training

pytestmark = [pytest.mark.real, pytest.mark.slow]


@pytest.fixture(scope="module")
def study(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setattr(design, "WINDOWS", (4, 8))
    monkeypatch_module.setattr(design, "BUDGETS", (1024, 2048))
    monkeypatch_module.setattr(design, "EVAL_BYTES", 3000)
    monkeypatch_module.setattr(design, "CALIB", CalibSpec(source="wikipedia", n_samples=8, seq_len=64, seed=0))
    monkeypatch_module.setattr(T, "CHUNK", 1)
    root = tmp_path_factory.mktemp("study")
    return Study(root / "out", root / "cache", None)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_budgets_are_geometric_from_25k_to_over_1m():
    assert design.BUDGETS[0] == 25_600 and design.BUDGETS[-1] >= 1_000_000
    ratios = [b / a for a, b in zip(design.BUDGETS, design.BUDGETS[1:])]
    assert max(ratios) - min(ratios) < 0.05 and all(w % design.BATCH == 0 for w in design.WINDOWS)


def test_runs_write_every_budget_and_rebuild_the_same_model(study, tmp_path):
    for name in ("dense", "none"):
        job = next(j for j in design.jobs() if j.get("name") == name)
        write_json(study.path(name), study.untrained_point(job))
    for objective in ("lm", "mse_skip1"):
        run_training(study, design._run("layer", objective, 0, windows=8))
    done = study.done()
    lm = [done[f"layer-lm-{k}k-s0"] for k in (1, 2)]
    assert [r["training"]["tokens"] for r in lm] == [1024, 2048] and [r["training"]["steps"] for r in lm] == [1, 2]
    check = lm[0]["training"]["cached_path_check"]
    assert check["lm_loss_cached"] == pytest.approx(check["lm_loss_model"], rel=1e-3)
    assert check["teacher_logits_max_abs_diff"] < 0.05
    assert lm[0]["fidelity"]["bits_per_byte"] != lm[1]["fidelity"]["bits_per_byte"]  # it trained in between
    # calibration, training and evaluation ranges of the record are disjoint document ranges
    rec = lm[1]
    c4_train = rec["training_data"]["sources"]["c4"]
    c4_eval = rec["evaluation_text"]["document_range"]
    assert c4_eval[1] <= c4_train[0]
    wiki_train = rec["training_data"]["sources"]["wikipedia"]
    assert rec["calibration"]["source"] == "wikipedia" and rec["calibration"]["document_range"][1] <= wiki_train[0]
    model = study.rebuild(rec["point"], rec["ops"])
    assert study.fidelity(model, "rebuilt")["bits_per_byte"] == rec["fidelity"]["bits_per_byte"]

    page = tmp_path / "page.md"
    write_report(study.out, page)
    text = page.read_text()
    assert "| layer | lm (next token) | 0 | 2,048 |" in text and "## Answers" in text
    assert (study.out / "figure.png").stat().st_size > 10_000


def test_training_stream_runs_in_epochs_of_new_windows(study):
    per_epoch = study.teacher.describe["windows_per_epoch"]
    windows, describe = training_stream(study.tok, per_epoch + 2, 256)
    assert windows.shape == (per_epoch + 2, 256) and describe["epoch_seeds"] == [0, 1]
    assert not torch.equal(windows[per_epoch], windows[0])  # epoch 2 re-shuffles the documents
