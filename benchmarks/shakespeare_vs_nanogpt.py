"""The tinyshakespeare CPU recipe in forgeml and in nanoGPT itself, on this machine, measured the same way.

The recipe (4 layers, 4 heads, n_embd 128, block 64, batch 12, dropout 0, AdamW lr 1e-3, beta2 0.99,
100 warmup steps, cosine to 1e-4 over 2,000 iterations, last 10% held out) is nanoGPT's README CPU
command; its README quotes "a loss of only 1.88". This script runs that very command from a nanoGPT
checkout, then measures its final model the way forgeml measures its own: mean next-token loss over
the whole held-out text in non-overlapping 64-token windows. It also trains forgeml's
examples/shakespeare-gpt.yaml and prints both, beside nanoGPT's own 20-batch estimates.

No nanoGPT code is copied here: bring a checkout (e.g. the search tool's `fetch karpathy/nanoGPT`,
then `git clone /work/.mirror/karpathy+nanoGPT/repo /tmp/nanogpt`) and point --nanogpt at it.
Its data step never downloads: input.txt is copied in from data/tinyshakespeare first.

Run (from the repository root; about 5 minutes on 2 cores):
    .venv/bin/python benchmarks/shakespeare_vs_nanogpt.py --nanogpt /tmp/nanogpt
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from forgeml.data.windows import WindowBatcher

RECIPE = ["--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=50", "--block_size=64", "--batch_size=12",
          "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]


def full_loss(model_fn, tokens: np.ndarray, block: int = 64) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in WindowBatcher(tokens, block, 64, 0, sequential=True).epoch(0):
            logits = model_fn(x)
            total += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"))
            count += y.numel()
    return total / count


def prepare_nanogpt_data(root: Path) -> Path:
    """nanoGPT's shakespeare_char train.bin/val.bin from our copy of the text (its prepare.py, never downloading)."""
    data = root / "data" / "shakespeare_char"
    shutil.copy("data/tinyshakespeare/input.txt", data / "input.txt")
    stub = "import runpy, sys, types; sys.modules['requests'] = types.ModuleType('requests'); runpy.run_path('prepare.py', run_name='__main__')"
    subprocess.run([sys.executable, "-c", stub], cwd=data, check=True, capture_output=True)
    return data


def nanogpt_full_loss(root: Path, out_dir: str = "out-shakespeare-char") -> float:
    """nanoGPT's saved model measured like forgeml's: mean next-token loss over the whole held-out text."""
    sys.path.insert(0, str(root))
    from model import GPT, GPTConfig  # nanoGPT's own model class, from the checkout

    ckpt = torch.load(root / out_dir / "ckpt.pt", map_location="cpu", weights_only=True)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    model.eval()
    val = np.memmap(root / "data" / "shakespeare_char" / "val.bin", dtype=np.uint16, mode="r")
    # with targets nanoGPT returns logits for every position; its loss uses .view, so contiguous inputs
    return full_loss(lambda x: model(x.contiguous(), x.contiguous())[0], val)


def run_nanogpt(root: Path) -> dict:
    prepare_nanogpt_data(root)
    log = subprocess.run([sys.executable, "train.py", "config/train_shakespeare_char.py", *RECIPE], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    estimates = {int(s): float(v) for s, v in re.findall(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", log)}
    return {"estimate_2000": estimates.get(2000), "full": nanogpt_full_loss(root)}


def run_forgeml() -> dict:
    import forgeml

    with tempfile.TemporaryDirectory() as runs:
        run = forgeml.train("examples/shakespeare-gpt.yaml", {"runs_dir": runs, "train.progress": False, "train.tensorboard": False})
        history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
        estimate = [r["loss"] for r in history if r["split"] == "val" and r["step"] == 2000]
        return {"estimate_2000": estimate[0] if estimate else None, "full": json.loads((run / "metrics.json").read_text())["val"]["loss"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nanogpt", required=True, type=Path, help="a nanoGPT checkout (its train.py, model.py, config/)")
    args = ap.parse_args()
    ng = run_nanogpt(args.nanogpt.resolve())
    print(f"nanoGPT: {ng}", flush=True)
    ours = run_forgeml()
    print(f"forgeml: {ours}", flush=True)
    print("\n| implementation | val loss at 2,000, the trainer's own estimate | val loss at 2,000, whole held-out text |")
    print("|---|---:|---:|")
    print(f"| nanoGPT (its README command; estimate = 20 random batches) | {ng['estimate_2000']:.4f} | {ng['full']:.4f} |")
    print(f"| forgeml examples/shakespeare-gpt.yaml (estimate = 50 fixed batches) | {ours['estimate_2000']:.4f} | {ours['full']:.4f} |")


if __name__ == "__main__":
    main()
