"""Real benchmark data (marker `real`; ~86 MB downloaded once into the cache): counts, schemas, lm-eval."""

from __future__ import annotations

import pytest
from tiny import tiny_model

from bench.data import loaders, tasks

pytestmark = pytest.mark.real


def test_every_task_loads_its_full_split():
    for info in tasks.TASKS.values():
        if info.name == "mmlu":
            n = sum(len(loaders.mmlu(subject=s)["test"]) for s in loaders.MMLU_SUBJECTS)
        else:
            n = len(getattr(loaders, info.loader)()[info.split])
        assert n == info.documents, info.name


def test_rebuilt_test_splits_have_the_hf_schema():
    arc = loaders.arc_easy()
    assert arc["test"].column_names == arc["validation"].column_names
    row = arc["test"][0]
    assert row["answerKey"] in row["choices"]["label"] and not row["question"].startswith("Question:")
    obqa = loaders.openbookqa()
    assert set(obqa["test"].column_names) >= {"id", "question_stem", "choices", "answerKey"}
    lam = loaders.lambada_openai()["test"][0]["text"]
    assert lam.endswith(" signs")


def test_boolq_gets_the_super_glue_label():
    row = loaders.boolq()["validation"][0]
    assert row["label"] == int(row["answer"])


def test_perplexity_corpora():
    wiki, c4 = loaders.wikipedia_documents(), loaders.c4_documents()
    assert len(wiki) == tasks.CORPORA["wikipedia"].documents and len(c4) == tasks.CORPORA["c4"].documents
    assert not any("<doc" in d or "</doc>" in d for d in wiki[:50])


def test_real_tasks_through_lm_eval():
    """lm-eval's own piqa, arc_easy (test, rebuilt) and winogrande prompts on real data, tiny model."""
    from bench.evaluate.multiple_choice import evaluate_accuracy

    model, tok = tiny_model("llama")
    r = evaluate_accuracy(model, tok, ["piqa", "arc_easy", "winogrande"], batch_size=8, limit=20)
    assert r.tasks["arc_easy"].split == "test" and r.tasks["arc_easy"].n_total == 2376
    assert r.tasks["piqa"].n_total == 1838 and r.tasks["winogrande"].n_total == 1267
    for name, score in r.tasks.items():
        assert score.n == 20 and 0.0 <= score.acc <= 1.0, name
        assert len(r.samples[name]) == 20
    arc = r.samples["arc_easy"]
    assert all(len(s["loglik"]) == len(s["n_tokens"]) >= 3 and s["gold"] is not None for s in arc)


def test_gold_index_for_letter_targets():
    """commonsense_qa's target is a letter ("A".."E"): gold is its position among the choices."""
    from bench.evaluate.multiple_choice import evaluate_accuracy

    model, tok = tiny_model("llama")
    r = evaluate_accuracy(model, tok, ["commonsense_qa"], batch_size=8, limit=10)
    docs = loaders.commonsense_qa()["validation"]
    assert [s["gold"] for s in r.samples["commonsense_qa"]] == ["ABCDE".index(docs[i]["answerKey"]) for i in range(10)]


def test_perplexity_on_the_real_corpora():
    import math

    from bench.evaluate.windowed_perplexity import evaluate_perplexity

    model, tok = tiny_model("llama")
    for corpus, label in (("wikipedia", "Wikipedia-sample"), ("c4", "C4-sample")):
        r = evaluate_perplexity(model, tok, corpus, window=64, batch_size=4, max_windows=4)
        assert r.corpus == label and r.windows == 4 and r.tokens == 4 * 63 and r.windows_total > 1000
        assert math.isfinite(r.perplexity) and r.perplexity > 1
