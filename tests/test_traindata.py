"""Evaluation, calibration and training text are disjoint ranges of whole documents (real C4 / Wikipedia)."""

import pytest
import torch
from tiny import tiny_model, tiny_tokenizer

from bench.core.errors import ConfigError
from bench.data import splits
from bench.data.calibration import Calibration, CalibSpec, corpus_documents
from bench.data.training_text import TrainData, TrainDataSpec
from bench.evaluate.windowed_perplexity import corpus_text

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

@pytest.fixture(scope="module")
def c4():
    tok = tiny_tokenizer()
    return TrainData(TrainDataSpec(source="c4"), tok), tok


@pytest.mark.parametrize("corpus", splits.BUILTIN)
def test_ranges_partition_the_corpus_and_their_texts_are_disjoint(corpus):
    s = splits.split(corpus)
    assert s.evaluation[0] == 0 and s.evaluation[1] == s.calibration[0] and s.calibration[1] == s.training[0]
    assert s.training[1] == s.documents and all(lo < hi for lo, hi in (s.evaluation, s.calibration, s.training))
    texts = {role: set(splits.documents(corpus, role)) for role in splits.ROLES}
    assert not texts["evaluation"] & texts["calibration"]
    assert not (texts["evaluation"] | texts["calibration"]) & texts["training"]
    # the evaluators read exactly the evaluation range
    text, n = corpus_text(corpus)
    assert n == len(splits.documents(corpus, "evaluation")) and text == "\n\n".join(splits.documents(corpus,
                                                                                                   "evaluation"))
    assert corpus_documents(corpus) == splits.documents(corpus, "calibration")  # calibration's default role


def test_training_windows_never_hold_evaluated_or_calibration_text(c4):
    data, tok = c4
    held = "\n\n".join(splits.documents("c4", "evaluation") + splits.documents("c4", "calibration"))
    checked = 0
    for row in data.windows(64, 64, seed=0):
        for seg in _segments(row.tolist(), tok.eos_token_id):
            if len(seg) >= 24:
                assert tok.decode(seg[4:-4]) not in held
                checked += 1
    assert checked > 20
    d = data.describe()
    assert d["document_range"] == list(splits.split("c4").training) and d["bos"] is False


def test_provenance_shows_disjoint_ranges_for_calibration_and_training():
    model, tok = tiny_model("llama")
    calib = Calibration(CalibSpec(source="c4", n_samples=4, seq_len=32), model, tok).describe()
    train = TrainData(TrainDataSpec(source="c4"), tok).describe()
    ev = splits.split("c4").evaluation
    ranges = sorted([tuple(ev), tuple(calib["document_range"]), tuple(train["document_range"])])
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_bos_is_the_first_token_of_every_window_when_asked_or_when_the_tokenizer_adds_it():
    tok = tiny_tokenizer()
    docs = splits.documents("c4", "calibration")
    wins = splits.token_windows(docs, tok, 3, 16, seed=0, add_bos=True)
    assert wins.shape == (3, 16) and (wins[:, 0] == tok.bos_token_id).all()
    plain = splits.token_windows(docs, tok, 3, 16, seed=0)  # the tiny tokenizer adds no BOS by itself
    assert plain.shape == (3, 16) and torch.equal(plain.reshape(-1)[:15], wins[0, 1:])
    tok.add_bos_token = True  # a Gemma-like tokenizer: BOS by default in calibration and training alike
    if tok("a")["input_ids"][:1] == [tok.bos_token_id]:
        assert (splits.token_windows(docs, tok, 2, 8, seed=0)[:, 0] == tok.bos_token_id).all()


def test_windows_are_seeded(c4):
    data, _ = c4
    assert torch.equal(data.windows(4, 32, seed=1), data.windows(4, 32, seed=1))
    assert not torch.equal(data.windows(4, 32, seed=1), data.windows(4, 32, seed=2))
    batches = list(data.batches(5, 32, 2, seed=1, device="cpu"))
    assert [b.shape[0] for b in batches] == [2, 2, 1]


def test_local_file_drops_evaluation_documents(tmp_path):
    head_doc = splits.documents("c4", "evaluation")[0]
    path = tmp_path / "t.txt"
    path.write_text(f"{head_doc}\n\nA local document about bridges and rivers.\n\nAnother one about bread.")
    data = TrainData(TrainDataSpec(source=str(path)), tiny_tokenizer())
    assert data.dropped_duplicates == 1 and len(data.documents) == 2
    with pytest.raises(ConfigError, match="fewer than"):
        data.windows(100, 64, seed=0)


def _segments(ids, eos):
    seg = []
    for t in ids:
        if t == eos:
            yield seg
            seg = []
        else:
            seg.append(t)
    yield seg
