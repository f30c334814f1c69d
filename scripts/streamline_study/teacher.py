"""The Streamline study's dense teacher states, computed once per training window and shared by every run.

For the block the study replaces (layers l..l+8 of the dense model, the window every trained point uses),
one no-grad dense forward per batch of training windows records:
- `inputs[b]`: h_l, the hidden state entering layer l (the frozen prefix's output: identical in the pruned
  model, so every objective trains from it without running layers 0..l-1 again);
- `targets[b]`: the dense h_{l+9}, the output of layer l+8 (the MSE target);
- `finals[b]`: the dense final-normed hidden state (the LM head of it is the kd teacher's logits).
Chunks of CHUNK batches are saved under the cache folder (not committed) so a restart reloads them.

The training stream: the built-in samples hold little held-out text (C4's training range is 104 K tokens,
Wikipedia's 160 K), so the study trains on both training ranges together (264 K tokens, 1,031 windows of
256), in epochs: epoch e is `splits.token_windows` of all those documents under seed e (a new document
order, so new window boundaries). Budgets up to one epoch see every window once; 1.02 M tokens is 3.9
epochs. Calibration (Wikipedia's calibration range) and evaluation (C4's evaluation range) stay disjoint.
"""

from __future__ import annotations

import logging
import time

import torch

import methods
from bench.models import arch
from bench.train import matmul_params
from scripts.streamline_study import design

log = logging.getLogger("streamline_study")

CHUNK = 50  # batches per saved chunk


class _Stop(Exception):
    pass


def training_stream(tokenizer, n: int, seq: int) -> tuple[torch.Tensor, dict]:
    """`n` training windows, epoch after epoch over the C4 and Wikipedia training ranges, and provenance."""
    from bench.data import splits
    from bench.data.windows import resolve_add_bos

    sources = ("c4", "wikipedia")
    docs = tuple(d for src in sources for d in splits.documents(src, "training"))
    step = seq - 1 if resolve_add_bos(tokenizer, None) else seq
    sep = 1 if tokenizer.eos_token_id is not None else 0
    tokens = sum(len(tokenizer(d, add_special_tokens=False, verbose=False)["input_ids"]) + sep for d in docs)
    per_epoch = tokens // step
    epochs, got = [], 0
    while got < n:
        take = min(per_epoch, n - got)
        epochs.append(splits.token_windows(docs, tokenizer, take, seq, seed=len(epochs), what="the training text"))
        got += take
    describe = {"sources": {src: list(splits.split(src).training) for src in sources}, "documents": len(docs),
                "tokens": tokens, "windows_per_epoch": per_epoch, "epochs": n / per_epoch,
                "epoch_seeds": list(range(len(epochs))), "bos": step != seq}
    return torch.cat(epochs), describe


class TeacherCache:
    def __init__(self, study, folder):
        self.study, self.folder = study, folder
        self.batch, self.seq = design.BATCH, design.SEQ
        plan = methods.create("streamline", {"replacement": "layer"}).plan(study.model, study.calib, study.budget)
        self.start, stop = plan.ops[0]["start"], plan.ops[0]["stop"]
        self.last = stop - 1
        self.windows, self.describe = training_stream(study.tok, design.WINDOWS[-1], design.SEQ)
        self.inputs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.finals: list[torch.Tensor] = []
        self.seconds = 0.0  # dense forward time spent here in this process
        self.flops_per_token = 2.0 * matmul_params(arch.decoder_layers(study.model))

    def ids(self, b: int) -> torch.Tensor:
        return self.windows[b * self.batch:(b + 1) * self.batch]

    def ensure(self, n_batches: int) -> None:
        """Hold the states of batches 0..n_batches-1 in memory (load saved chunks, compute the rest)."""
        while len(self.inputs) < n_batches:
            c = len(self.inputs) // CHUNK
            path = self.folder / f"teacher-l{self.start}-{self.last}-c{c:03d}.pt"
            if path.exists():
                h_in, h_out, h_fin = torch.load(path)
            else:
                t0 = time.perf_counter()
                got = [self._dense(self.ids(b)) for b in range(c * CHUNK, (c + 1) * CHUNK)]
                h_in, h_out, h_fin = (torch.stack([g[i] for g in got]) for i in range(3))
                torch.save((h_in, h_out, h_fin), path)
                self.seconds += time.perf_counter() - t0
                log.info("teacher states: batches %d-%d computed (%.0f s so far)", c * CHUNK, (c + 1) * CHUNK - 1,
                         self.seconds)
            self.inputs += list(h_in)
            self.targets += list(h_out)
            self.finals += list(h_fin)

    def _dense(self, ids: torch.Tensor):
        model = self.study.model
        layers = arch.decoder_layers(model)
        got = {}

        def pre(_m, args, kwargs):
            got["in"] = (args[0] if args else kwargs["hidden_states"]).detach()

        def post(_m, _a, output):
            got["out"] = arch.layer_output(output).detach()

        def final(_m, _a, output):
            got["fin"] = output.detach()
            raise _Stop

        handles = [layers[self.start].register_forward_pre_hook(pre, with_kwargs=True),
                   layers[self.last].register_forward_hook(post),
                   arch.final_norm(model).register_forward_hook(final)]
        try:
            with torch.no_grad():
                model(input_ids=ids, use_cache=False)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        return got["in"], got["out"], got["fin"]
