"""Language models end to end: train a GPT on a text corpus, measure loss and perplexity, generate.

    run = forgeml.train("examples/shakespeare-gpt.yaml")
    lm = forgeml.load(run)                       # a LanguageModel
    print(lm.generate("ROMEO:", max_new_tokens=200, temperature=0.8, top_k=40, seed=1))
"""

from __future__ import annotations

import math
import platform
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from forgeml import __version__
from forgeml.bundle import FORMAT_VERSION, Bundle
from forgeml.config import Config
from forgeml.data.corpus import TokenData, open_tokens, prepare_corpus
from forgeml.data.tokenizers import tokenizer_from_json
from forgeml.data.windows import WindowBatcher
from forgeml.errors import BundleError, ConfigError, RequestError, TrainingDiverged
from forgeml.models import build_model, count_parameters
from forgeml.training.callbacks import Callback
from forgeml.training.fit_run import fit_into_bundle
from forgeml.training.trainer import Trainer
from forgeml.trust import require_trust

TASK = "language_model"


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy: logits (B, T, V) against targets (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


class Perplexity:
    """exp(mean next-token cross entropy), streamed over batches."""

    names = ["perplexity"]

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.total += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="sum"))
        self.count += targets.numel()

    def compute(self) -> dict[str, float]:
        return {"perplexity": math.exp(self.total / max(self.count, 1))}


def features_json(tokenizer, block_size: int) -> dict[str, Any]:
    return {"version": 1, "task": TASK, "schema": {"prompt": "text"}, "block_size": block_size,
            "vocab_size": tokenizer.vocab_size, "tokenizer": tokenizer.to_json()}


# ----------------------------------------------------------------------------------------------- train
def check_lm_train(cfg: Config) -> None:
    """A GPT always trains on next-token cross entropy (lm_loss): a setting for another loss would be silently
    ignored, so it is refused before any run folder exists."""
    t, why = cfg.train, "a GPT always trains on plain next-token cross entropy"
    if t.loss not in ("auto", "cross_entropy"):
        raise ConfigError(f"train.loss: {t.loss!r}, but {why}; remove the setting (or set train.loss=auto)")
    if t.label_smoothing:
        raise ConfigError(f"train.label_smoothing: {t.label_smoothing:g}, but {why}; remove the setting (or set it to 0)")
    if t.class_weights != "none":
        raise ConfigError(f"train.class_weights: {t.class_weights!r}, but {why} (tokens are not classes to weigh); "
                          "remove the setting (or set it to none)")


