"""The training split never overlaps a perplexity-evaluation window (checked on the real C4 sample)."""

import pytest
import torch
from tiny import tiny_tokenizer

from bench.calib import corpus_documents
from bench.errors import ConfigError
from bench.evaluate.perplexity import corpus_token_ids, make_windows
from bench.traindata import SEPARATOR, TrainData, TrainDataSpec, eval_end_char, eval_max_tokens

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def c4():
    tok = tiny_tokenizer()
    return TrainData(TrainDataSpec(source="c4"), tok), tok


def test_training_windows_are_not_in_the_evaluated_text(c4):
    data, tok = c4
    limit = eval_max_tokens(tok, "c4")
    window = 256
    data.assert_disjoint("c4", window, max_tokens=limit)  # the capped evaluation is fine
    data.assert_disjoint("C4-sample", 128, max_tokens=limit, add_bos=True)
    # the evaluator's own windows (its tokenization, its windowing), as text
    ids = corpus_token_ids(tok, "c4")
    wins = make_windows(ids, window, max_tokens=limit)
    evaluated = SEPARATOR.join(corpus_documents("c4"))[:eval_end_char(tok, "c4", window, max_tokens=limit)]
    assert tok.decode(wins[-1]) in evaluated and evaluated.endswith(tok.decode(wins[-1][-8:]))
    train = data.windows(64, 64, seed=0)
    checked = 0
    for row in train:
        for seg in _segments(row.tolist(), tok.eos_token_id):
            if len(seg) >= 24:
                assert tok.decode(seg[4:-4]) not in evaluated
                checked += 1
    assert checked > 20
    # and no training document is a document of the evaluation head (C4 repeats a few)
    head = set(corpus_documents("c4")[:data.first_doc])
    assert not head & set(data.documents)


def test_an_evaluation_of_the_whole_corpus_is_refused(c4):
    data, tok = c4
    with pytest.raises(ConfigError, match="into the training split"):
        data.assert_disjoint("c4", 512)
    data.assert_disjoint("wikipedia", 512)  # another corpus: nothing to check


def test_windows_are_seeded(c4):
    data, _ = c4
    assert torch.equal(data.windows(4, 32, seed=1), data.windows(4, 32, seed=1))
    assert not torch.equal(data.windows(4, 32, seed=1), data.windows(4, 32, seed=2))
    batches = list(data.batches(5, 32, 2, seed=1, device="cpu"))
    assert [b.shape[0] for b in batches] == [2, 2, 1]


def test_local_file_drops_evaluation_documents(tmp_path):
    head_doc = corpus_documents("c4")[0]
    path = tmp_path / "t.txt"
    path.write_text(f"{head_doc}\n\nA local document about bridges and rivers.\n\nAnother one about bread.")
    data = TrainData(TrainDataSpec(source=str(path)), tiny_tokenizer())
    assert data.dropped_duplicates == 1 and len(data.documents) == 2
    with pytest.raises(ConfigError, match="fewer than"):
        data.windows(100, 64, seed=0)


def test_bad_share():
    with pytest.raises(ConfigError):
        TrainDataSpec(eval_share=1.0)


def _segments(ids, eos):
    seg = []
    for t in ids:
        if t == eos:
            yield seg
            seg = []
        else:
            seg.append(t)
    yield seg
