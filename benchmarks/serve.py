"""Serving throughput: the MNIST CNN behind `forgeml serve` with dynamic batching against the same server doing one
forward pass per request (--max-batch-size 1), at concurrency 32, alternating rounds; LitServe with its own batching
when it is importable; then a 10,000-request check that no answer is lost or mixed up.

    PYTHONPATH=src python benchmarks/serve.py [RUN] [--requests 2000] [--rounds 3] [--concurrency 32] [--check 10000]
                                              [--litserve-path /tmp/litserve-pkgs]

Without RUN it trains examples/mnist-cnn.yaml with --set train.epochs=1 into a temporary folder. Each server is its own
process (`python -m forgeml serve RUN --port P ...`); the load comes from this process (httpx.AsyncClient, a fixed
count of requests, each a different 28x28 test image as base64 PNG, `concurrency` in flight). On a small machine the
client shares the cores with the server: compare the ratio, not the absolute figures. LitServe is not a forgeml
dependency: install it beside, e.g. `pip install --target /tmp/litserve-pkgs --no-deps litserve httptools pyzmq uvloop
python-dotenv watchfiles websockets`, and pass --litserve-path.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

LITSERVE_APP = '''
import base64, io, sys
import numpy as np
import litserve as ls
from PIL import Image
import forgeml

class MnistAPI(ls.LitAPI):
    def setup(self, device):
        self.model = forgeml.load(sys.argv[1])
        self.name = self.model.features.inputs[0].name
    def decode_request(self, request):
        with Image.open(io.BytesIO(base64.b64decode(request["image"]))) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8)[None]  # (1, H, W)
    def batch(self, inputs):
        return list(inputs)
    def predict(self, images):
        return self.model.predict([{self.name: im} for im in images])
    def unbatch(self, output):
        return output
    def encode_response(self, output):
        return {"predictions": [output]}

if __name__ == "__main__":
    server = ls.LitServer(MnistAPI(max_batch_size=64, batch_timeout=0.005), accelerator="cpu", workers_per_device=1)
    server.run(port=int(sys.argv[2]), generate_client_file=False)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_mnist(where: Path) -> Path:
    cmd = [sys.executable, "-m", "forgeml", "train", "examples/mnist-cnn.yaml", "--set", "train.epochs=1", "--set",
           f"runs_dir={where}", "--set", "train.progress=false", "--set", "train.tensorboard=false"]
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    return where / "mnist-cnn"


def test_images(run: Path, n: int) -> np.ndarray:
    """The run's first n held-out images, (n, 1, H, W) uint8 (fewer when the split is smaller, then cycled)."""
    import forgeml
    from forgeml.data.prepare import load_columns

    model = forgeml.load(run)
    splits = load_columns(model.config.data)
    cols = splits["test"] if "test" in splits else splits["val"]
    images = np.asarray(cols.data[model.features.inputs[0].name][: min(n, len(cols))])
    return images if images.ndim == 4 else images[:, None]


def png_b64(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image[0]).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


class Server:
    """A server process on a free port, up until stop()."""

    def __init__(self, cmd: list[str], env: dict[str, str], ready_path: str, port: int):
        self.url, self.ready_path = f"http://127.0.0.1:{port}", ready_path
        # a session of its own: LitServe forks workers that outlive a plain terminate() of their parent
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        for _ in range(1200):
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"server {' '.join(cmd)} ended: {self.proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        raise SystemExit(f"{self.url}{ready_path} never answered")

    def stop(self) -> None:
        import signal

        os.killpg(self.proc.pid, signal.SIGTERM)  # the server and every process it started
        self.proc.wait(30)


def forgeml_server(run: Path, max_batch_size: int) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "forgeml", "serve", str(run), "--port", str(port), "--max-batch-size", str(max_batch_size)]
    return Server(cmd, {**os.environ, "PYTHONPATH": str(ROOT / "src")}, "/ready", port)


