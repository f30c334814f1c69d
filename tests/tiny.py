"""Tiny random models of every supported family, built in-process (nothing downloaded).

`tiny_model(family)` returns (model, tokenizer): 4 layers, hidden 64, a BPE tokenizer trained here.
"""

from __future__ import annotations

import functools

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    OPTConfig,
    Phi3Config,
    PhiConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

VOCAB = 512
FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi", "phi3", "gpt2", "opt", "gpt_neox")

CORPUS = [
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France.",
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower.",
    "Layer pruning removes whole transformer layers from a large language model.",
    "A quick brown fox jumps over the lazy dog while the cat sleeps on the warm windowsill.",
    "Question: What is the capital of France? Answer: Paris is the capital of France.",
    "Water boils at one hundred degrees Celsius at sea level and freezes at zero degrees.",
] * 20


@functools.cache
def _tokenizer_json() -> str:
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(CORPUS, trainer)
    return tk.to_str()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    tk = Tokenizer.from_str(_tokenizer_json())
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", padding_side="left")


def tiny_config(family: str, n_layers: int = 4):
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=n_layers,
                  num_attention_heads=4, max_position_embeddings=256, bos_token_id=0, eos_token_id=0,
                  pad_token_id=0)
    if family == "llama":
        return LlamaConfig(num_key_value_heads=2, tie_word_embeddings=True, **common)
    if family == "mistral":
        return MistralConfig(num_key_value_heads=2, sliding_window=16, **common)
    if family == "qwen2":
        return Qwen2Config(num_key_value_heads=2, tie_word_embeddings=True, **common)
    if family == "qwen3":
        return Qwen3Config(num_key_value_heads=2, head_dim=16, tie_word_embeddings=True, **common)
    if family == "gemma2":
        return Gemma2Config(num_key_value_heads=2, head_dim=16, sliding_window=16, **common)
    if family == "gemma3":
        types = ["sliding_attention", "full_attention"] * (n_layers // 2) + ["sliding_attention"] * (n_layers % 2)
        return Gemma3TextConfig(num_key_value_heads=2, head_dim=16, sliding_window=16, layer_types=types, **common)
    if family == "phi":
        return PhiConfig(num_key_value_heads=4, **common)
    if family == "phi3":
        return Phi3Config(num_key_value_heads=2, **common)
    if family == "gpt2":
        return GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=n_layers, n_head=4, n_positions=256,
                          bos_token_id=0, eos_token_id=0)
    if family == "opt":
        return OPTConfig(vocab_size=VOCAB, hidden_size=64, ffn_dim=128, num_hidden_layers=n_layers,
                         num_attention_heads=4, max_position_embeddings=256, word_embed_proj_dim=64,
                         bos_token_id=0, eos_token_id=0, pad_token_id=0)
    if family == "gpt_neox":
        return GPTNeoXConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=n_layers,
                             num_attention_heads=4, max_position_embeddings=256, bos_token_id=0, eos_token_id=0)
    raise ValueError(family)


def tiny_model(family: str = "llama", n_layers: int = 4, seed: int = 0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, n_layers), dtype=dtype).eval()
    return model, tiny_tokenizer()
