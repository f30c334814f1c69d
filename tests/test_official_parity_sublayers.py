"""Golden parity with the official code of the sub-layer methods, on real SmolLM2-135M (fp32).

Each fixture in tests/fixtures/official_parity/ records what the official implementation (repository and
commit named in it, run from a checkout outside the project, how in `how_run`) selected and scored on the
harness's own calibration windows (the fixture's `calib` spec). The harness must select the same sublayers
at 12.5 % and 25 % of the parameters, with scores equal within the stated tolerances:
- LLM-Drop similarities: 1e-6 absolute (the same fp32 operations; measured difference 0.0);
- BlockPruner perplexities: 1e-4 relative (per-sequence means summed in another order; measured: bitwise equal
  over all 1200 candidate perplexities of the 25 rounds);
- FinerCut divergences: 1e-4 relative (per-sequence sums instead of the evaluator's mean over the concatenated
  logits; measured: 4.2e-6 at most over the 700 candidate divergences of the first 13 rounds) or 1e-9 absolute.
The official FinerCut run to 25 % took 26 rounds (70 minutes of CPU on the shared machine, in two parts: the
fixture's `how_run`); the every-round test covers all of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import methods
from bench.data.calibration import Calibration, CalibSpec
from bench.models import zoo
from methods.base import Budget

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

FIXTURES = Path(__file__).parent / "fixtures" / "official_parity"


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def smollm2():
    return zoo.load(zoo.DEFAULT_MODEL, device="cpu", dtype="float32")


def _calib(smollm2, spec: dict) -> Calibration:
    model, tok = smollm2
    return Calibration(CalibSpec(**spec), model, tok)


@pytest.mark.parametrize("ratio", [0.125, 0.25])
@pytest.mark.parametrize("mode", ["attn", "mlp", "joint", "block"])
def test_llm_drop_matches_the_official_selection_and_similarities(smollm2, mode, ratio):
    fix = _fixture("llm_drop")
    model, _ = smollm2
    calib = _calib(smollm2, fix["calib"])
    want = fix["selection"][f"{mode}@{ratio}"]
    pruner = methods.create("llm-drop", {"mode": mode})
    if want is None:  # the official order cannot meet this budget either
        with pytest.raises(Exception, match="would drop all"):
            pruner.plan(model, calib, Budget(ratio=ratio))
        return
    plan = pruner.plan(model, calib, Budget(ratio=ratio))
    assert plan.scores["dropped"] == want
    kinds = {"attn": ["attn"], "mlp": ["mlp"], "joint": ["attn", "mlp"], "block": ["block"]}[mode]
    for kind in kinds:
        for i, official in enumerate(fix["similarities"][kind]):
            assert plan.scores["similarity"][f"{kind}{i}"] == pytest.approx(official, abs=1e-6)


def _greedy_parity(smollm2, name: str, ratio: float, rel: float, abs_tol: float):
    fix = _fixture(name)
    if f"{ratio}" not in fix["selection"]:
        pytest.skip(f"the official {name} run did not reach {ratio} (see the fixture's note)")
    model, _ = smollm2
    calib = _calib(smollm2, fix["calib"])
    plan = methods.create(name).plan(model, calib, Budget(ratio=ratio))
    want = fix["selection"][f"{ratio}"]
    assert plan.scores["order"] == want
    for got, official in zip(plan.scores["rounds"], fix["rounds"], strict=False):
        assert got["removed"] == official["removed"]
        assert set(got["scores"]) == set(official["scores"])
        for unit, value in official["scores"].items():
            assert got["scores"][unit] == pytest.approx(value, rel=rel, abs=abs_tol)


@pytest.mark.parity
@pytest.mark.parametrize("ratio", [0.125, 0.25])
def test_blockpruner_matches_the_official_search(smollm2, ratio):
    _greedy_parity(smollm2, "blockpruner", ratio, rel=1e-4, abs_tol=0.0)


@pytest.mark.parity
@pytest.mark.parametrize("ratio", [0.125, 0.25])
def test_finercut_matches_the_official_search(smollm2, ratio):
    _greedy_parity(smollm2, "finercut", ratio, rel=1e-4, abs_tol=1e-9)


@pytest.mark.parity
@pytest.mark.parametrize("name", ["blockpruner", "finercut"])
def test_greedy_search_matches_every_official_round_recorded(smollm2, name):
    """Every round the official run completed (also where it stopped short of a budget, CPU time): the harness,
    with a budget of exactly those units' parameters, removes the same units in the same order with the same
    per-candidate scores."""
    fix = _fixture(name)
    model, _ = smollm2
    from bench.models import arch, sublayer

    units = sublayer.unit_parameters(model)
    sizes = [units["attn" if u.startswith("attn") else "mlp"][int(u.lstrip("atnmlp"))] for u in fix["order"]]
    n = len(fix["order"])
    ratio = sum(sizes) / arch.count_parameters(model)
    plan = methods.create(name).plan(model, _calib(smollm2, fix["calib"]), Budget(ratio=ratio))
    assert plan.scores["order"] == fix["order"][:n]
    tol = {"blockpruner": dict(rel=1e-4, abs=0.0), "finercut": dict(rel=1e-4, abs=1e-9)}[name]
    for got, official in zip(plan.scores["rounds"], fix["rounds"], strict=True):
        assert set(got["scores"]) == set(official["scores"])
        for unit, value in official["scores"].items():
            assert got["scores"][unit] == pytest.approx(value, **tol)
