"""The Trainer: one plain loop for any nn.Module and loss.

    trainer = forgeml.Trainer(model, "cross_entropy", optimizer="adamw", lr=1e-3, epochs=5)
    result = trainer.fit((x_train, y_train), (x_val, y_val))

The loop, in order: forward/backward over grad_accum micro-batches -> unscale and clip -> step ->
zero_grad(set_to_none) -> schedule -> log on an interval -> evaluate/checkpoint on an interval.
Device and precision are fixed before the loop (Runtime); the loop itself does not branch on them.
Loss values stay on the device and are read (.item(), a host sync) only on the log interval; in between,
every 10 steps a copy of the mean loss goes to the host without waiting (LossWatch), so a NaN/inf loss
stops the run with TrainingDiverged within 2 x 10 steps, before anything non-finite is saved.

Two losses: `loss_fn` is the training objective (label smoothing, class weights) and is what train
records in history.jsonl call `loss`; `eval_loss_fn` is what val records call `loss` (by default the
plain loss, without smoothing or weights: the quantity metrics.json reports).
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from forgeml.config import TrainConfig
from forgeml.data.batcher import as_batches
from forgeml.data.tensor_dict import n_rows, numel
from forgeml.notes import note
from forgeml.training import distributed
from forgeml.training import strategy as strategies
from forgeml.training.callbacks import Callback, HistoryWriter, ProgressBar, TensorBoard
from forgeml.training.checkpoint import (
    capture_rng,
    kept_torch_rng,
    restore_rng,
)
from forgeml.training.compiling import CompileTimer, compile_pays
from forgeml.training.freeze import GradualUnfreeze, apply_freeze
from forgeml.training.loss_watch import EVERY as LOSS_WATCH_EVERY
from forgeml.training.loss_watch import LossWatch
from forgeml.training.losses import build_loss
from forgeml.training.optim import build_optimizer
from forgeml.training.runtime import Runtime
from forgeml.training.schedules import build_schedule

LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse", "perplexity", "error")


def peak_device_flops(device: torch.device, dtype: torch.dtype | None) -> float | None:
    """Dense peak FLOP/s of a known GPU for the training dtype (for MFU); None when unknown."""
    name = torch.cuda.get_device_name(device)
    table = {"H100": (989e12, 67e12), "H200": (989e12, 67e12), "A100": (312e12, 19.5e12), "L4": (121e12, 30e12)}
    for key, (half, fp32) in table.items():
        if key in name:
            return half if dtype in (torch.bfloat16, torch.float16) else fp32
    return None


class StopTraining(Exception):
    """Raise from a callback to end training cleanly after the current step."""


@contextlib.contextmanager
def graceful_interrupt(trainer: Trainer):
    """First Ctrl-C: finish the current step (and its evaluation/checkpoint), save, stop. Second: stop now.

    Stopping only at a step boundary is what makes a resume exact, even mid gradient accumulation."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; elsewhere the last periodic checkpoint is the resume point
        return

    def handler(signum, frame):
        if trainer.interrupted:
            raise KeyboardInterrupt
        trainer.interrupted = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class FitResult:
    steps: int
    epochs: float
    wall_time: float
    samples_per_s: float
    best: dict[str, Any] = field(default_factory=dict)
    last_eval: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    weights: dict[str, Any] = field(default_factory=dict)  # {"step": N, "why": "..."}: where the model's weights come from


class Monitor:
    """Tracks the best value of one metric ('val.accuracy') and evaluations without improvement."""

    def __init__(self, name: str, min_delta: float = 0.0):
        self.name, self.min_delta = name, min_delta
        self.mode = "min" if any(k in name for k in LOWER_IS_BETTER) else "max"
        self.best: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0

    def update(self, value: float, step: int) -> bool:
        """True when `value` improves on the best so far (a NaN or infinite value never does)."""
        better = math.isfinite(value) and (self.best is None or (
            value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta))
        if better:
            self.best, self.best_step, self.bad_evals = value, step, 0
        else:
            self.bad_evals += 1
        return better

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step, self.bad_evals = state["best"], state["best_step"], state["bad_evals"]


