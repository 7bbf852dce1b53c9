"""Text in, text out, for a model with a next-token output: the prompt through its tokenizer, new tokens
from models/generation.py, decoded piece by piece as they come (a multi-byte character waits for its
last byte), cut at a stop string."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from forgeml.errors import RequestError
from forgeml.models.generation import generate


def check_sampling(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if max_new_tokens < 1:
        raise RequestError("max_new_tokens must be at least 1")
    if temperature < 0:
        raise RequestError("temperature must be 0 (greedy) or more")
    if top_k is not None and top_k < 1:
        raise RequestError(f"top_k must be at least 1 (got {top_k}); leave it out to sample from every token")
    if top_p is not None and not 0 < top_p <= 1:
        raise RequestError(f"top_p must be in (0, 1] (got {top_p})")


def stream_text(network, corpus, prompt: str, max_new_tokens: int = 200, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, stop: list[str] | None = None, seed: int | None = None, use_cache: bool = True,
                device: torch.device | str = "cpu") -> Iterator[str]:
    """The generated text piece by piece (the prompt is not repeated). `corpus`: the fitted corpus input (its
    tokenizer); `network`: the Network, or a generation Decoder (the GPT's graph in ONNX Runtime). Bad settings
    are refused here, before the first piece is asked for."""
    check_sampling(max_new_tokens, temperature, top_k, top_p)
    return _pieces(network, corpus, prompt, max_new_tokens, temperature, top_k, top_p, stop, seed, use_cache, torch.device(device))


def _pieces(network, corpus, prompt, max_new_tokens, temperature, top_k, top_p, stop, seed, use_cache, device) -> Iterator[str]:
    ids = corpus.encode(prompt)
    generator = torch.Generator(device=device)
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()  # a fresh seed for this generator only; torch's global RNG is left alone
    tokenizer = corpus.tokenizer
    new: list[int] = []
    shown = ""
    for token in generate(network, torch.tensor([ids], device=device), max_new_tokens, temperature, top_k, top_p, generator,
                          use_cache=use_cache):
        new.append(token)
        text = tokenizer.decode(new)
        if text.endswith("\ufffd"):
            continue  # half of a multi-byte character: wait for the rest
        if stop:
            hit = min((text.find(s, max(0, len(shown) - len(s))) for s in stop if s in text), default=-1)
            if hit >= 0:
                if hit > len(shown):
                    yield text[len(shown) : hit]
                return
        if len(text) > len(shown):
            yield text[len(shown) :]
            shown = text
