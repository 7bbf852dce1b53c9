"""GPT: a decoder-only Transformer language model, read top to bottom.

Pre-norm blocks (LayerNorm -> causal self-attention -> residual; LayerNorm -> MLP -> residual),
attention through F.scaled_dot_product_attention, tied input/output embeddings, GPT-2
initialisation (normal 0.02, residual projections scaled by 1/sqrt(2 * n_layer)), and `generate`
with a key/value cache, temperature, top-k, top-p and a sliding window past the context length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from forgeml.config import GPTConfig


class KVCache:
    """Keys and values of every layer for the tokens seen so far, preallocated to the context length."""

    def __init__(self, cfg: GPTConfig, batch: int, device: torch.device, dtype: torch.dtype):
        hs = cfg.n_embd // cfg.n_head
        shape = (batch, cfg.n_head, cfg.block_size, hs)  # (B, nh, T_max, hs)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.length = 0  # tokens already stored


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.n_embd, self.dropout = cfg.n_head, cfg.n_embd, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.proj.is_residual = True  # scaled at init: the residual stream grows with depth otherwise
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        else:
            start = cache.length
            cache.k[layer][:, :, start : start + T] = k
            cache.v[layer][:, :, start : start + T] = v
            k = cache.k[layer][:, :, : start + T]  # (B, nh, start+T, hs)
            v = cache.v[layer][:, :, : start + T]
            if T == 1:  # one new token attends to everything before it: no mask needed
                y = F.scaled_dot_product_attention(q, k, v)
            else:  # a prompt after cached tokens: causal within the new block, all of the past visible
                mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.proj.is_residual = True
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig, vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight  # one matrix reads tokens in and scores them out
        self.apply(self._init)

    def _init(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            std = 0.02 / math.sqrt(2 * self.cfg.n_layer) if getattr(module, "is_residual", False) else 0.02
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T); with a cache, positions continue after it."""
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.cfg.block_size:
            raise ValueError(f"{start + T} tokens exceed the context length {self.cfg.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += T
        return self.lm_head(self.ln_f(x))  # (B, T, vocab)

    # ------------------------------------------------------------------ helpers that belong to the model
    def no_decay_parameters(self) -> set[int]:
        """ids of parameters AdamW must not decay: the tied embedding (also the output layer)."""
        return {id(self.wte.weight)} if self.cfg.tie_weights else set()

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward), as in the PaLM appendix: 6N + 12 L T C."""
        n = sum(p.numel() for p in self.parameters()) - self.wpe.weight.numel()
        c = self.cfg
        return 6 * n + 12 * c.n_layer * c.block_size * c.n_embd

    @torch.inference_mode()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None, use_cache: bool = True) -> Iterator[int]:
        """Yield new token ids one at a time after the prompt `idx` (1, T).

        Past the context length the window slides: the oldest half of the context is dropped and the
        rest re-read (with or without the cache, the same windows, so the same text for one seed)."""
        T_max = self.cfg.block_size
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
                    cache, fed = KVCache(self.cfg, 1, idx.device, self.wte.weight.dtype), 0
                logits = self(torch.tensor([context[fed:]], device=idx.device), cache)[:, -1, :]  # (1, vocab)
                fed = len(context)
            else:
                logits = self(torch.tensor([context], device=idx.device))[:, -1, :]  # (1, vocab): whole prefix again
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
