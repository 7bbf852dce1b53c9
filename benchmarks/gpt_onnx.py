"""The GPT through ONNX Runtime: latency per generated token at batch 1 (PyTorch with its KV cache, ONNX Runtime fp32
and int8 with theirs) and the forward pass at batch 32 x block_size (fp32 vs int8 ONNX Runtime), with validation loss.

    python benchmarks/gpt_onnx.py runs/shakespeare-gpt [--tokens 200] [--repeats 20]

The run is copied to a temporary folder first (export and compress write into a run and beside it); the original is
only read. Threads: torch's default (the CPU's cores), the same for ONNX Runtime.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import forgeml
from forgeml.compression import make_int8
from forgeml.data.corpus import open_tokens
from forgeml.export.onnx import export_onnx, held_out_inputs, open_session
from forgeml.models.generation import TorchDecoder
from forgeml.training.runtime import describe_cpu


def per_token_ms(decoder, prompt: list[int], tokens: int) -> float:
    """Median ms per new token: the prompt once, then one token per step with the cache (greedy, no sliding)."""
    times = []
    with torch.inference_mode():
        logits, cache = decoder.logits(prompt, decoder.new_cache())
        for _ in range(tokens):
            nxt = int(logits.argmax(-1))
            start = time.perf_counter()
            logits, cache = decoder.logits([nxt], cache)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def forward_ms(session, feed: dict[str, np.ndarray], repeats: int) -> float:
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--tokens", type=int, default=0, help="tokens generated per latency run (default: half the context)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    print(f"CPU: {describe_cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory(prefix="gpt-onnx-") as tmp:
        run = Path(tmp) / args.run.name
        shutil.copytree(args.run, run, ignore=shutil.ignore_patterns("checkpoints", "tensorboard", "model.onnx"))
        export_onnx(run)
        int8 = make_int8(run)
        torch_lm, fp32_lm, int8_lm = forgeml.load(run), forgeml.load(run, backend="onnx"), forgeml.load(int8)
        block = torch_lm.features.inputs[0].block_size
        tokens = args.tokens or block // 2
        prompt = torch_lm.features.inputs[0].encode("ROMEO:")[: block // 4]
        decoders = {"PyTorch eager, KV cache": TorchDecoder(torch_lm.model, torch.device("cpu")),
                    "ONNX Runtime fp32, KV cache": fp32_lm._decoder, "ONNX Runtime int8, KV cache": int8_lm._decoder}
        print(f"\nper generated token at batch 1 (prompt {len(prompt)} tokens, {tokens} new, median):")
        base = None
        for name, decoder in decoders.items():
            ms = statistics.median(per_token_ms(decoder, prompt, tokens) for _ in range(3))
            base = base or ms
            print(f"  {name:30s} {ms:7.3f} ms   {base / ms:5.2f}x")
        x, _ = held_out_inputs(torch_lm.config, torch_lm.features, args.batch, run=run, network=torch_lm.model)
        feed = {k: v.numpy() for k, v in x.items()}
        threads = torch.get_num_threads()
        fp32_ms = forward_ms(open_session(run / "model.onnx", threads), feed, args.repeats)
        int8_ms = forward_ms(open_session(int8 / "model.onnx", threads), feed, args.repeats)
        loss_fp32 = fp32_lm.evaluate_tokens(open_tokens(run / "data" / "val.bin", fp32_lm.tokenizer.vocab_size))["loss"]
        loss_int8 = forgeml.load(int8).bundle.read_json("metrics.json")["val"]["loss"]
        size = {p: (p / "model.onnx").stat().st_size / 1e6 for p in (run, int8)}
        print(f"\nforward at batch {args.batch} x {block} tokens, no past (median of {args.repeats}):")
        print(f"  ONNX Runtime fp32  {fp32_ms:8.2f} ms   val loss {loss_fp32:.4f}   {size[run]:.2f} MB")
        print(f"  ONNX Runtime int8  {int8_ms:8.2f} ms   val loss {loss_int8:.4f}   {size[int8]:.2f} MB   "
              f"{fp32_ms / int8_ms:.2f}x faster, loss {100 * (loss_int8 - loss_fp32) / loss_fp32:+.2f}%")


if __name__ == "__main__":
    main()
