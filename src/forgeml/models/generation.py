"""Generation from a network with a `next_token` output (a GPT): token ids in, new token ids out, one at a time.

A key/value cache keeps each step to one new token's work; past the context length the window slides
(the oldest half of the context is dropped and the rest re-read), with or without the cache the same
windows, so the same text for one seed. Sampling: greedy at temperature 0, else softmax with top-k/top-p.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch

from forgeml.models.gpt import KVCache


def next_token_parts(network) -> tuple[torch.nn.Module, str, torch.nn.Module]:
    """(the GPT encoder, its input name, the next_token head) of a language-model network."""
    from forgeml.models.gpt import GPT
    from forgeml.models.heads.next_token import NextTokenHead

    heads = [network.head(n) for n in network.output_names if isinstance(network.head(n), NextTokenHead)]
    encoders = [e for e in network.encoders.values() if isinstance(e, GPT)]
    if len(heads) != 1 or len(encoders) != 1:
        raise ValueError("generation needs a network with one gpt encoder and one next_token head")
    return encoders[0], encoders[0].key, heads[0]


class Decoder(Protocol):
    """What generation needs of a language model: logits at the last of some token ids fed after a cache. The
    PyTorch network (TorchDecoder, below) or the GPT's KV-cache graph in ONNX Runtime (export/gpt_onnx.py)."""

    block_size: int  # the context length: positions 0 .. block_size - 1

    def new_cache(self) -> Any:
        """An empty cache: no positions yet."""
        ...

    def logits(self, ids: list[int], cache: Any | None) -> tuple[torch.Tensor, Any]:
        """(logits (1, vocab) at the last of `ids` fed after `cache`, the cache that now holds them too);
        cache None: no cache at all, `ids` from position 0."""
        ...


class TorchDecoder:
    """A language-model Network as a Decoder; its cache is models/gpt.py's KVCache, filled in place."""

    def __init__(self, network, device: torch.device):
        self.network, self.device = network, device
        self.encoder, self.key, self.head = next_token_parts(network)
        self.block_size = self.encoder.cfg.block_size

    def new_cache(self) -> KVCache:
        return KVCache(self.encoder.cfg, 1, self.device, self.encoder.wte.weight.dtype)

    def logits(self, ids: list[int], cache: KVCache | None) -> tuple[torch.Tensor, KVCache | None]:
        h = self.encoder({self.key: torch.tensor([ids], device=self.device)}, cache)  # (1, t, C)
        return self.head(self.network.combiner([h[:, -1:, :]]))[:, -1, :], cache  # the combiner of one input passes it through


@torch.inference_mode()
def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, generator: torch.Generator | None = None, use_cache: bool = True) -> Iterator[int]:
    """Yield new token ids one at a time after the prompt `idx` (1, T). `model`: a language-model Network, or a
    Decoder (the ONNX Runtime one); either way the same windows and the same sampling."""
    decoder = model if hasattr(model, "logits") else TorchDecoder(model, idx.device)
    T_max = decoder.block_size
    tokens = idx[0].tolist()
    start = max(0, len(tokens) - T_max)  # the window: tokens[start:] is the context
    cache, fed = None, 0  # fed: tokens of the window already in the cache

    for _ in range(max_new_tokens):
        if len(tokens) - start > T_max:  # full: slide, keeping the newest half of the context
            start = len(tokens) - T_max // 2
            cache = None
        context = tokens[start:]
        if use_cache:
            if cache is None:
                cache, fed = decoder.new_cache(), 0
            logits, cache = decoder.logits(context[fed:], cache)
            fed = len(context)
        else:
            logits, _ = decoder.logits(context, None)  # the whole prefix again
        next_id = sample(logits, temperature, top_k, top_p, generator)
        tokens.append(next_id)
        yield next_id


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None) -> int:
    """One token id from logits (1, vocab): greedy at temperature 0, else softmax sampling."""
    logits = logits.float()
    if temperature <= 0:
        return int(logits.argmax(-1))
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[:, -1, None]  # (1, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) > top_p  # keep the smallest set whose mass reaches top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    return int(torch.multinomial(probs, 1, generator=generator))
