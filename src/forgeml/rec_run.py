"""Recommendation runs through the stages: train, resume, evaluate (pipeline.py hands a run here when data.users and
data.items are set; docs/recommendation.md).

The road is the other runs': the interactions are read, checked and split (data/interactions.py) before any folder
exists; the model (models/recommenders.py) trains in the ordinary Trainer on batches of (user, item) indices with the
run's loss (training/rec_losses.py); the bundle gets config.yaml, features.json (id vocabularies, side features),
seen.safetensors (each user's items in all splits, CSR) and model.safetensors; a RecPredictor (what forgeml.load returns
for it) measures it with full ranking (evaluation/ranking.py) into metrics.json, and the report shows it.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from forgeml import __version__
from forgeml.bundle import FORMAT_VERSION, Bundle
from forgeml.config import Config
from forgeml.data.interactions import RecData, load_interactions, load_run_interactions
from forgeml.data.rec_features import RecFeatures
from forgeml.errors import ConfigError, TrainingDiverged
from forgeml.evaluation.ranking import rating_errors, split_per_user
from forgeml.models import count_parameters
from forgeml.models.recommenders import build_recommender
from forgeml.notes import note, warn
from forgeml.rec_predictor import SEEN_FILE
from forgeml.training.callbacks import Callback
from forgeml.training.fit_run import fit_into_bundle
from forgeml.training.rec_losses import RecLoss
from forgeml.training.trainer import Trainer


# ------------------------------------------------------------------------------------------------ model
def side_columns_to_tensors(features: RecFeatures, data: RecData) -> dict[str, torch.Tensor]:
    """The two towers' per-id feature tensors ('user0', 'item0', ... in the order of the fitted features), rows in index
    order."""
    from forgeml.models.two_tower import side_key

    out = {}
    for which in ("user", "item"):
        if which in data.side:
            tensors = features.side_tensors(which, data.side[which])
            feats = features.user_features if which == "user" else features.item_features
            out.update({side_key(which, i): tensors[f.name] for i, f in enumerate(feats)})
    return out


def make_model(cfg: Config, features: RecFeatures, side: dict[str, torch.Tensor] | None = None, seed: int | None = None):
    return build_recommender(cfg.model, features, side=side, seed=seed)


def make_trainer(cfg: Config, model, features: RecFeatures, run_dir: Path, callbacks: Iterable[Callback]) -> Trainer:
    from forgeml.training import distributed

    if distributed.world_size() > 1:
        raise ConfigError("recommendation runs train in one process; run forgeml train without --nproc / torchrun")
    kind = cfg.rec_loss()
    loss = RecLoss(kind, model, len(features.items), features.item_counts, cfg.train.negatives, cfg.train.num_negatives)
    # the validation loss: mse for ratings; for implicit runs the full softmax over every item, exact and the same at each
    # evaluation (a sampled loss would pick the best checkpoint by the luck of its negatives)
    eval_loss = RecLoss("mse" if features.explicit else "full_softmax", model, len(features.items))
    return Trainer(model, loss, config=cfg.train, eval_loss_fn=eval_loss, run_dir=run_dir, callbacks=callbacks)


# ------------------------------------------------------------------------------------------------ train
def train_into(cfg: Config, run_dir: Path, callbacks: Iterable[Callback], report: bool = True) -> Path:
    """A new recommendation run into `run_dir` (claimed by pipeline.train); everything that can fail on bad input is
    checked before the folder exists."""
    from forgeml.run_folder import replacing

    data = load_interactions(cfg.data)
    features = RecFeatures.from_data(data, cfg.data)
    _check_monitor(cfg, data)
    side = side_columns_to_tensors(features, data)
    model = make_model(cfg, features, side, seed=cfg.train.seed)
    trainer = make_trainer(cfg, model, features, run_dir, callbacks)
    note(data.summary())
    for message in data.notes:
        note(message)
    with replacing(run_dir):
        cfg.name = run_dir.name
        bundle = Bundle(run_dir)
        run_dir.mkdir(parents=True)
        bundle.write_config(cfg.to_yaml())
        bundle.write_json("features.json", features.to_json())
        # every item the user has (train, val and test): recommend's "exclude seen" must not offer a held-out item back
        # (the metrics do not read this file: they mask from the splits themselves)
        indptr, indices = data.csr(("train", "val", "test"))
        bundle.save_weights({"indptr": torch.from_numpy(indptr), "indices": torch.from_numpy(indices)}, SEEN_FILE)
        bundle.update_meta(
            format_version=FORMAT_VERSION, forgeml_version=__version__, torch_version=torch.__version__, status="running",
            created=time.strftime("%Y-%m-%dT%H:%M:%S"), task="recommend", parameters=count_parameters(trainer.model),
            hardware=trainer.runtime.describe(), precision=trainer.runtime.precision, processes=trainer.describe_batch(),
            python=platform.python_version(), data={k: len(v) for k, v in data.splits.items()},
            config_digest=_digest(cfg), data_notes=data.notes, split_digest=data.digest(),
        )
        return _fit(cfg, data, trainer, bundle, resume=False, report=report)


def _digest(cfg: Config) -> str:
    from forgeml.pipeline import config_digest

    return config_digest(cfg)


def _check_monitor(cfg: Config, data: RecData) -> None:
    names = ["val.loss"]
    if cfg.train.monitor not in names:
        from forgeml.errors import did_you_mean

        raise ConfigError(f"train.monitor: {cfg.train.monitor!r} is not measured during a recommendation run; choose one of "
                          f"{', '.join(names)}{did_you_mean(cfg.train.monitor, names)}")
    if "val" not in data.splits:
        if cfg.train.early_stopping.patience:
            raise ConfigError("train.early_stopping.patience: early stopping needs a validation split; set data.split.val > 0")
        warn("no validation split (data.split.val is 0): nothing is measured during training, so the bundle keeps the last "
             "weights; set data.split.val > 0 to keep the best")


def _batches(cfg: Config, data: RecData, trainer: Trainer) -> tuple[Any, Any]:
    from forgeml.data.batcher import TensorBatcher

    train = data.splits["train"]
    micro = cfg.train.micro_batch_size()
    batches = TensorBatcher(train.x(), train.y(), micro, shuffle=True, seed=cfg.train.seed, device=trainer.device)
    val = data.splits.get("val")
    return batches, ((val.x(), val.y()) if val is not None else None)


def _fit(cfg: Config, data: RecData, trainer: Trainer, bundle: Bundle, resume: bool, report: bool = True) -> Path:
    from forgeml.predictor import Predictor
    from forgeml.report.build import report_diverged, write_report

    train_batches, val = _batches(cfg, data, trainer)
    try:
        result, weights_step = fit_into_bundle(trainer, bundle, train_batches, val, resume)
    except TrainingDiverged:
        report_diverged(bundle.path)
        raise
    predictor = Predictor(bundle.path, device=str(trainer.device))
    metrics = measure(predictor, data, cfg.eval.splits, step=weights_step)
    bundle.write_json("metrics.json", metrics)
    bundle.update_meta(status="complete", steps=result.steps, epochs=round(result.epochs, 3), wall_time=round(result.wall_time, 2),
                       samples_per_s=round(result.samples_per_s, 1), best=result.best, stopped_early=result.stopped_early)
    if report:
        write_report(bundle.path, data, predictor)
    return bundle.path


# ----------------------------------------------------------------------------------------------- resume
def resume(bundle: Bundle, saved: Config, callbacks: Iterable[Callback]) -> Path:
    """Continue a recommendation run from checkpoints/last.pt (pipeline.resume has checked the folder and config)."""
    data = load_run_interactions(bundle, saved)
    features = RecFeatures.from_json(bundle.read_json("features.json"))
    model = make_model(saved, features, side_columns_to_tensors(features, data), seed=saved.train.seed)
    trainer = make_trainer(saved, model, features, bundle.path, callbacks)
    bundle.update_meta(status="running")
    return _fit(saved, data, trainer, bundle, resume=True)


# --------------------------------------------------------------------------------------------- evaluate
def measure(predictor, data: RecData, splits: Iterable[str], step: int | None = None) -> dict[str, Any]:
    """metrics.json's figures of each named split the data has."""
    return {name: measure_split(predictor, data, name, step) for name in splits if name in data.splits}


def measure_split(predictor, data: RecData, name: str, step: int | None = None) -> dict[str, Any]:
    split = data.splits[name]
    out: dict[str, Any] = {"step": step, "n": len(split)}
    if split.rating is not None:
        out.update(rating_errors(predictor.score_pairs(split.user, split.item), split.rating, predictor.features.rating_range))
    out.update(split_per_user(predictor, data, name).means())
    return out


def evaluate(predictor, splits: Iterable[str] | None = None) -> dict[str, Any]:
    """forgeml evaluate on a recommendation run: its own splits, rebuilt from the config; metrics.json and the report."""
    from forgeml.report.build import write_report

    bundle = predictor.bundle
    meta = bundle.meta()
    step = (meta.get("weights") or {}).get("step") or meta.get("steps")
    data = load_run_interactions(bundle, predictor.config)
    wanted = list(splits or predictor.config.eval.splits)
    result = measure(predictor, data, wanted, step)
    if not result:
        raise ConfigError(f"{bundle.path}: the run has no {' or '.join(wanted)} split (it has {', '.join(data.splits)}); "
                          "choose another --split")
    bundle.merge_metrics(result)
    write_report(bundle.path, data, predictor)
    return result