def _train_config(config: TrainConfig | None, settings: dict[str, Any]) -> TrainConfig:
    from pydantic import ValidationError

    from forgeml.config import format_validation_error
    from forgeml.errors import ConfigError

    try:
        return TrainConfig(**{**(config.model_dump() if config is not None else {}), **settings})
    except ValidationError as exc:
        raise ConfigError("Trainer settings:\n" + format_validation_error(exc, TrainConfig, "train")) from None


@contextlib.contextmanager
def own_global_state(runtime: Runtime):
    """fit() seeds torch's RNG and sets its thread count for itself; the caller's RNG streams (torch on every device, numpy,
    random) and thread count are put back as found when it returns."""
    np_state, py_state, threads = np.random.get_state(), random.getstate(), torch.get_num_threads()
    with kept_torch_rng():
        torch.set_num_threads(runtime.threads)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            np.random.set_state(np_state)
            random.setstate(py_state)


class Trainer:
    """Train any nn.Module with any loss.

    Args:
        model: the module; its forward takes a batch of inputs and returns outputs for `loss_fn`.
        loss_fn: the training objective: a name (cross_entropy, mse, l1, huber, bce) or any callable
            (outputs, targets) -> scalar; None takes train.loss from the settings. A name gets train.label_smoothing
            and train.class_weights.
        optimizer: a name (sgd, adam, adamw, rmsprop) or a ready torch.optim.Optimizer; None (default) takes
            train.optimizer from the settings (adamw unless set).
        eval_loss_fn: the loss measured on validation data; None: the plain named loss (no smoothing or
            weights) when loss_fn is a name or None, else loss_fn itself.
        metrics: optional factory of an object with update(outputs, targets) and compute() -> dict,
            measured on validation data at every evaluation.
        callbacks: extra Callback objects (they run on rank 0 only, as the progress bar and the history do).
        run_dir: where history.jsonl, checkpoints/ and tensorboard/ go (None: nothing written).
        config: a TrainConfig; or give its fields as keyword arguments (epochs=5, lr=3e-4, precision="bf16").

    Another objective: subclass and override `compute_loss(x, y)` (the loss of one micro-batch), or `train_step(x, y)`
    (its forward and backward); the loop, accumulation, clipping, logging and checkpoints stay as they are.

    Several processes (torchrun, or `forgeml train --nproc N`): train.strategy picks DDP or FSDP (training/strategy.py);
    train.batch_size stays the global batch, each rank takes its slice, and only rank 0 logs and writes files.

    Example:
        >>> model = torch.nn.Linear(4, 3)
        >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
        >>> Trainer(model, "cross_entropy", epochs=2, progress=False).fit((x, y)).steps
        2
    """

    private = False  # PrivateTrainer (training/privacy.py) trains with train.privacy; this class refuses it

    def __init__(self, model: nn.Module, loss_fn: str | Callable | None = None, optimizer: str | torch.optim.Optimizer | None = None,
                 *, eval_loss_fn: Callable | None = None, metrics: Callable[[], Any] | None = None, callbacks: Iterable[Callback] = (),
                 run_dir: str | Path | None = None, config: TrainConfig | None = None, **settings: Any):
        if isinstance(optimizer, str):
            settings["optimizer"] = optimizer  # named here: wins over config=, like any keyword setting
        self.cfg = _train_config(config, settings)
        if self.cfg.privacy is not None and not self.private:
            from forgeml.errors import ConfigError

            raise ConfigError("train.privacy: this Trainer would train without it; use "
                              "forgeml.training.privacy.PrivateTrainer (pipeline._trainer does for a config)")
        self.runtime = Runtime(self.cfg.device, self.cfg.precision, self.cfg.threads)
        self.device = self.runtime.device
        distributed.init(self.device)  # joins torchrun's process group, when there is one
        model = model.to(self.device)
        if self.cfg.activation_checkpointing:  # before FSDP: its hooks then run around each block's checkpointed forward
            from forgeml.training import activation_checkpointing

            activation_checkpointing.apply(model)
        self.strategy = strategies.build(self.cfg.strategy, model, self.device, self.cfg.precision)
        self._check_batch_split()
        self.model = self.strategy.prepare(model)  # FSDP shards the parameters before the optimizer takes them
        if loss_fn is None or isinstance(loss_fn, str):  # by name: train.loss (auto = cross entropy), smoothing, weights
            name = loss_fn or (self.cfg.loss if self.cfg.loss != "auto" else "cross_entropy")
            weights = self.cfg.class_weights if isinstance(self.cfg.class_weights, list) else None
            loss_fn = build_loss(name, self.cfg.label_smoothing, weights)
            eval_loss_fn = eval_loss_fn or build_loss(name)
        self.loss_fn = loss_fn.to(self.device) if isinstance(loss_fn, nn.Module) else loss_fn
        eval_loss_fn = eval_loss_fn or loss_fn
        self.eval_loss_fn = eval_loss_fn.to(self.device) if isinstance(eval_loss_fn, nn.Module) else eval_loss_fn
        apply_freeze(self.model, self.cfg.freeze)  # before the optimizer: frozen parameters are not in it at all
        self.optimizer = optimizer if isinstance(optimizer, torch.optim.Optimizer) else build_optimizer(self.model, self.cfg)
        unfreeze = None
        if self.cfg.unfreeze.every_epochs:  # after the optimizer: it holds every layer that will ever train
            if self.strategy.world > 1:
                from forgeml.errors import ConfigError

                raise ConfigError("train.unfreeze: gradual unfreezing runs in one process only (DDP/FSDP fix the trainable "
                                  "parameters when they wrap the model); use train.freeze, or train in one process")
            unfreeze = GradualUnfreeze(self.model, self.cfg.unfreeze.every_epochs)
        self.metrics = metrics
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.callbacks: list[Callback] = [unfreeze] if unfreeze is not None else []  # on every rank: it sets requires_grad
        if self.strategy.is_main:  # one rank logs, shows progress and writes files
            if self.cfg.progress:
                self.callbacks.append(ProgressBar())
            if self.run_dir is not None:
                self.callbacks.append(HistoryWriter(self.run_dir))
                if self.cfg.tensorboard:
                    self.callbacks.append(TensorBoard(self.run_dir))
            self.callbacks += list(callbacks)
        # the wrapped and compiled modules share parameters with self.model; state dicts always come from self.model
        wrapped = self.strategy.wrap(self.model)
        self.compiled = compile_pays(self.cfg.compile, self.device, self.model)  # auto: decided (and said) there
        self.step_model = torch.compile(wrapped) if self.compiled else wrapped
        self.compile_seconds: float | None = None  # the first step's time, where torch.compile compiles (CompileTimer)
        if self.compiled:
            self.callbacks.append(CompileTimer())
        # evaluation calls the model itself under DDP: ranks get uneven numbers of batches there, and DDP's forward
        # would wait for the others to sync buffers
        self.eval_model = self.step_model if wrapped is self.model else self.model
        self.step = 0  # optimizer steps taken
        self.epoch = 0  # epochs completed
        self.batch = 0  # micro-batches consumed in the current epoch
        self.samples = 0
        self.monitor = Monitor(self.cfg.monitor, self.cfg.early_stopping.min_delta)
        self.last_eval: dict[str, Any] = {}
        self.stop = False
        self.interrupted = False
        self.fits = 0  # fit() calls finished: a later one continues training
        self._wall_before = 0.0  # seconds trained before this fit() (earlier calls, or sessions before a resume)
        self._running = torch.zeros((), device=self.device)  # the train loss summed since the last log, on the device
        self._last_finite: tuple[int, float] | None = None  # (step, mean train loss) at the last divergence check

    def _check_batch_split(self) -> None:
        world, micro = self.strategy.world, self.cfg.micro_batch_size()
        if micro % world:
            from forgeml.errors import ConfigError

            raise ConfigError(f"train.batch_size: {self.cfg.batch_size} rows per step in {self.cfg.grad_accum} micro-step(s) "
                              f"({micro} rows each) do not split across {world} processes; choose a batch size divisible by "
                              f"{world * self.cfg.grad_accum} (train.batch_size is the global batch: every process takes a slice)")

    def describe_batch(self) -> str:
        """'global batch 64 = 2 processes x 32 rows x 1 micro-step': how the batch is made, said at the start of a fit."""
        world, accum = self.strategy.world, self.cfg.grad_accum
        per = self.cfg.batch_size // (world * accum)
        return (f"global batch {self.cfg.batch_size} = {world} process{'es' if world > 1 else ''} x {per} rows x "
                f"{accum} micro-step{'s' if accum > 1 else ''} ({self.strategy.describe()})")

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, train_data, val_data=None, resume: bool = False) -> FitResult:
        """Train on `train_data` (an (x, y) pair of tensors, a TensorBatcher, or any iterable of
        batches), evaluating on `val_data` each epoch (or every eval_every_steps) and always at the last
        step, so the last weights compete for the best. `resume=True` continues from
        run_dir/checkpoints/last.pt exactly where it stopped.

        Calling fit() again continues training, as in Keras: from the current weights and optimizer
        state, for train.epochs (or train.max_steps) more; the step count carries on, the lr schedule
        (warmup included) runs again over the new steps, and early stopping and the best weights are
        judged within the new call.

        Training is seeded by train.seed (a later fit() continues the RNG stream where the previous one
        ended) and uses train.threads CPU threads; the caller's global RNG state and thread count are
        left as found. A loss that becomes NaN or infinite raises TrainingDiverged within 2 x 10 steps (or at
        the next log, when that comes first); checkpoints never hold non-finite weights."""
        cfg = self.cfg
        train = self.strategy.train_batches(as_batches(train_data, cfg.micro_batch_size(), shuffle=True, seed=cfg.seed, device=self.device))
        val = as_batches(val_data, cfg.micro_batch_size() * 4, shuffle=False, device=self.device) if val_data is not None else None
        self.micro_per_epoch = len(train)
        self.steps_per_epoch = math.ceil(self.micro_per_epoch / cfg.grad_accum)
        steps = cfg.max_steps or self.steps_per_epoch * cfg.epochs
        first_step = self.step if self.fits else 0  # a later fit() trains `steps` more
        self.total_steps = first_step + steps
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.scheduler = build_schedule(self.optimizer, cfg, steps, self.steps_per_epoch)
        self.has_val = val is not None
        if self.fits:  # a new call judges its own best and patience, as Keras' callbacks do
            self.monitor = Monitor(cfg.monitor, cfg.early_stopping.min_delta)
            self.stop, self.last_eval = False, {}
        self.train_batches = train  # its data position (a shuffled DataLoader's order) goes into checkpoints
        if self.strategy.is_main:
            note(f"device: {self.runtime.describe()}; {self.describe_batch()}")
            if getattr(train, "drops_short", False):
                note(f"the short batch of each epoch ({train.short_rows} rows, different ones each epoch as the shuffle "
                     f"differs) does not split across {self.strategy.world} processes and is left out")
        with own_global_state(self.runtime):
            if self.fits:
                restore_rng(self._rng)
            else:
                torch.manual_seed(cfg.seed)
            if resume:
                self._resume()
            for cb in self.callbacks:
                cb.on_fit_start(self)
            self._started = time.perf_counter()
            self._paused = 0.0  # seconds spent evaluating and checkpointing in this call: not training throughput
            samples_before = self.samples
            try:
                with graceful_interrupt(self):
                    self._loop(train, val)
            except StopTraining:
                self.stop = True
                self._save_last()
            finally:
                self._rng = capture_rng()  # also when fit raises: a later fit() continues this stream, not an older one
                for cb in self.callbacks:
                    cb.on_fit_end(self)
        elapsed = time.perf_counter() - self._started - self._paused
        wall = self._wall_time()
        self._wall_before = wall
        self.fits += 1
        weights = {"step": self.step, "why": "the last step"}
        if not self.has_val:
            weights["why"] += "; no validation data"
        elif not cfg.restore_best:
            weights["why"] += "; train.restore_best is false"
        elif self.run_dir is None:
            weights["why"] += "; no run_dir to keep the best in"
        elif self.monitor.best_step is not None and self.strategy.broadcast_flag(
                (self.run_dir / "checkpoints" / "best.safetensors").is_file()):
            self.strategy.restore_weights(self.model, self.run_dir / "checkpoints" / "best.safetensors")
            weights = {"step": self.monitor.best_step, "why": f"best {self.monitor.name} {self.monitor.best:.4g}"}
        return FitResult(
            steps=self.step, epochs=self.step / self.steps_per_epoch, wall_time=wall,
            samples_per_s=(self.samples - samples_before) / elapsed if elapsed > 0 else 0.0,
            best={"metric": self.monitor.name, "value": self.monitor.best, "step": self.monitor.best_step} if self.has_val else {},
            last_eval=self.last_eval, stopped_early=self.stop and self.step < self.total_steps, weights=weights,
        )

    def _call(self, event: str, *args) -> None:
        """Every callback's `event`; a StopTraining stops the run after this step, on every rank alike."""
        for cb in self.callbacks:
            try:
                getattr(cb, event)(self, *args)
            except StopTraining:
                self.stop = True

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole model's weights, as the bundle saves them. Under several processes every rank calls it (FSDP gathers
        the shards: a collective); rank 0 gets them all."""
        return self.strategy.full_state_dict(self.model)

    def train_step(self, x, y) -> torch.Tensor:
        """Forward and backward of one micro-batch (gradients accumulate; the optimizer steps in the loop): the seam to
        override for a step of another shape (two backward passes, a gradient penalty). Returns the loss, detached."""
        with self.runtime.autocast():
            loss = self.compute_loss(x, y)
        accum, scaler = self.cfg.grad_accum, self.runtime.scaler
        scaled = loss / accum if accum > 1 else loss
        (scaler.scale(scaled) if scaler else scaled).backward()
        return loss.detach()

    def compute_loss(self, x, y) -> torch.Tensor:
        """The training loss of one micro-batch, under autocast: the seam to override for another objective
        (distillation runs a teacher on the same x here). Must return a scalar with a graph back to the model."""
        return self.loss_fn(self.step_model(x), y)

    def _wall_time(self) -> float:
        """Seconds of training so far, earlier sessions and calls included (what a checkpoint must carry)."""
        return self._wall_before + (time.perf_counter() - self._started)

    def _loop(self, train, val) -> None:
        cfg, model, opt, runtime, strategy = self.cfg, self.step_model, self.optimizer, self.runtime, self.strategy
        scaler = runtime.scaler
        world = strategy.world
        accum = cfg.grad_accum
        # decided once: what each step must do beyond the hand-written minimum
        scheduled = cfg.schedule != "constant" or cfg.warmup_steps > 0
        model.train()
        running = self._running.zero_()  # summed on the device: no sync per step
        running_n, log_samples, log_tokens, log_time = 0, 0, 0, time.perf_counter()
        watch = LossWatch(self.device)  # a NaN/inf loss is noticed within 2 x 10 steps, with no host sync
        flops_per_token = getattr(self.model, "flops_per_token", lambda: None)() if self.device.type == "cuda" else None
        peak_flops = peak_device_flops(self.device, self.runtime.dtype) if flops_per_token else None
        # a long epoch still leaves something to resume: the clock is read once per step, a few ns
        checkpoint_every_s = cfg.checkpoint_every_minutes * 60 if cfg.checkpoint_every_minutes else None
        self._checkpointed_at = time.monotonic()
        while self.step < self.total_steps and not self.stop:
            for x, y in train.epoch(self.epoch, start=self.batch):
                last_micro = (self.batch + 1) % accum == 0 or self.batch + 1 == self.micro_per_epoch
                with strategy.accumulating(model, last_micro):  # DDP all-reduces the gradients on the last one only
                    loss = self.train_step(x, y)
                running += loss
                running_n += 1
                rows = n_rows(y) * world  # a tensor or a dict of them: shapes are on the host, no sync; every rank's rows
                log_samples += rows
                log_tokens += numel(y) * world
                self.samples += rows
                self.batch += 1
                if self.batch % accum and self.batch != self.micro_per_epoch:
                    continue  # gradients keep accumulating over micro-batches
                if scaler is not None:
                    scaler.unscale_(opt)
                if cfg.clip_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad_norm)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                opt.zero_grad(set_to_none=True)  # frees gradient memory until the next backward
                if scheduled:
                    self.scheduler.step()
                self.step += 1
                if self.batch == self.micro_per_epoch:
                    self.epoch, self.batch = self.epoch + 1, 0
                # also at each epoch's end: per-epoch lines and history show that epoch, not a record from epochs ago
                log_now = self.step % cfg.log_every_steps == 0 or self.step == self.total_steps or self.batch == 0
                if log_now:
                    mean = (strategy.reduce_sum(running.clone()) / (running_n * world)).item()  # host sync, on this interval only
                    self._loss_seen(self.step, mean)
                elif self.step % LOSS_WATCH_EVERY == 0 and (seen := watch.check(running / running_n, self.step)):
                    self._loss_seen(*seen)
                if log_now:
                    now = time.perf_counter()
                    record = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4), "split": "train",
                              "loss": mean, "lr": self.scheduler.get_last_lr()[0],
                              "samples_per_s": log_samples / (now - log_time), "time": time.time()}
                    if log_tokens != log_samples:  # sequences: tokens/s (and model FLOPs utilisation on a GPU)
                        record["tokens_per_s"] = log_tokens / (now - log_time)
                        if peak_flops:
                            record["mfu"] = record["tokens_per_s"] * flops_per_token / peak_flops
                    running.zero_()
                    running_n, log_samples, log_tokens, log_time = 0, 0, 0, now
                    self._call("on_log", record)
                self._call("on_step_end")
                at_epoch_end = self.batch == 0
                last_step = self.step >= self.total_steps  # always evaluated: the last weights compete for the best
                paused = time.perf_counter()
                if (cfg.eval_every_steps and self.step % cfg.eval_every_steps == 0) or (not cfg.eval_every_steps and at_epoch_end) \
                        or last_step:
                    self._evaluate_and_monitor(val)
                if at_epoch_end:
                    self._call("on_epoch_end")
                if world > 1:  # a Ctrl-C or a callback's stop on one rank stops every rank at this same step
                    self.interrupted, self.stop = strategy.any_flag(self.interrupted, self.stop)
                if ((cfg.checkpoint_every_steps and self.step % cfg.checkpoint_every_steps == 0) or at_epoch_end
                        or (checkpoint_every_s and time.monotonic() - self._checkpointed_at >= checkpoint_every_s)):
                    self._save_last()
                # evaluation and checkpoints are not training throughput: take their time out of the log window,
                # not the samples counted before them (restarting the window there overstated samples/s)
                paused = time.perf_counter() - paused
                log_time += paused
                self._paused += paused
                if self.interrupted:  # Ctrl-C arrived during this step: stop at its boundary, resumable exactly
                    self._save_last(interrupted=True)
                    raise KeyboardInterrupt
                if last_step or self.stop:
                    break
        self._save_last()

    # ------------------------------------------------------------------------------------ evaluation
    def _evaluate_and_monitor(self, val) -> None:
        if val is None:
            return
        self._check_finite()
        result = self.evaluate(val)
        # JSON has no NaN/inf: a value that is not finite is written as null (and never counts as the best)
        shown = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in result.items()}
        record = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4), "split": "val", **shown, "time": time.time()}
        self.last_eval = record
        self._call("on_eval", record)
        key = self.monitor.name.split(".", 1)[-1]
        if key not in result:
            from forgeml.errors import ConfigError

            raise ConfigError(f"train.monitor: {self.monitor.name!r} is not measured; choose one of "
                              f"{', '.join('val.' + k for k in result)}")
        if self.monitor.update(result[key], self.step) and self.run_dir is not None:  # weights checked finite above
            from forgeml.bundle import save_safetensors

            weights = self.strategy.full_state_dict(self.model)  # every rank: a collective under FSDP
            if self.strategy.is_main:
                save_safetensors(self.run_dir / "checkpoints" / "best.safetensors", weights)
        patience = self.cfg.early_stopping.patience
        if patience and self.monitor.bad_evals >= patience:
            self.stop = True

    @torch.no_grad()
    def evaluate(self, data) -> dict[str, float]:
        """Mean eval_loss_fn (and metrics, when the Trainer has them) over `data`, in eval mode. train.eval_batches: the
        first that many batches only (a fixed set, the same at every evaluation). Several processes share the batches
        out and their sums are reduced: every rank gets the figure of the whole set."""
        batches = as_batches(data, self.cfg.micro_batch_size() * 4, shuffle=False, device=self.device)
        batches = self.strategy.eval_batches(batches, self.cfg.eval_batches)
        was_training = self.model.training
        self.model.eval()
        total, count = torch.zeros((), device=self.device), 0
        metrics = self.metrics() if self.metrics is not None else None
        for x, y in batches.epoch(0):
            with self.runtime.autocast():
                out = self.eval_model(x)
                loss = self.eval_loss_fn(out, y)
            total += loss.float() * numel(y)
            count += numel(y)
            if metrics is not None:
                metrics.update(out.float() if isinstance(out, torch.Tensor) else out, y)
        self.model.train(was_training)
        if self.strategy.world > 1:
            sums = self.strategy.reduce_sum(torch.stack([total.double(), torch.tensor(float(count), dtype=torch.float64, device=self.device)]))
            total, count = sums[0].float(), int(sums[1].item())
        result = {"loss": (total / max(count, 1)).item()}
        if metrics is not None:
            if self.strategy.world > 1 and hasattr(metrics, "sync"):
                metrics.sync(self.strategy.reduce_sum)  # sums a metric keeps itself (perplexity's)
            result.update(metrics.compute())  # torchmetrics gathers every rank's state itself under a process group
        return result

    # ------------------------------------------------------------------------------------ divergence
    def _loss_seen(self, step: int, mean: float) -> None:
        if not math.isfinite(mean):
            raise self._diverged(f"the train loss became {mean}")
        self._last_finite = (step, mean)

    def _check_finite(self) -> None:
        """Before anything is saved or evaluated: the loss so far and every weight must be finite (one host sync;
        rare: evaluations and checkpoints only), so no checkpoint or best weights ever hold NaN."""
        # FSDP's parameters are DTensors: each rank checks its own shard and one collective says whether all were finite
        local = [p.to_local() if hasattr(p, "to_local") else p for p in self.model.parameters()]
        finite = torch.stack([torch.isfinite(self._running)] + [torch.isfinite(p).all() for p in local]).all().item()
        if self.strategy.any_flag(not finite)[0]:
            raise self._diverged("the train loss or the weights became NaN or infinite")

    def _diverged(self, what: str):
        from forgeml.errors import TrainingDiverged

        where = f"{self.run_dir}: " if self.run_dir is not None else ""
        last = (f"the last finite train loss was {self._last_finite[1]:.4g} at step {self._last_finite[0]}"
                if self._last_finite else "no finite train loss was seen")
        kept = ("; checkpoints/last.pt keeps the last good state"
                if self.run_dir is not None and (self.run_dir / "checkpoints" / "last.pt").is_file() else "")
        return TrainingDiverged(f"{where}training diverged by step {self.step}: {what} ({last}{kept}). Try a lower train.lr "
                                f"(now {self.cfg.lr:g}), train.clip_grad_norm=1.0, or train.precision=fp32")

    # ----------------------------------------------------------------------------------- checkpoints
    def _save_last(self, interrupted: bool = False) -> None:
        if self.run_dir is None:
            return
        self._check_finite()
        state = {  # the model and the optimizer: the strategy writes them (whole, or sharded under FSDP)
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.runtime.scaler.state_dict() if self.runtime.scaler is not None else {},
            "step": self.step, "epoch": self.epoch, "batch": self.batch, "samples": self.samples,
            "rng": capture_rng(), "monitor": self.monitor.state_dict(), "stop": self.stop,
            "wall_before": self._wall_time(), "interrupted": interrupted,
            "data": self.train_batches.state_dict() if hasattr(self.train_batches, "state_dict") else {},
            **self._checkpoint_extra(),
        }
        self.strategy.save_checkpoint(self.run_dir / "checkpoints" / "last.pt", state, self.model, self.optimizer)
        self._checkpointed_at = time.monotonic()

    def _checkpoint_extra(self) -> dict[str, Any]:
        """More state for checkpoints/last.pt, from a subclass (plain tensors and numbers: it loads with weights_only)."""
        return {}

    def _load_checkpoint_extra(self, state: dict[str, Any]) -> None:
        """Read back what _checkpoint_extra saved."""

    def _resume(self) -> None:
        if self.run_dir is None:
            raise ValueError("resume needs run_dir, where checkpoints/last.pt was written")
        state = self.strategy.load_checkpoint(self.run_dir / "checkpoints" / "last.pt", self.model, self.optimizer)
        self.scheduler.load_state_dict(state["scheduler"])
        if self.runtime.scaler is not None and state["scaler"]:
            self.runtime.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batch, self.samples = state["step"], state["epoch"], state["batch"], state["samples"]
        self.monitor.load_state_dict(state["monitor"])
        self.stop = state["stop"]
        self._wall_before = state["wall_before"]
        restore_rng(state["rng"])
        if hasattr(self.train_batches, "load_state_dict"):
            self.train_batches.load_state_dict(state.get("data", {}))
        self._load_checkpoint_extra(state)
        if self.strategy.is_main:
            from forgeml.bundle import Bundle

            Bundle(self.run_dir).truncate_history(self.step)
