"""GPT: a decoder-only Transformer, read top to bottom; the `gpt` encoder of a language model.

Pre-norm blocks (LayerNorm -> causal self-attention -> residual; LayerNorm -> MLP -> residual),
attention through F.scaled_dot_product_attention, GPT-2 initialisation (normal 0.02, residual
projections scaled by 1/sqrt(2 * n_layer)). It returns one vector per position, (B, T, C); the
`next_token` head (models/heads/next_token.py) scores the vocabulary from them and shares the token
embedding matrix (tie_weights). Generation with a key/value cache: models/generation.py.
"""

from __future__ import annotations

import math

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
    """The decoder body: token + position embeddings, the blocks, a final LayerNorm. As an encoder it reads
    its token ids (B, T) from the input dict under `key` and returns (B, T, n_embd)."""

    # where train.compile=auto compiles (training/compiling.py): on a GPU, where nanoGPT measured this model's step
    # 250 -> 135 ms on an A100. Not on a CPU: on the 2-core AVX2 EPYC the shakespeare recipe ran 13,777 and 12,542
    # tokens/s compiled against 15,465 and 12,911 eager (nanoGPT's train.py gained nothing either), after a first step
    # of 34-43 s (benchmarks/gpt_vs_nanogpt_speed.py)
    compile_pays_on = ("cuda",)

    def __init__(self, cfg: GPTConfig, vocab_size: int, key: str = "text"):
        super().__init__()
        self.cfg, self.vocab_size, self.key = cfg, vocab_size, key
        self.out_dim = cfg.n_embd
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)

    def forward(self, inputs: dict[str, torch.Tensor], cache: KVCache | None = None) -> torch.Tensor:
        """Vectors (B, T, C) for token ids (B, T) = inputs[key]; with a cache, positions continue after it."""
        idx = inputs[self.key]
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
        return self.ln_f(x)  # (B, T, C)

    # ------------------------------------------------------------------ helpers that belong to the model
    def no_decay_parameters(self) -> set[int]:
        """ids of parameters AdamW must not decay: the tied embedding (also the output layer)."""
        return {id(self.wte.weight)} if self.cfg.tie_weights else set()

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward), as in the PaLM appendix: 6N + 12 L T C, N without
        the position table (the output layer is counted once more when it is not tied: see the head)."""
        n = sum(p.numel() for p in self.parameters()) - self.wpe.weight.numel()
        c = self.cfg
        return 6 * n + 12 * c.n_layer * c.block_size * c.n_embd


def gpt_init(module: nn.Module, n_layer: int) -> None:
    """GPT-2 initialisation of one module (applied to the whole network, head included, in module order)."""
    if isinstance(module, nn.Linear):
        std = 0.02 / math.sqrt(2 * n_layer) if getattr(module, "is_residual", False) else 0.02
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
