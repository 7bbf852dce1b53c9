"""Loop overhead: what forgeml's Trainer costs per sample, against loops written without it.

What it measures: training throughput (samples/s) of the same model, from the same initial weights
(copy.deepcopy of one seeded model), on the same data, with the same batch size and the same optimizer
(AdamW, lr 1e-3, weight_decay 0, foreach=True), trained by four loops:

  hand loop      per epoch one randperm + one gather, then contiguous slices; forward, F.cross_entropy,
                 backward, opt.step(), opt.zero_grad(set_to_none=True); no .item() until the end.
  tutorial loop  DataLoader(TensorDataset(x, y), batch_size=B, shuffle=True) (per-sample indexing and
                 collate), the same step, plus loss.item() every step as the PyTorch tutorials do.
  Lightning      lightning.pytorch.Trainer(accelerator="cpu", devices=1, logger=False, no checkpointing,
                 progress bar or model summary) over the same kind of DataLoader; skipped, with the
                 reason printed, when `import lightning` fails.
  forgeml        forgeml.training.trainer.Trainer(..., progress=False, tensorboard=False, no run_dir,
                 no validation data) over a TensorBatcher.

Workloads, on real MNIST images (data/mnist/t10k-images-idx3-ubyte.gz, the first --samples images):
  cnn  conv 1->32 k3, relu, conv 32->64 k3, relu, maxpool 2, fc 9216->128, relu, fc 128->10; batch 64, 1 epoch
  mlp  784->256, relu, 256->10 on the flattened images; batch 256, 12 epochs (tiny steps: per-step
       overhead shows most here)

Only the training call is timed (the hand/tutorial loop itself, Lightning's and forgeml's fit());
building the model copy, optimizer, DataLoader and Trainer objects is outside the clock. Everything
runs in one process: per workload a warmup round of every method, then --rounds rounds whose method
order rotates by one each round. Reported: the median samples/s per method and its ratio to the hand
loop, taken per round and then the median (1.00 = no overhead; below 1 = slower). The hand loop draws the same permutations as
TensorBatcher, so after the warmup round the script also prints how far its weights are from
forgeml's (0 or float noise: both did the same arithmetic).

Threads: torch's default (torch.get_num_threads()), printed with the torch version and the CPU.

Run (from the repository root):
    .venv/bin/python benchmarks/loop_overhead.py             # full run, about 3 minutes on 2 CPU cores
    .venv/bin/python benchmarks/loop_overhead.py --quick     # smoke test: tiny sizes, 1 round, under a minute
Options: --rounds N (default 7; --quick: 1), --samples N (default 2048; --quick: 256; at most 10000).
Lightning is measured only where it imports: pip install lightning "torch==2.13.0" (torch must stay the same).
The markdown table at the end is ready to paste into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import copy
import gc
import gzip
import logging
import os
import platform
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "data" / "mnist"
SEED = 0
LR = 1e-3


# ------------------------------------------------------------------------------------------------ data
def load_mnist(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n test-set images as float (N, 1, 28, 28), normalised like the PyTorch MNIST example."""
    images = np.frombuffer(gzip.open(MNIST / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    labels = np.frombuffer(gzip.open(MNIST / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    if not 0 < n <= len(images):
        raise SystemExit(f"--samples must be between 1 and {len(images)}")
    x = torch.from_numpy(images[:n].astype(np.float32) / 255.0)
    x = (x - 0.1307) / 0.3081
    y = torch.from_numpy(labels[:n].astype(np.int64))
    return x.contiguous(), y


def mnist_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(9216, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def small_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


@dataclass
class Workload:
    name: str
    make_model: Callable[[], nn.Module]
    x: torch.Tensor
    y: torch.Tensor
    batch_size: int
    epochs: int


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    # forgeml's adamw: foreach kernels; its weight decay (default 0) only splits parameters into groups
    return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0, foreach=True)


def seed_everything(seed: int = SEED) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def tensor_dataloader(w: Workload) -> DataLoader:
    return DataLoader(TensorDataset(w.x, w.y), batch_size=w.batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(SEED))


# --------------------------------------------------------------------------------------------- methods
# Each runner trains `model` in place and returns the seconds its training call took.

def run_hand(model: nn.Module, w: Workload) -> float:
    opt = make_optimizer(model)
    model.train()
    x, y, bs, n = w.x, w.y, w.batch_size, len(w.y)
    start = time.perf_counter()
    for epoch in range(w.epochs):
        g = torch.Generator().manual_seed(SEED * 1_000_003 + epoch)  # the permutation TensorBatcher draws
        perm = torch.randperm(n, generator=g)
        xs, ys = x[perm], y[perm]  # one gather per epoch
        for i in range(0, n, bs):
            loss = F.cross_entropy(model(xs[i : i + bs]), ys[i : i + bs])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    loss.item()  # the only host read, at the end
    return time.perf_counter() - start


def run_tutorial(model: nn.Module, w: Workload) -> float:
    opt = make_optimizer(model)
    loader = tensor_dataloader(w)
    model.train()
    start = time.perf_counter()
    for _ in range(w.epochs):
        running = 0.0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            running += loss.item()  # per step, as the tutorials do
    return time.perf_counter() - start


def lightning_runner() -> tuple[Callable[[nn.Module, Workload], float] | None, str]:
    """The Lightning runner, or None and why it cannot run."""
    try:
        import lightning.pytorch as pl
    except Exception as exc:  # ImportError, or a Lightning built for another torch
        return None, f"`import lightning` failed ({type(exc).__name__}: {exc}); install with pip install lightning \"torch=={torch.__version__.split('+')[0]}\""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)  # "GPU available: False ..." banners

    class LitWrap(pl.LightningModule):
        def __init__(self, model: nn.Module):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return F.cross_entropy(self.model(xb), yb)

        def configure_optimizers(self):
            return make_optimizer(self.model)

    def run_lightning(model: nn.Module, w: Workload) -> float:
        module = LitWrap(model)
        loader = tensor_dataloader(w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # num_workers advice etc.
            trainer = pl.Trainer(max_epochs=w.epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False)
            start = time.perf_counter()
            trainer.fit(module, train_dataloaders=loader)
            return time.perf_counter() - start

    return run_lightning, f"lightning {pl.__version__}"


def run_forgeml(model: nn.Module, w: Workload) -> float:
    from forgeml.data.batcher import TensorBatcher
    from forgeml.training.trainer import Trainer

    trainer = Trainer(model, "cross_entropy", optimizer="adamw", lr=LR, epochs=w.epochs, batch_size=w.batch_size, progress=False,
                      log_every_steps=50, tensorboard=False, seed=SEED, device="cpu")
    batches = TensorBatcher(w.x, w.y, w.batch_size, shuffle=True, seed=SEED)
    start = time.perf_counter()
    trainer.fit(batches)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ main
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def max_weight_diff(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


def time_one(run: Callable[[nn.Module, Workload], float], initial: nn.Module, w: Workload) -> tuple[float, float, nn.Module]:
    """(samples per wall second, samples per CPU second of this process, trained model).

    CPU time is reported beside wall time because this kind of shared VM loses whole slices of wall
    time to its neighbours; CPU seconds are what the loop itself spent."""
    model = copy.deepcopy(initial)
    seed_everything()
    gc.collect()
    cpu = time.process_time()
    seconds = run(model, w)
    cpu = time.process_time() - cpu
    n = len(w.y) * w.epochs
    return n / seconds, n / cpu, model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per workload after the warmup (default 7; --quick: 1)")
    ap.add_argument("--samples", type=int, default=None, help="MNIST images to train on (default 2048; --quick: 256)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and 1 round: a smoke test, not a measurement")
    args = ap.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 7)
    if rounds < 1:
        ap.error("--rounds must be at least 1")
    n = args.samples or (256 if args.quick else 2048)
    seed_everything()

    x, y = load_mnist(n)
    workloads = [
        Workload("MNIST CNN, batch 64", mnist_cnn, x, y, 64, 1),
        Workload("MLP 784-256-10, batch 256", small_mlp, x.reshape(n, 784), y, 256, 2 if args.quick else 12),
    ]
    methods: list[tuple[str, Callable[[nn.Module, Workload], float]]] = [
        ("hand loop (tensor batching)", run_hand),
        ("tutorial loop (DataLoader over TensorDataset, loss.item() per step)", run_tutorial),
    ]
    lightning, lightning_note = lightning_runner()
    if lightning is not None:
        methods.append((f"PyTorch Lightning {lightning_note.split()[-1]} (DataLoader over TensorDataset)", lightning))
    else:
        print(f"Lightning: skipped: {lightning_note}", flush=True)
    methods.append(("forgeml Trainer (TensorBatcher)", run_forgeml))
    hand = methods[0][0]

    env = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU: {cpu_name()} "
           f"({os.cpu_count()} logical cores), "
           f"Python {platform.python_version()}")
    print(env)
    print(f"{n} MNIST images; median of {rounds} round(s) after 1 warmup round; method order rotates each round", flush=True)

    rows: list[tuple[str, str, float, float, float]] = []
    for w in workloads:
        torch.manual_seed(SEED)
        initial = w.make_model()
        steps = -(-len(w.y) // w.batch_size) * w.epochs
        print(f"\n## {w.name}: {w.epochs} epoch(s), {steps} steps per run", flush=True)
        trained: dict[str, nn.Module] = {}
        for label, run in methods:  # warmup: allocator, kernels, lazy imports
            _, _, trained[label] = time_one(run, initial, w)
        diff = max_weight_diff(trained[hand], trained[methods[-1][0]])
        print(f"  warmup done; max |w_hand - w_forgeml| after training = {diff:.3g}", flush=True)
        del trained
        speeds: dict[str, list[float]] = {label: [] for label, _ in methods}
        cpu_speeds: dict[str, list[float]] = {label: [] for label, _ in methods}
        for r in range(rounds):
            order = methods[r % len(methods):] + methods[: r % len(methods)]
            for label, run in order:
                speed, cpu_speed, _ = time_one(run, initial, w)
                speeds[label].append(speed)
                cpu_speeds[label].append(cpu_speed)
            print(f"  round {r + 1}: " + ", ".join(f"{label.split(' (')[0]} {speeds[label][-1]:,.0f}" for label, _ in methods), flush=True)
        for label, _ in methods:
            # paired: each round's ratio against the hand loop of the same round, then the median;
            # robust to the machine getting faster or slower between rounds
            paired = [s / h for s, h in zip(speeds[label], speeds[hand])]
            cpu_paired = [s / h for s, h in zip(cpu_speeds[label], cpu_speeds[hand])]
            rows.append((w.name, label, statistics.median(speeds[label]), statistics.median(paired), statistics.median(cpu_paired)))

    print("\n| workload | method | samples/s (median) | ratio vs hand loop, wall | ratio vs hand loop, CPU time |")
    print("|---|---|---:|---:|---:|")
    for name, label, med, ratio, cpu_ratio in rows:
        print(f"| {name} | {label} | {med:,.0f} | {ratio:.2f} | {cpu_ratio:.2f} |")
    print(f"\n{env}; median samples/s of {rounds} round(s), {n} images"
          + ("; Lightning not installed, not measured" if lightning is None else "") + ".")
    if args.quick:
        print("(--quick: tiny sizes, a smoke test; these numbers are not a measurement)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
