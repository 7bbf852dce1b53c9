"""Callbacks: how the loop is extended without copying it. Each hook gets the Trainer.

Records passed to on_log/on_eval are plain dicts (already on the host): callbacks never force a sync.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Callback:
    def on_fit_start(self, trainer) -> None: ...
    def on_step_end(self, trainer) -> None: ...
    def on_log(self, trainer, record: dict[str, Any]) -> None: ...
    def on_eval(self, trainer, record: dict[str, Any]) -> None: ...
    def on_epoch_end(self, trainer) -> None: ...
    def on_fit_end(self, trainer) -> None: ...


class ProgressBar(Callback):
    """A rich progress bar over optimizer steps with loss, lr and throughput; a line per evaluation."""

    def __init__(self, console=None):
        self.console = console
        self.progress = None

    def on_fit_start(self, trainer) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = self.console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(bar_width=20), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("lr {task.fields[lr]}"), TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(), console=self.console, transient=False,
        )
        self.progress.start()
        self.every = max(1, trainer.total_steps // 200)
        self.task = self.progress.add_task("train", total=trainer.total_steps, completed=trainer.step,
                                           epoch=self._epoch(trainer), loss="-", lr="-", speed="")

    def _epoch(self, trainer) -> str:
        return f"{min(trainer.epoch + 1, trainer.epochs)}/{trainer.epochs}"

    def on_step_end(self, trainer) -> None:
        if trainer.step % self.every == 0 or trainer.step == trainer.total_steps:  # ~200 updates a run; no tensor, no sync
            self.progress.update(self.task, completed=trainer.step, epoch=self._epoch(trainer))

    def on_log(self, trainer, record: dict[str, Any]) -> None:
        speed = f"{record['samples_per_s']:,.0f} samples/s" if record.get("samples_per_s") else ""
        if record.get("tokens_per_s"):
            speed = f"{record['tokens_per_s']:,.0f} tok/s" + (f" MFU {record['mfu']:.0%}" if record.get("mfu") else "")
        self.progress.update(self.task, loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", speed=speed)
        self.last = record

    def on_epoch_end(self, trainer) -> None:
        if not self.console.is_terminal and getattr(self, "last", None):  # logs and CI: a plain line per epoch
            r = self.last
            speed = f"{r['tokens_per_s']:,.0f} tokens/s" if r.get("tokens_per_s") else f"{r['samples_per_s']:,.0f} samples/s"
            self.console.print(f"  epoch {trainer.epoch}/{trainer.epochs}  step {trainer.step}  train loss {r['loss']:.4f}  "
                               f"lr {r['lr']:.2e}  {speed}")

    def on_eval(self, trainer, record: dict[str, Any]) -> None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in record.items() if isinstance(v, float) and k not in ("time", "epoch", "step"))
        self.progress.console.print(f"  step {record['step']:>6}  epoch {record['epoch']:>3}  {record['split']}  {shown}")

    def on_fit_end(self, trainer) -> None:
        if self.progress is not None:
            self.progress.stop()


class HistoryWriter(Callback):
    """Appends every log and evaluation record to RUN/history.jsonl."""

    def __init__(self, run_dir: str | Path):
        from forgeml.bundle import Bundle

        self.bundle = Bundle(run_dir)

    def on_log(self, trainer, record: dict[str, Any]) -> None:
        self.bundle.append_history(record)

    def on_eval(self, trainer, record: dict[str, Any]) -> None:
        self.bundle.append_history(record)


class TensorBoard(Callback):
    """Scalars to RUN/tensorboard when the tensorboard package is installed (silently off otherwise)."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / "tensorboard"
        self.writer = None

    def on_fit_start(self, trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(str(self.dir))

    def _write(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if isinstance(value, float) and key not in ("step", "epoch", "time"):
                self.writer.add_scalar(f"{record['split']}/{key}", value, record["step"])

    on_log = on_eval = lambda self, trainer, record: self._write(record)  # noqa: E731

    def on_fit_end(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()
