"""GPT training throughput: forgeml's Trainer against a plain hand-written PyTorch loop, and
generation speed with the KV cache against recomputing the whole prefix.

Training: the same GPT module (the shakespeare-gpt recipe: 4 layers, 4 heads, n_embd 128, block 64,
batch 12) from the same initial weights on the same tinyshakespeare tokens, AdamW lr 1e-3, betas
(0.9, 0.99). The hand loop is what the usual tutorial loop looks like: random windows sliced from the
token array per sample, torch.optim.AdamW with its defaults, and loss.item() every step for logging.
forgeml: Trainer over a WindowBatcher (one gather per batch, foreach AdamW, a host sync only every
log_every_steps). Rounds of --steps steps alternate, the order rotating; the table gives median
tokens/s and the median of per-round ratios.

Generation: 256 new tokens after "ROMEO:" with and without the cache, same seed; the text must be
identical, and tokens/s are compared.

Run (from the repository root; about 3 minutes on 2 cores):
    .venv/bin/python benchmarks/gpt_train.py
    .venv/bin/python benchmarks/gpt_train.py --rounds 3 --steps 50     # quicker
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from forgeml.config import GPTConfig
from forgeml.data.features import CorpusText, NextToken
from forgeml.data.tokenizers import new_tokenizer
from forgeml.data.windows import WindowBatcher
from forgeml.models import build_network
from forgeml.models.generation import generate
from forgeml.models.network import Network
from forgeml.training.trainer import Trainer

B, T, LR, BETAS = 12, 64, 1e-3, (0.9, 0.99)


def gpt(cfg: GPTConfig, tok) -> Network:
    """The language-model Network forgeml trains for model.name: gpt (gpt encoder + tied next_token head)."""
    return build_network(cfg, [CorpusText("text", tok, cfg.block_size)], [NextToken("next_token", tok)])


def hand_loop(model: Network, tokens: np.ndarray, steps: int, seed: int) -> float:
    """The tutorial loop: per-sample slicing, default AdamW, loss.item() every step."""
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    data = torch.from_numpy(tokens.astype(np.int64))
    start = time.perf_counter()
    for _ in range(steps):
        ix = rng.integers(0, len(data) - T - 1, B)
        x = torch.stack([data[i : i + T] for i in ix])
        y = torch.stack([data[i + 1 : i + T + 1] for i in ix])
        logits = model({"text": x})["next_token"]  # (B, T, V)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()  # the per-step logging every tutorial has
    return steps * B * T / (time.perf_counter() - start)


def forgeml_loop(model: Network, tokens: np.ndarray, steps: int, seed: int) -> float:
    trainer = Trainer(model, model.loss, optimizer="adamw", lr=LR, betas=BETAS, weight_decay=0.0, max_steps=steps, batch_size=B,
                      progress=False, tensorboard=False, log_every_steps=50, seed=seed, device="cpu")
    batches = WindowBatcher(tokens, T, B, batches_per_epoch=10_000, seed=seed, keys=("text", "next_token"))
    start = time.perf_counter()
    trainer.fit(batches)
    return steps * B * T / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    text = open("data/tinyshakespeare/input.txt").read()
    tok = new_tokenizer("char").fit([text])
    tokens = np.asarray(tok.encode(text), dtype=np.uint16)
    torch.manual_seed(0)
    initial = gpt(GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=T), tok)
    methods = [("hand-written loop", hand_loop), ("forgeml Trainer", forgeml_loop)]
    for _, run in methods:  # warmup
        run(copy.deepcopy(initial), tokens, 10, 0)
    speeds: dict[str, list[float]] = {name: [] for name, _ in methods}
    for r in range(args.rounds):
        for name, run in methods[r % 2 :] + methods[: r % 2]:
            speeds[name].append(run(copy.deepcopy(initial), tokens, args.steps, r))
        print(f"round {r + 1}: " + ", ".join(f"{n} {s[-1]:,.0f} tok/s" for n, s in speeds.items()), flush=True)
    ratios = [f / h for f, h in zip(speeds["forgeml Trainer"], speeds["hand-written loop"])]

    prompt = torch.tensor([tok.encode("ROMEO:")])
    torch.manual_seed(0)
    larger = gpt(GPTConfig(n_layer=6, n_head=6, n_embd=384, block_size=256), tok)  # the GPU recipe's size
    longer = gpt(GPTConfig(n_layer=6, n_head=6, n_embd=384, block_size=512), tok)
    long_prompt = torch.tensor([tok.encode(text[:256])])  # a 256-character prompt: the prefix the cache saves grows
    gens = []
    for label, model, start_ids in [("shakespeare-gpt, 4x4x128, context 64, prompt 6", copy.deepcopy(initial), prompt),
                                    ("6x6x384, context 256, prompt 6 (untrained weights)", larger, prompt),
                                    ("6x6x384, context 512, prompt 256 (untrained weights)", longer, long_prompt)]:
        model.eval()
        gen = {}
        for use_cache in (True, False):
            start = time.perf_counter()
            out = list(generate(model, start_ids, 256, 0.8, 40, None, torch.Generator().manual_seed(1), use_cache=use_cache))
            gen[use_cache] = (out, 256 / (time.perf_counter() - start))
        gens.append((label, gen, gen[True][0] == gen[False][0]))

    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; GPT 4x4x128, block {T}, batch {B}; "
          f"{args.rounds} rounds of {args.steps} steps")
    print("\n| method | tokens/s (median) | ratio vs hand-written loop |\n|---|---:|---:|")
    print(f"| hand-written loop (per-sample slicing, default AdamW, loss.item() per step) | {statistics.median(speeds['hand-written loop']):,.0f} | 1.00 |")
    print(f"| forgeml Trainer (WindowBatcher, foreach AdamW, sync on log only) | {statistics.median(speeds['forgeml Trainer']):,.0f} | {statistics.median(ratios):.2f} |")
    print("\n| generation, 256 new tokens | recompute the prefix, tokens/s | KV cache, tokens/s | speed-up | same text |")
    print("|---|---:|---:|---:|---|")
    for label, gen, same in gens:
        print(f"| {label} | {gen[False][1]:,.0f} | {gen[True][1]:,.0f} | {gen[True][1] / gen[False][1]:.1f}x | {same} |")


if __name__ == "__main__":
    main()