async def load(url: str, path: str, payloads: list[str], n: int, concurrency: int) -> tuple[float, np.ndarray, list]:
    """(seconds, per-request latencies, answers) for n requests, `concurrency` in flight; request i sends payload i % len.

    A bare HTTP/1.1 keep-alive client on asyncio streams, requests prebuilt as bytes: on 2 cores the load generator
    shares the CPU with the server, and httpx spent about 7 ms of CPU per request (the server 1.4): the figure
    measured the client. This one spends a small fraction of that, so the server sets the pace."""
    import json
    import re
    from urllib.parse import urlsplit

    where = urlsplit(url)
    host, port = where.hostname, where.port
    requests = []
    for p in payloads:
        body = json.dumps({"image": p}).encode()
        requests.append(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    latencies, answers = np.zeros(n), [None] * n
    length_of = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")

    async def worker(indices):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in indices:  # one iterator shared by the workers: each request is sent once
                start = time.perf_counter()
                writer.write(requests[i % len(requests)])
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(int(length_of.search(head).group(1)))
                latencies[i] = time.perf_counter() - start
                status = int(head[9:12])
                answers[i] = json.loads(body) if status == 200 else {"status": status, "error": body.decode(errors="replace")}
        finally:
            writer.close()

    warm = iter(range(min(n, 4 * concurrency)))  # open the connections and warm the model; overwritten below
    await asyncio.gather(*[worker(warm) for _ in range(concurrency)])
    indices = iter(range(n))
    start = time.perf_counter()
    await asyncio.gather(*[worker(indices) for _ in range(concurrency)])
    return time.perf_counter() - start, latencies, answers


def row(name: str, seconds: float, lat: np.ndarray, n: int) -> tuple[str, float, float, float]:
    return name, n / seconds, float(np.percentile(lat, 50)) * 1000, float(np.percentile(lat, 99)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", help="an MNIST run folder (default: train examples/mnist-cnn.yaml for 1 epoch)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server, alternating (default 3)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--check", type=int, default=10_000, help="requests in the lost/mixed-up check (0: skip; default 10000)")
    parser.add_argument("--litserve-path", help="a folder holding litserve and its extra dependencies (pip install --target)")
    args = parser.parse_args()

    from forgeml.training.runtime import describe_cpu

    print(f"cpu: {describe_cpu()}, {os.cpu_count()} cores; load: {open('/proc/loadavg').read().split()[:3]}")
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    run = Path(args.run) if args.run else train_mnist(tmp)
    images = test_images(run, 1000)
    payloads = [png_b64(im) for im in images]
    print(f"run: {run}; {len(payloads)} distinct test images; {args.requests} requests per round at concurrency {args.concurrency}")

    servers = {"forgeml, dynamic batching (max 64, 5 ms)": forgeml_server(run, 64),
               "forgeml, one pass per request (--max-batch-size 1)": forgeml_server(run, 1)}
    paths = dict.fromkeys(servers, "/v1/predict")
    litserve_note = None
    if args.litserve_path:
        script = tmp / "litserve_app.py"
        script.write_text(LITSERVE_APP)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": f"{args.litserve_path}:{ROOT / 'src'}"}
        try:
            servers["LitServe, its batching (max 64, 5 ms)"] = Server([sys.executable, str(script), str(run), str(port)], env,
                                                                     "/health", port)
            paths["LitServe, its batching (max 64, 5 ms)"] = "/predict"
        except SystemExit as exc:
            litserve_note = f"LitServe did not start: {str(exc)[-300:]}"
    else:
        litserve_note = "LitServe: not measured (no --litserve-path given; see the docstring)"
    results: dict[str, list] = {name: [] for name in servers}
    try:
        for r in range(args.rounds):
            for name, server in servers.items():
                seconds, lat, answers = asyncio.run(load(server.url, paths[name], payloads, args.requests, args.concurrency))
                bad = sum(1 for a in answers if "predictions" not in a)
                results[name].append((seconds, lat))
                print(f"round {r + 1}  {name:55s} {args.requests / seconds:8.1f} req/s  errors {bad}", flush=True)
        print(f"\n| server | req/s (median of {args.rounds}) | p50 ms | p99 ms |\n|---|---|---|---|")
        table = {}
        for name, rounds in results.items():
            best = sorted(rounds, key=lambda x: x[0])[len(rounds) // 2]  # the median round by time
            table[name] = row(name, best[0], best[1], args.requests)
            print(f"| {name} | {table[name][1]:.0f} | {table[name][2]:.1f} | {table[name][3]:.1f} |")
        names = list(table)
        print(f"\ndynamic batching / one pass per request: {table[names[0]][1] / table[names[1]][1]:.2f}x throughput")
        if litserve_note:
            print(litserve_note)
        if args.check:
            import forgeml

            predictor = forgeml.load(run)
            n = args.check
            want = predictor.predict([{predictor.features.inputs[0].name: images[i % len(images)]} for i in range(len(images))])
            seconds, lat, answers = asyncio.run(load(servers[names[0]].url, "/v1/predict", payloads, n, args.concurrency))
            errors = sum(1 for a in answers if "predictions" not in a)
            mixed = sum(1 for i, a in enumerate(answers) if "predictions" in a and a["predictions"][0]["label"] != want[i % len(images)]["label"])
            print(f"check: {n} requests at concurrency {args.concurrency} in {seconds:.1f} s: {errors} errors, {mixed} answers "
                  f"not matching forgeml.load(run).predict for their own image, {n - errors - mixed} right")
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
