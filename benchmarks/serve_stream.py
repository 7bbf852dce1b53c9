"""Streaming generation over HTTP: time to first token and tokens/s of the shakespeare GPT through POST /v1/generate
(server-sent events, a real uvicorn server on 127.0.0.1), against Predictor.stream called directly in the same process.

    PYTHONPATH=src python benchmarks/serve_stream.py [--run runs/shakespeare-gpt] [--tokens 300] [--rounds 5]

Train the run first if it is not there: forgeml train examples/shakespeare-gpt.yaml (--set train.max_steps=200 for a
quick one; speed does not depend on how well it was trained). The run folder is only read. Direct and served rounds
alternate, each with its own seed (the same seed for both sides of a round, so both produce the same text); medians are
printed. A "token" is one SSE piece (one character for the char-level model). On a shared machine run it alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.serve.tiny_server: the same real-server starter the tests use


def build_app(run: Path):
    try:
        from forgeml.serve.app import create_app  # engineer A's app, once merged
    except ImportError:
        from tests.serve.tiny_server import app_for

        return app_for(run)
    return create_app(run)


def direct(predictor, prompt: str, tokens: int, seed: int) -> tuple[float, int, float]:
    """(seconds to the first piece, pieces, seconds in all) from Predictor.stream, in a fresh thread as the server runs
    it: on a busy 2-core machine the main thread's OpenMP team made the same loop about 6x slower, which would flatter
    the server."""
    out = []

    def work():
        start = time.perf_counter()
        first, n = None, 0
        for _ in predictor.stream(prompt, tokens, temperature=0.8, top_k=40, seed=seed):
            first = first if first is not None else time.perf_counter() - start
            n += 1
        out.append((first, n, time.perf_counter() - start))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out[0]


def served(client, url: str, prompt: str, tokens: int, seed: int) -> tuple[float, int, float]:
    """The same over HTTP: from sending the request to the first `data: {"token"}` event, and to the `done` event."""
    body = {"prompt": prompt, "max_new_tokens": tokens, "temperature": 0.8, "top_k": 40, "seed": seed, "stream": True}
    start = time.perf_counter()
    first, n = None, 0
    with client.stream("POST", url + "/v1/generate", json=body, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if "token" in event:
                first = first if first is not None else time.perf_counter() - start
                n += 1
            elif event.get("done"):
                break
    return first, n, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/shakespeare-gpt")
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompt", default="ROMEO:")
    args = parser.parse_args()

    import httpx
    import torch
    from tests.serve.tiny_server import serving

    run = Path(args.run).resolve()
    app = build_app(run)
    predictor = app.state.predictor
    results = {"direct": [], "served": []}
    with serving(app) as url, httpx.Client() as client:
        direct(predictor, args.prompt, 20, seed=0), served(client, url, args.prompt, 20, seed=0)  # warm up both paths
        for seed in range(args.rounds):
            results["direct"].append(direct(predictor, args.prompt, args.tokens, seed))
            results["served"].append(served(client, url, args.prompt, args.tokens, seed))
    print(f"{run.name}: {args.tokens} new tokens, temperature 0.8, top_k 40, {args.rounds} alternating rounds, medians; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| path | time to first token (ms) | tokens/s | pieces |")
    print("|---|---:|---:|---:|")
    for name, rows in results.items():
        ttft = statistics.median(r[0] for r in rows) * 1000
        rate = statistics.median(r[1] / r[2] for r in rows)
        label = "Predictor.stream, in process" if name == "direct" else "POST /v1/generate, SSE over loopback"
        print(f"| {label} | {ttft:.1f} | {rate:.0f} | {statistics.median(r[1] for r in rows):.0f} |")
    d, s = (statistics.median(r[1] / r[2] for r in results[k]) for k in ("direct", "served"))
    print(f"served / direct tokens/s: {s / d:.2f}")


if __name__ == "__main__":
    main()