def _batchers(cfg: Config, tokens: TokenData, device) -> tuple[WindowBatcher, WindowBatcher | None]:
    T, B = cfg.model.block_size, cfg.train.micro_batch_size()
    per_epoch = max(1, len(tokens.train) // (B * T))  # an "epoch" is about one pass worth of tokens
    train = WindowBatcher(tokens.train, T, B, per_epoch, seed=cfg.train.seed, device=device)
    val = None
    if tokens.val is not None:
        if cfg.train.eval_batches:  # a fixed set of random windows (epoch 0 of its own seed), the same every time
            val = WindowBatcher(tokens.val, T, B, cfg.train.eval_batches, seed=cfg.train.seed + 1, device=device)
        else:  # None: the whole held-out text, in non-overlapping windows
            val = WindowBatcher(tokens.val, T, B, 0, device=device, sequential=True)
    return train, val


def _trainer(cfg: Config, tokens: TokenData, run_dir: Path, callbacks: Iterable[Callback]) -> Trainer:
    model = build_model(cfg.model, [cfg.model.block_size], tokens.tokenizer.vocab_size, seed=cfg.train.seed,
                        vocab_size=tokens.tokenizer.vocab_size)
    return Trainer(model, lm_loss, config=cfg.train, run_dir=run_dir, callbacks=callbacks, metrics=Perplexity)


def stage_lm(cfg: Config, run_dir: Path, callbacks: Iterable[Callback] = ()) -> tuple[Path, TokenData, Trainer]:
    """Tokenize the corpus into a temporary folder beside the run and build the trainer: everything that
    can fail on bad input (an empty or binary corpus, a block longer than the text) happens here, before
    any run folder exists."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.tokens-", dir=run_dir.parent))
    try:
        tokens = prepare_corpus(cfg.data, cfg.model.block_size, staging)
        return staging, tokens, _trainer(cfg, tokens, run_dir, callbacks)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def train_lm(cfg: Config, run_dir: Path, staged: tuple[Path, TokenData, Trainer]) -> Path:
    """Move the staged tokens into a new run folder, train, and write the bundle."""
    from forgeml.pipeline import config_digest

    staging, tokens, trainer = staged
    run_dir.mkdir(parents=True)
    staging.rename(run_dir / "data")
    tokens = open_token_data(run_dir / "data", tokens.tokenizer)
    bundle = Bundle(run_dir)
    bundle.write_config(cfg.to_yaml())
    bundle.write_json("features.json", features_json(tokens.tokenizer, cfg.model.block_size))
    bundle.update_meta(
        format_version=FORMAT_VERSION, forgeml_version=__version__, torch_version=torch.__version__, status="running",
        created=time.strftime("%Y-%m-%dT%H:%M:%S"), task=TASK, parameters=count_parameters(trainer.model),
        hardware=trainer.runtime.describe(), precision=cfg.train.precision, python=platform.python_version(),
        data={"train_tokens": len(tokens.train), "val_tokens": len(tokens.val) if tokens.val is not None else 0},
        config_digest=config_digest(cfg),
    )
    return _fit(cfg, tokens, trainer, bundle, resume=False)


def open_token_data(folder: Path, tokenizer) -> TokenData:
    """The memory-mapped train.bin (and val.bin, when the held-out text fills a window) of a run."""
    val = folder / "val.bin"
    return TokenData(tokenizer, open_tokens(folder / "train.bin", tokenizer.vocab_size),
                     open_tokens(val, tokenizer.vocab_size) if val.is_file() else None)


def resume_lm(cfg: Config, bundle: Bundle, callbacks: Iterable[Callback] = ()) -> Path:
    features = bundle.read_json("features.json")
    tokenizer = tokenizer_from_json(features["tokenizer"])
    data_dir = bundle.path / "data"
    if not (data_dir / "train.bin").is_file():
        raise BundleError(f"{data_dir}: the tokenized corpus is missing; start a new run")
    tokens = open_token_data(data_dir, tokenizer)
    trainer = _trainer(cfg, tokens, bundle.path, callbacks)
    bundle.update_meta(status="running")
    return _fit(cfg, tokens, trainer, bundle, resume=True)


def _fit(cfg: Config, tokens: TokenData, trainer: Trainer, bundle: Bundle, resume: bool) -> Path:
    train, val = _batchers(cfg, tokens, trainer.device)
    try:
        result, step = fit_into_bundle(trainer, bundle, train, val, resume)
    except TrainingDiverged:
        from forgeml.report.build import report_diverged

        report_diverged(bundle.path)
        raise
    lm = LanguageModel(bundle.path, device=str(trainer.device), trust_code=True)  # the config just trained, or resumed past require_trust
    metrics = {"val": {"step": step, **lm.evaluate_tokens(tokens.val)}} if tokens.val is not None else {}
    bundle.write_json("metrics.json", metrics)
    bundle.update_meta(status="complete", steps=result.steps, epochs=round(result.epochs, 3), wall_time=round(result.wall_time, 2),
                       samples_per_s=round(result.samples_per_s, 1),
                       tokens_per_s=round(result.samples_per_s * cfg.model.block_size, 1),
                       best=result.best, stopped_early=result.stopped_early)
    from forgeml.report.build import write_report

    write_report(bundle.path, trust_code=True)
    return bundle.path


# ------------------------------------------------------------------------------------------ the model
class LanguageModel:
    """A trained GPT and its tokenizer, rebuilt from a bundle (trust_code: allow code its config names)."""

    def __init__(self, path: str | Path, device: str = "cpu", trust_code: bool = False):
        self.bundle = Bundle.open(path)
        if self.bundle.meta().get("task") != TASK:
            raise BundleError(f"{self.bundle.path} is a {self.bundle.meta().get('task')} run, not a language model; "
                              f"use forgeml predict {self.bundle.path} INPUT...")
        try:
            self.config = Config.model_validate(self.bundle.read_config_dict())
        except Exception as exc:
            raise BundleError(f"{self.bundle.file('config.yaml')}: not a valid config for this forgeml ({exc})") from None
        require_trust(self.config, self.bundle.file("config.yaml"), trust_code)  # before anything it names is imported
        self.features = self.bundle.read_json("features.json")
        self.tokenizer = tokenizer_from_json(self.features["tokenizer"])
        self.device = torch.device(device)
        self.model = build_model(self.config.model, [self.features["block_size"]], self.tokenizer.vocab_size,
                                 vocab_size=self.tokenizer.vocab_size)
        self.model.load_state_dict(self.bundle.load_weights())
        self.model.to(self.device).eval()

    task = TASK

    @property
    def path(self) -> Path:
        return self.bundle.path

    @torch.no_grad()
    def evaluate_tokens(self, tokens, batch_size: int | None = None) -> dict[str, float]:
        """Loss and perplexity over a whole token stream, in non-overlapping windows."""
        T = self.model.cfg.block_size
        batch_size = batch_size or max(1, self.config.eval.batch_size // 8)
        if tokens is None or len(tokens) <= T:
            raise RequestError(f"need more than {T} tokens to evaluate a model with context {T}")
        windows = WindowBatcher(tokens, T, batch_size, 0, device=self.device, sequential=True)
        total, count = 0.0, 0
        for x, y in windows.epoch(0):
            logits = self.model(x)
            total += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1), reduction="sum"))
            count += y.numel()
        loss = total / count
        return {"loss": loss, "perplexity": math.exp(loss), "n_tokens": count}

    def evaluate_text(self, text: str) -> dict[str, float]:
        import numpy as np

        return self.evaluate_tokens(np.asarray(self.tokenizer.encode(text), dtype=np.int64))

    def stream(self, prompt: str, max_new_tokens: int = 200, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, stop: list[str] | None = None, seed: int | None = None,
               use_cache: bool = True) -> Iterator[str]:
        """Yield the generated text piece by piece as it is produced (the prompt is not repeated)."""
        if max_new_tokens < 1:
            raise RequestError("max_new_tokens must be at least 1")
        if temperature < 0:
            raise RequestError("temperature must be 0 (greedy) or more")
        if top_k is not None and top_k < 1:
            raise RequestError(f"top_k must be at least 1 (got {top_k}); leave it out to sample from every token")
        if top_p is not None and not 0 < top_p <= 1:
            raise RequestError(f"top_p must be in (0, 1] (got {top_p})")
        ids = self.tokenizer.encode(prompt) if prompt else []
        if not ids:
            ids = self.tokenizer.encode("\n") or [1]  # an empty prompt starts a new line
        generator = torch.Generator(device=self.device)
        if seed is not None:
            generator.manual_seed(seed)
        else:
            generator.seed()  # a fresh seed for this generator only; torch's global RNG is left alone
        new: list[int] = []
        shown = ""
        for token in self.model.generate(torch.tensor([ids], device=self.device), max_new_tokens, temperature, top_k, top_p,
                                         generator, use_cache=use_cache):
            new.append(token)
            text = self.tokenizer.decode(new)
            if text.endswith("\ufffd"):
                continue  # half of a multi-byte character: wait for the rest
            if stop:
                hit = min((text.find(s, max(0, len(shown) - len(s))) for s in stop if s in text), default=-1)
                if hit >= 0:
                    if hit > len(shown):
                        yield text[len(shown) : hit]
                    return
            if len(text) > len(shown):
                yield text[len(shown) :]
                shown = text

    def generate(self, prompt: str, max_new_tokens: int = 200, **kwargs: Any) -> str:
        """The generated continuation of `prompt` as one string (see `stream` for the options)."""
        return "".join(self.stream(prompt, max_new_tokens, **kwargs))

    def predict(self, inputs: Any) -> list[dict[str, Any]]:
        raise RequestError(f"{self.path} is a language model: use generate(prompt) (CLI: forgeml generate {self.path} --prompt ...)")
