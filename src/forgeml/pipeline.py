"""The stages as plain functions over a Config and a bundle: train, resume, distill, evaluate.

Every run takes the same road: its data (a table's splits, or a tokenized text corpus for a GPT) gives
fitted features, the features and the model config give a Network, the Trainer fits it into the bundle,
a Predictor (what forgeml.load returns) measures it, the report shows it. The faces (cli.py, api.py)
parse, call one of these, and print. Nothing here prints tables.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from forgeml import __version__
from forgeml.bundle import FORMAT_VERSION, Bundle
from forgeml.config import Config, diff_dicts, load_config
from forgeml.data.corpus import CorpusData, open_tokens
from forgeml.data.features.text import kept_tokenizers
from forgeml.data.featureset import FeatureSet, fitted_state
from forgeml.data.prepare import PreparedData, Split, load_eval_file, prepare
from forgeml.data.tensor_dict import n_rows
from forgeml.data.tensor_dict import rows as take_rows
from forgeml.errors import (
    BundleError,
    ConfigError,
    Interrupted,
    TrainingDiverged,
    WriteError,
    did_you_mean,
)
from forgeml.evaluation.metrics import metrics_for
from forgeml.models import build_network, count_parameters
from forgeml.models.compose import head_settings
from forgeml.notes import note, warn
from forgeml.predictor import Predictor
from forgeml.report.build import report_diverged, report_split, write_report
from forgeml.run_folder import claim_run_dir, recover_replaced, replacing, run_lock
from forgeml.training import distributed
from forgeml.training.callbacks import Callback
from forgeml.training.fit_run import fit_into_bundle
from forgeml.training.trainer import Trainer
from forgeml.trust import require_trust
from forgeml.warm_start import check_same_features, init_from, pretrained_tokenizers

if TYPE_CHECKING:
    from forgeml.compress.distill import Teacher


def _trainer(cfg: Config, features: FeatureSet, run_dir: Path, callbacks: Iterable[Callback],
             init: dict[str, torch.Tensor] | None = None, teacher: Teacher | None = None, fresh: bool = False) -> Trainer:
    model = build_network(cfg.model, features.inputs, features.outputs, head_settings(cfg, features.outputs), seed=cfg.train.seed)
    if cfg.train.privacy is not None and init is not None:
        # the given weights (a federated round's global ones) are a private network's: group norm where the config
        # says batch norm
        from forgeml.training.privacy import make_compatible

        model = make_compatible(model)
    if init is not None:  # start from given weights (a pruned network's kept ones, a run's under model.init_from), not the seeded init
        try:
            model.load_state_dict(init, strict=True)
        except RuntimeError as exc:
            if not getattr(cfg.model, "init_from", None):
                raise
            raise ConfigError(f"model.init_from: {cfg.model.init_from}: its weights do not fit this run's network "
                              f"({str(exc).splitlines()[0]}); the inputs and outputs must be the run's") from None
    elif fresh:  # a new run (not a resume, not a load): pretrained encoders start from their source's weights
        from forgeml.models.encoders.pretrained import load_pretrained_weights

        load_pretrained_weights(model)
    # the loss is the weighted sum of the heads' losses; val loss in history.jsonl = the loss metrics.json
    # reports: each head's plain loss (no label smoothing or class weights)
    kwargs = dict(config=cfg.train, eval_loss_fn=model.eval_loss, run_dir=run_dir, callbacks=callbacks,
                  metrics=lambda: metrics_for(features, full=False))
    if cfg.train.privacy is not None:  # DP-SGD (training/privacy.py): every caller of _trainer gets it from train.privacy
        if teacher is not None:
            raise ConfigError("train.privacy with distillation: the teacher learnt from the same rows without this budget; "
                              "train the student without train.privacy, or train a private model directly")
        from forgeml.training.privacy import PrivateTrainer

        return PrivateTrainer(model, model.loss, **kwargs)
    if teacher is not None:  # distillation: the same loop, its loss mixes the teacher's outputs with the labels
        from forgeml.compress.distill import DistillTrainer

        return DistillTrainer(model, teacher, loss_fn=model.loss, **kwargs)
    return Trainer(model, model.loss, **kwargs)


def _corpus_batches(cfg: Config, data: CorpusData, trainer: Trainer) -> tuple[Any, Any]:
    """Random windows of the training tokens (an "epoch" is about one pass worth of tokens), and the val windows:
    train.eval_batches fixed random ones (the same every time), or the whole held-out text in order."""
    from forgeml.data.windows import WindowBatcher

    T, B, tokens, keys = cfg.model.block_size, cfg.train.micro_batch_size(), data.tokens, (data.features.inputs[0].name, data.features.target.name)
    per_epoch = max(1, len(tokens.train) // (B * T))
    train = WindowBatcher(tokens.train, T, B, per_epoch, seed=cfg.train.seed, device=trainer.device, keys=keys)
    val = None
    if tokens.val is not None:
        if cfg.train.eval_batches:  # epoch 0 of its own seed
            val = WindowBatcher(tokens.val, T, B, cfg.train.eval_batches, seed=cfg.train.seed + 1, device=trainer.device, keys=keys)
        else:
            val = WindowBatcher(tokens.val, T, B, 0, device=trainer.device, sequential=True, keys=keys)
    return train, val


def _train_batches(cfg: Config, data: PreparedData, trainer: Trainer) -> Any:
    """The training split as device-resident tensors, with batched augmentation for images."""
    from forgeml.data.augment import Augment
    from forgeml.data.batcher import TensorBatcher

    augment = Augment(cfg.data.augment)
    images = [f.name for f in data.features.inputs if f.kind == ("audio" if augment.audio else "image")]  # what it augments
    texts = [f.name for f in data.features.inputs if f.kind == "text"]
    use_augment = augment.active and len(images) == 1
    split = data.splits["train"]
    micro = cfg.train.micro_batch_size()
    if texts and not use_augment:  # batches of similar lengths, each text padded only to its longest in the batch
        from forgeml.data.bucket import BucketBatcher

        return BucketBatcher(split.x, split.y, micro, seed=cfg.train.seed, device=trainer.device, text_keys=texts)
    return TensorBatcher(split.x, split.y, micro, shuffle=True, seed=cfg.train.seed, augment=augment if use_augment else None,
                         device=trainer.device, drop_last=len(split) % micro == 1,  # a batch of one breaks batch norm
                         augment_key=images[0] if use_augment else None)


# ----------------------------------------------------------------------------------------------- train
def train(config: Config | str | Path, *, overrides: list[str] | dict[str, Any] | None = None, name: str | None = None,
          overwrite: bool = False, callbacks: Iterable[Callback] = (), report: bool = True) -> Path:
    """Train a model from a config; returns the run folder (a complete bundle). report=False: no report.html
    (forgeml report RUN writes it later; tune's trials skip it, it costs more than a small model's training)."""
    cfg = config if isinstance(config, Config) else load_config(config, overrides)
    if isinstance(config, Config) and overrides:
        cfg = load_config(cfg.to_dict(), overrides)
    if _joined(cfg) and not distributed.is_main():  # torchrun's other ranks: rank 0 names the folder; they write nothing
        return _train_into(cfg, _folder_from_rank0(), callbacks)
    told = False
    try:
        with claim_run_dir(cfg, name, overwrite) as run_dir:  # held to the end: no second process trains into it
            distributed.broadcast(str(run_dir))
            told = True
            distributed.tell_launcher(run_dir)
            return _train_into(cfg, run_dir, callbacks, report=report)
    finally:
        if not told:  # rank 0 could not start the run: the others must not wait for a folder
            distributed.broadcast(None)


def _joined(cfg: Config) -> bool:
    """Under torchrun with several processes: join the process group (before any folder is chosen)."""
    if distributed.world_size() == 1:
        return False
    from forgeml.training.runtime import resolve_device

    return distributed.init(resolve_device(cfg.train.device))


def _folder_from_rank0() -> Path:
    folder = distributed.broadcast(None)
    if folder is None:
        raise BundleError(f"rank {distributed.rank()}: rank 0 could not start the run (its error says why)")
    return Path(folder)


def _prepare(cfg: Config, run_dir: Path, start: FeatureSet | None = None) -> PreparedData | CorpusData:
    """The run's data, fitted: a table's splits, or (model.name: gpt) the text corpus tokenized into a staging
    folder beside the run. Everything that can fail on bad input happens here, before the run folder exists.
    `start`: the features of the run named by model.init_from, whose tokenizers are kept."""
    if cfg.model.name == "gpt":
        return CorpusData.stage(cfg.data, cfg.model.block_size, run_dir, tokenizer=start.inputs[0].tokenizer if start else None)
    given = ({f.name: f.tokenizer for f in start.inputs if f.kind == "text"} if start is not None
             else pretrained_tokenizers(cfg))
    data = prepare(cfg.data, tokenizers=given)
    if "train" not in data.splits:
        raise ConfigError("data.split: no training rows")
    if start is not None:
        check_same_features(cfg.model.init_from, start, data.features)
    return data


def _has_val(data: PreparedData | CorpusData) -> bool:
    return data.tokens.val is not None if isinstance(data, CorpusData) else "val" in data.splits


def _train_into(cfg: Config, run_dir: Path, callbacks: Iterable[Callback], init: dict[str, torch.Tensor] | None = None,
                teacher: Teacher | None = None, report: bool = True) -> Path:
    start = None
    if init is None and getattr(cfg.model, "init_from", None):  # the weights and tokenizers of a trained run
        init, start = init_from(cfg)
    data = _prepare(cfg, run_dir, start)
    try:
        check_monitor(cfg, ["val.loss"] + [f"val.{m}" for m in metrics_for(data.features, full=False).names],
                      has_val=_has_val(data), task=data.features.task)
        trainer = _trainer(cfg, data.features, run_dir, callbacks, init=init, teacher=teacher, fresh=init is None)
        if cfg.train.privacy is not None:  # a budget the planned steps cannot meet is refused here, before any folder
            trainer.plan_for(len(data.splits["train"]))
            warn("train.privacy protects what the network learns from each row; features.json (normalisation statistics, "
                 "category lists, vocabularies, label names) is fitted on the training rows WITHOUT privacy: a rare category "
                 "or word listed there shows that some row had it (docs/privacy.md)")
        if teacher is not None:  # the teacher's features, the teacher's outputs: refused before any folder exists
            teacher.check(data.features, trainer.model, take_rows(data.splits["train"].x, 0, 4))
        if data.features.summary:
            note(data.features.summary)  # after every check that can refuse the run: an error comes alone
        for message in data.features.warnings:  # fitted again by evaluate, report and resume, which stay quiet
            warn(message)
        if not trainer.strategy.is_main:  # another rank of a torchrun job: it trains its share and writes nothing
            return _fit(cfg, data, trainer, Bundle(run_dir), resume=False)
        with replacing(run_dir):
            cfg.name = run_dir.name
            bundle = Bundle(run_dir)
            run_dir.mkdir(parents=True)
            if isinstance(data, CorpusData):
                data.move_into(run_dir)  # the token files are part of the run: resume and evaluate read them
            _start_bundle(bundle, cfg, data, trainer)
            if teacher is not None:
                bundle.update_meta(variant=teacher.variant(trainer.model))
            return _fit(cfg, data, trainer, bundle, resume=False, report=report)
    finally:
        if isinstance(data, CorpusData):
            data.discard()  # the staging folder, if it never moved into the run


def check_monitor(cfg: Config, names: list[str], has_val: bool, task: str) -> None:
    """train.monitor must be a metric the run measures on its validation split."""
    if cfg.train.monitor not in names:
        raise ConfigError(f"train.monitor: {cfg.train.monitor!r} is not measured for a {task} run; "
                          f"choose one of {', '.join(names)}{did_you_mean(cfg.train.monitor, names)}")
    if not has_val and cfg.train.early_stopping.patience:
        raise ConfigError("train.early_stopping.patience: early stopping needs a validation split; set data.split.val > 0 "
                          "or data.val_path")
    if not has_val:
        warn(f"no validation split (data.split.val is 0 and no data.val_path): nothing is measured during training, so the "
             f"bundle keeps the last weights and train.monitor ({cfg.train.monitor}) and train.restore_best do nothing; "
             "set data.split.val > 0 or data.val_path to keep the best weights")


def config_changes(saved: dict, wanted: dict) -> list[tuple[str, Any, Any]]:
    """What a resume's config changes against the bundle's; a pretrained encoder's hf_config, filled in by the run
    from its source, is not a change when the user's YAML leaves it out."""
    return [d for d in diff_dicts(saved, wanted) if not (d[0].endswith("hf_config") and d[2] is None)]


def config_digest(cfg: Config) -> str:
    """A fingerprint of the resolved config, to notice a config.yaml edited before a resume."""
    d = cfg.to_dict()
    d.pop("name", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _start_bundle(bundle: Bundle, cfg: Config, data: PreparedData | CorpusData, trainer: Trainer) -> None:
    bundle.write_config(cfg.to_yaml())
    bundle.write_json("features.json", data.features.to_json())
    bundle.update_meta(
        format_version=FORMAT_VERSION, forgeml_version=__version__, torch_version=torch.__version__, status="running",
        created=time.strftime("%Y-%m-%dT%H:%M:%S"), task=data.features.task, parameters=count_parameters(trainer.model),
        hardware=trainer.runtime.describe(), precision=trainer.runtime.precision, processes=trainer.describe_batch(),
        python=platform.python_version(),
        data=data.sizes() if isinstance(data, CorpusData) else {k: len(v) for k, v in data.splits.items()},
        config_digest=config_digest(cfg),
    )


def resume(run: str | Path, config: str | Path | None = None, overrides: list[str] | None = None,
           callbacks: Iterable[Callback] = (), trust_code: bool = False) -> Path:
    """Continue an interrupted run from checkpoints/last.pt; ends with the weights an uninterrupted run has.

    A run whose config names code (model.name: custom) resumes only with trust_code=True: the bundle's
    config.yaml, not the user's YAML, is what gets built."""
    run_dir = Path(run).resolve()  # '.' too has a name, for the lock file and the messages
    missing = BundleError(f"{run}: no such run folder to resume")
    if not run_dir.parent.is_dir() or not run_dir.name:  # before locking: a typo creates no folder
        raise missing
    if distributed.world_size() > 1 and distributed.launched() and distributed.rank() != 0:
        # torchrun's other ranks read the run (on storage every rank sees) and write nothing; rank 0 holds the lock
        if not run_dir.is_dir():
            raise missing
        return _resume(run_dir, config, overrides, callbacks, trust_code)
    with run_lock(run_dir):  # held to the end: no second process resumes or overwrites it meanwhile
        distributed.tell_launcher(run_dir)
        recover_replaced(run_dir)  # a killed --overwrite may have set the run aside: it comes back first
        if not run_dir.is_dir():
            raise missing
        return _resume(run_dir, config, overrides, callbacks, trust_code)


def _resume(run: Path, config: str | Path | None, overrides: list[str] | None, callbacks: Iterable[Callback],
            trust_code: bool) -> Path:
    bundle = Bundle(run)
    meta = bundle.meta()
    if meta.get("status") == "complete":
        raise BundleError(f"{bundle.path}: this run already finished; train a new one (forgeml train CONFIG)")
    try:
        saved = Config.model_validate(bundle.read_config_dict())
    except Exception as exc:  # YAML or schema errors in a damaged config.yaml
        raise BundleError(f"{bundle.path / 'config.yaml'}: damaged or edited into an invalid config ({str(exc).splitlines()[0]})") from None
    require_trust(saved, bundle.path / "config.yaml", trust_code)  # a matching digest proves nothing: its author wrote both
    if not (bundle.path / "checkpoints" / "last.pt").is_file():
        raise BundleError(f"{bundle.path}: the run stopped before its first checkpoint (written {_checkpoint_times(saved)}), "
                          f"so there is nothing to resume; start it again with  "
                          f"forgeml train {bundle.path / 'config.yaml'} --name {bundle.path.name}{_runs_dir_flag(saved, bundle.path)} --overwrite")
    if meta.get("config_digest") not in (None, config_digest(saved)):
        raise BundleError(f"{bundle.path / 'config.yaml'}: edited since the run started; an exact resume needs the run's own "
                          "config. Undo the edit, or start a new run with the edited config")
    if config is not None or overrides:
        wanted = load_config(config if config is not None else saved.to_dict(), overrides)
        wanted.name, wanted.runs_dir = saved.name, saved.runs_dir
        changed = config_changes(saved.to_dict(), wanted.to_dict())
        if changed:
            raise BundleError(f"{bundle.path}: cannot resume with a changed config; an exact resume needs the run's own config.\n"
                              + "\n".join(f"  {k}: {a!r} in the run, {b!r} now" for k, a, b in changed)
                              + "\nResume without CONFIG/--set, or start a new run.")
    if saved.model.name == "gpt":  # the tokens the run trained on are in the run itself
        data = CorpusData.open(bundle.path / "data", FeatureSet.from_json(bundle.read_json("features.json")))
    else:
        data = prepare(saved.data, tokenizers=kept_tokenizers(FeatureSet.from_json(bundle.read_json("features.json"))))
        if fitted_state(data.features.to_json()) != fitted_state(bundle.read_json("features.json")):
            raise BundleError(f"{bundle.path}: the training data changed since this run started (its fitted features differ); "
                              "resume needs the same data, or start a new run")
    variant = meta.get("variant") or {}
    teacher = None
    if variant.get("kind") == "distilled":  # it resumes learning from the same teacher, loaded again from its bundle
        try:
            teacher = _load_teacher(variant["source"], variant["temperature"], variant["alpha"])
        except BundleError as exc:
            raise BundleError(f"{bundle.path}: distilled from {variant['source']}, which cannot be loaded ({exc}); "
                              "put the teacher back, or distil again with --overwrite") from None
    trainer = _trainer(saved, data.features, bundle.path, callbacks, teacher=teacher)
    if trainer.strategy.is_main:
        bundle.update_meta(status="running")
    return _fit(saved, data, trainer, bundle, resume=True)


def _checkpoint_times(cfg: Config) -> str:
    """When a run writes checkpoints/last.pt, in words: 'every 200 steps / every 5 minutes / at each epoch end'."""
    t = cfg.train
    when = [f"every {t.checkpoint_every_steps} steps"] if t.checkpoint_every_steps else []
    when += [f"every {t.checkpoint_every_minutes:g} minutes"] if t.checkpoint_every_minutes else []
    return " / ".join([*when, "at each epoch end"])


def _runs_dir_flag(cfg: Config, run_dir: Path) -> str:
    """' --set runs_dir=...' when the config's runs_dir (relative to where forgeml runs) is not the run's parent."""
    return "" if Path(cfg.runs_dir).resolve() == run_dir.parent.resolve() else f" --set runs_dir={run_dir.parent}"


def _fit(cfg: Config, data: PreparedData | CorpusData, trainer: Trainer, bundle: Bundle, resume: bool, report: bool = True) -> Path:
    corpus = isinstance(data, CorpusData)
    val = None if corpus else data.splits.get("val")
    train_batches, val_batches = _corpus_batches(cfg, data, trainer) if corpus else (
        _train_batches(cfg, data, trainer), (val.x, val.y) if val is not None else None)
    if not trainer.strategy.is_main:  # its share of the training; rank 0 saves, measures and reports
        trainer.fit(train_batches, val_batches, resume=resume)
        trainer.full_state_dict()  # rank 0 gathers the weights it saves: under FSDP every rank takes part
        distributed.shutdown()
        return bundle.path
    try:
        result, weights_step = fit_into_bundle(trainer, bundle, train_batches, val_batches, resume)
    except TrainingDiverged:
        report_diverged(bundle.path)
        raise
    # the rest is rank 0's alone: out of the process group, its metrics no longer wait for the others
    distributed.shutdown()
    predictor = Predictor(bundle.path, device=str(trainer.device), trust_code=True)  # the config just trained, or resumed past require_trust
    shown: list[dict[str, torch.Tensor]] = []  # the report draws from the outputs measured here: one pass over its split
    if corpus:  # the whole held-out text, in non-overlapping windows
        metrics = {"val": {"step": weights_step, **predictor.evaluate_tokens(data.tokens.val)}} if data.tokens.val is not None else {}
    else:
        if set_thresholds(cfg, predictor, val):  # before any metric: every figure is measured at the thresholds the bundle keeps
            bundle.write_json("features.json", predictor.features.to_json())
        metrics = evaluate_splits(predictor, data, cfg.eval.splits, step=weights_step, keep={report_split(data.splits): shown})
    bundle.write_json("metrics.json", metrics)
    speed = {"tokens_per_s": round(result.samples_per_s * cfg.model.block_size, 1)} if corpus else {}
    bundle.update_meta(status="complete", steps=result.steps, epochs=round(result.epochs, 3), wall_time=round(result.wall_time, 2),
                       samples_per_s=round(result.samples_per_s, 1), best=result.best, stopped_early=result.stopped_early, **speed,
                       **({"compile_seconds": round(trainer.compile_seconds, 2)} if trainer.compile_seconds is not None else {}),
                       # the epsilon actually spent (meta.json, not metrics.json: that file's keys are splits)
                       **({"privacy": trainer.privacy_spent()} if cfg.train.privacy is not None else {}))
    if report:
        write_report(bundle.path, data, predictor, outputs=shown)
    return bundle.path


def set_thresholds(cfg: Config, predictor: Predictor, val: Split | None) -> bool:
    """Each multilabel output's thresholds, once training ends: tuned per label for the best F1 on the
    validation split (threshold: tune), or the one number given. True when any output has them."""
    from forgeml.evaluation.multilabel import ThresholdTuner

    given = {o.name: o for o in cfg.data.outputs}
    outputs = [o for o in predictor.features.outputs if o.kind == "multilabel" and o.name in given]
    tuners = {}
    for o in outputs:
        setting = given[o.name].threshold
        if setting != "tune":
            o.set_thresholds([float(setting)] * o.n_outputs)
        elif val is None:
            warn(f"data.outputs.{o.name}.threshold is 'tune' but the run has no validation split: every label keeps 0.5; "
                 "set data.split.val > 0 or data.val_path, or give a number")
        else:
            tuners[o.name] = ThresholdTuner(o.n_outputs, min_positives=given[o.name].min_positives)
    if tuners:
        for rows, out in predictor.iter_outputs(val.x):  # streamed: (G, B, L) counts per batch, no logits kept
            for name, tuner in tuners.items():
                tuner.update(out[name], val.y[name][rows])
        for o in outputs:
            if o.name in tuners:
                o.set_thresholds(tuners[o.name].compute())
    return bool(outputs)


# --------------------------------------------------------------------------------------------- distill
def distill(run: str | Path, student: str | Path | dict[str, Any] | Config, *, temperature: float = 4.0, alpha: float = 0.5,
            name: str | None = None, overwrite: bool = False, callbacks: Iterable[Callback] = ()) -> Path:
    """Train a smaller student from a trained run's outputs (knowledge distillation); returns its bundle.

    The student is an ordinary run: the teacher's data (same splits, same fitted features), the student's
    `model` and (merged over the teacher's) `train` sections. Its loss per output mixes the teacher's
    softened outputs with the labels (compress/distill.py); meta.json records `variant`.

    Args:
        run: the teacher's bundle.
        student: a YAML file, dict or Config with a `model` section (and optionally `train`); a `data`
            section, if any, must be the teacher's.
        temperature: softens the teacher's and the student's outputs (default 4.0; 1 = as they are).
        alpha: the teacher's share of the loss, 0 (labels only) to 1 (teacher only); default 0.5.
        name: the new run folder, beside the teacher (default `<run>-distilled`).
        overwrite: replace an existing folder of that name (otherwise it is an error).

    Example:
        >>> forgeml.pipeline.distill("runs/adult-mlp", "examples/adult-mlp-student.yaml")  # doctest: +SKIP
        PosixPath('runs/adult-mlp-distilled')
    """
    teacher = _load_teacher(run, temperature, alpha)
    source = teacher.source
    cfg = _student_config(teacher.config, student)
    run_dir = source.parent / (name or f"{source.name}-distilled")
    if run_dir == source:
        raise ConfigError(f"--name {name}: that is the teacher's own folder; give the student another name")
    cfg.runs_dir, cfg.name = str(run_dir.parent), run_dir.name
    return _train_variant(cfg, run_dir, overwrite, callbacks, teacher=teacher)


def _train_variant(cfg: Config, run_dir: Path, overwrite: bool, callbacks: Iterable[Callback] = (), **how: Any) -> Path:
    """Train a compressed variant (pruned, distilled) into its own folder beside its source: an existing folder only
    with overwrite; a failure leaves no half-written folder (an interrupted or diverged one stays: it can be resumed,
    or holds the last good checkpoint its error names). `how`: _train_into's init= or teacher=."""
    with run_lock(run_dir):  # held to the end: no second process trains into it
        recover_replaced(run_dir)
        if run_dir.exists() and not overwrite:
            raise BundleError(f"{run_dir}: already exists; pass --overwrite (overwrite=True) to replace it, "
                              "or choose another --name")
        fresh = not run_dir.exists()
        try:
            return _train_into(cfg, run_dir, callbacks, **how)
        except (Interrupted, TrainingDiverged):
            raise
        except BaseException:
            if fresh:  # --overwrite's replacing() has already put the old one back
                shutil.rmtree(run_dir, ignore_errors=True)
            raise


def _load_teacher(run: str | Path, temperature: float, alpha: float) -> Teacher:
    """The teacher's network from its bundle (read only), frozen; a language model is refused."""
    from forgeml.compress.distill import Teacher, check_settings

    check_settings(temperature, alpha)  # cheap checks first: nothing is loaded for a typo
    predictor = Predictor(run)  # a custom teacher is refused here unless trusted: its code would run
    source = predictor.path.resolve()
    if predictor.config.model.name == "gpt" or predictor.tokenizer is not None:
        raise ConfigError(f"{source}: a language model (next-token output) cannot be distilled yet; "
                          "compress it with --quantize int8 instead")
    return Teacher(predictor.model, source, predictor.bundle.read_json("features.json"), temperature, alpha, predictor.config)


def _student_config(teacher: Config, student: str | Path | dict[str, Any] | Config) -> Config:
    """The teacher's config with the student's model (and train settings over the teacher's); its data must be the teacher's."""
    where = str(student) if isinstance(student, (str, Path)) else "student"
    if isinstance(student, Config):
        raw = student.to_dict()
        if raw["data"] == Config().to_dict()["data"]:
            del raw["data"]  # a Config always has a data section: the default one says nothing
    elif isinstance(student, dict):
        raw = dict(student)
    else:
        from forgeml.config import read_config_file

        raw = read_config_file(Path(student), "student config", "examples/adult-mlp-student.yaml", "with a model section")
    if "model" not in raw:
        raise ConfigError(f"{where}: no model section; a student config names the smaller model, e.g. model: {{name: mlp, hidden: [32]}}")
    merged = teacher.to_dict()
    merged["model"] = raw["model"]
    merged["train"] = {**merged["train"], **(raw.get("train") or {})}
    try:
        cfg = load_config(merged)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {str(exc).removeprefix('config: ')}") from None
    if "data" in raw:  # the student learns from the teacher's data; another data section is a mistake, not a wish
        theirs = load_config({**merged, "data": raw["data"]}).to_dict()["data"]
        changed = diff_dicts(teacher.to_dict()["data"], theirs, "data.")
        if changed:
            shown = ", ".join(f"{key} is {b!r} (the teacher's: {a!r})" for key, a, b in changed[:3])
            raise ConfigError(f"{where}: {shown}{' ...' if len(changed) > 3 else ''}; a student always trains on the teacher's "
                              "data (same splits, same outputs): remove its data section")
    return cfg


# -------------------------------------------------------------------------------------------- evaluate
def evaluate_split(predictor: Predictor, split: Split, step: int | None = None,
                   keep: list[dict[str, torch.Tensor]] | None = None) -> dict[str, Any]:
    """Metrics of one split, computed through the Predictor (exactly the path forgeml.load takes),
    streamed batch by batch: no split's logits are held whole, unless `keep`, a list, asks for each
    batch's output dict (the report draws from them instead of running the network again)."""
    metrics = metrics_for(predictor.features, full=True)
    total = 0.0
    for rows, out in predictor.iter_outputs(split.x):
        if keep is not None:
            keep.append(out)
        y = {k: v[rows] for k, v in split.y.items()}
        metrics.update(out, y)
        # each head's plain loss, weighted: no label smoothing or class weights in a reported loss
        batch_loss = predictor.model.eval_loss(out, y)
        total += float(batch_loss) * n_rows(y)
    return {"step": step, "n": len(split), "loss": total / max(len(split), 1), **metrics.compute()}


def evaluate_splits(predictor: Predictor, data: PreparedData, splits: Iterable[str], step: int | None,
                    keep: dict[str | None, list] | None = None) -> dict[str, Any]:
    """Metrics of each named split the data has; `keep` maps a split name to a list for its output batches."""
    keep = keep or {}
    return {name: evaluate_split(predictor, data.splits[name], step, keep.get(name)) for name in splits if name in data.splits}


def evaluate(run: str | Path, data_path: str | None = None, splits: Iterable[str] | None = None,
             trust_code: bool = False) -> dict[str, Any]:
    """Metrics of a run: on its own held-out splits (rebuilt from the config's seed), or on a new labelled file.

    Writes them into metrics.json (a new file's metrics under the key 'file:<name>')."""
    predictor = Predictor(run, trust_code=trust_code)
    if predictor.tokenizer is not None:
        return _evaluate_lm(predictor, data_path, trust_code)
    bundle = predictor.bundle
    meta = bundle.meta()
    step = (meta.get("weights") or {}).get("step") or meta.get("best", {}).get("step") or meta.get("steps")  # older bundles: no "weights"
    shown: list[dict[str, torch.Tensor]] = []  # the report draws from the outputs measured here: one pass over its split
    if data_path is not None:
        result = {f"file:{Path(data_path).name}": evaluate_split(predictor, load_eval_file(predictor.config.data, predictor.features, data_path), step)}
    elif (meta.get("variant") or {}).get("kind") == "federated":  # features merged from the clients' summaries: not refitted here
        from forgeml.data.prepare import load_columns, make_split

        held = {k: v for k, v in load_columns(predictor.config.data).items() if k != "train"}
        data = PreparedData(predictor.features, {k: make_split(predictor.features, v) for k, v in held.items()})
        wanted = [s for s in (splits or predictor.config.eval.splits) if s != "train"]
        result = evaluate_splits(predictor, data, wanted, step, keep={report_split(data.splits): shown})
        if not result:
            raise ConfigError(f"{bundle.path}: a federated run is measured on its held-out splits ({', '.join(data.splits) or 'none'}); "
                              "its training rows belong to the clients. Choose --split val/test or evaluate a file with --data FILE")
    else:
        data = prepare(predictor.config.data, tokenizers=kept_tokenizers(predictor.features))
        if fitted_state(data.features.to_json()) != fitted_state(bundle.read_json("features.json")):  # tuned thresholds aside
            raise BundleError(f"{bundle.path}: the data at {predictor.config.data.path} differs from what the run was trained on; "
                              "evaluate on a file with --data FILE")
        wanted = list(splits or predictor.config.eval.splits)
        result = evaluate_splits(predictor, data, wanted, step, keep={report_split(data.splits): shown})
        if not result:
            raise ConfigError(f"{bundle.path}: the run has no {' or '.join(wanted)} split (it has {', '.join(data.splits)}); "
                              "choose another --split or evaluate a labelled file with --data FILE")
    with _result_kept_if_unsaved(result):
        bundle.merge_metrics(result)
        write_report(bundle.path, None if data_path else data, predictor, trust_code=trust_code, outputs=shown)
    return result


@contextlib.contextmanager
def _result_kept_if_unsaved(result: dict[str, Any]):
    """A read-only bundle: the metrics were measured all the same; the WriteError carries them to the caller."""
    try:
        yield
    except WriteError as exc:
        exc.result = result
        raise


def _evaluate_lm(lm: Predictor, data_path: str | None, trust_code: bool = False) -> dict[str, Any]:
    """Loss and perplexity: on the run's held-out text, or on a text file."""
    if data_path is not None:
        path = Path(data_path)
        if not path.is_file():
            raise ConfigError(f"--data {path}: no such file")
        result = {f"file:{path.name}": lm.evaluate_text(path.read_text(encoding="utf-8", errors="replace"))}
    else:
        val = lm.path / "data" / "val.bin"
        if not val.is_file():
            raise BundleError(f"{val}: the run has no held-out text; evaluate a text file with --data FILE")
        result = {"val": lm.evaluate_tokens(open_tokens(val, lm.tokenizer.vocab_size))}
    with _result_kept_if_unsaved(result):
        lm.bundle.merge_metrics(result)
        write_report(lm.bundle.path, predictor=lm, trust_code=trust_code)
    return result


# ----------------------------------------------------------------------------------------------- prune
FINETUNE_LR = 0.1  # the fine-tune's peak lr as a fraction of the source run's: the kept weights are already trained


def prune(run: str | Path, ratio: float, *, epochs: int | None = None, name: str | None = None, overwrite: bool = False,
          say: Callable[[str], None] | None = None) -> Path:
    """Structured pruning, then a short fine-tune: a new bundle beside `run` whose network really is smaller.

    Every width the model config names (conv channels, hidden layers, feed-forward units) keeps its
    (1 - ratio) most important units (compress/prune.py); the smaller network starts from the kept weights and
    trains on the source run's training data, through the same road as `train`. The new bundle is an ordinary
    run (config.yaml with the smaller widths); meta.json's `variant` says where it came from. The source run is
    only read.

    Args:
        run: the trained run folder.
        ratio: fraction of each width's units to remove, 0 < ratio < 1.
        epochs: fine-tune epochs; default a quarter of the source run's, at least 1. The peak learning rate is a
            tenth of the source's (FINETUNE_LR), on its schedule: the full peak would undo what the kept weights learned.
        name: the new run's folder name, beside the source; default '<run>-pruned<100*ratio>'.
        overwrite: replace an existing folder of that name (otherwise that is an error).
        say: called with a line of progress ("pruned ...: 1.2M -> 0.3M parameters").

    >>> out = prune("runs/digits-cnn", 0.5, epochs=2)   # doctest: +SKIP
    >>> forgeml.load(out).predict([{"image": img}])      # doctest: +SKIP
    """
    from forgeml.compress.prune import NOT_PRUNABLE, PRUNABLE, check_ratio, prune_network

    check_ratio(ratio)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ConfigError(f"prune epochs {epochs!r}: must be a whole number of fine-tune epochs, at least 1")
    source = Path(run).resolve()
    model_name = (Bundle.open(source).read_config_dict().get("model") or {}).get("name")
    if model_name in NOT_PRUNABLE:  # before Predictor: a custom model is refused for what it is, not for trust
        raise ConfigError(f"{source}: model.name {model_name}: pruning does not apply to {NOT_PRUNABLE[model_name]}; "
                          f"structured pruning reaches {PRUNABLE}")
    predictor = Predictor(source)  # a BundleError when the bundle is missing a file or damaged
    cfg = predictor.config
    if cfg.train.privacy is not None:  # its norms are group norms, and a fine-tune would spend a second budget
        raise ConfigError(f"{source}: trained with train.privacy; pruning a private run is not supported (its fine-tune on the "
                          "same rows would spend another privacy budget); quantize it instead (--quantize int8)")
    pruned = prune_network(predictor.model, cfg.model, ratio)
    target = source.parent / (name or f"{source.name}-pruned{round(100 * ratio)}")
    if target == source:
        raise ConfigError(f"--name {target.name}: that is the source run; the pruned run needs a folder of its own")
    if target.exists() and not overwrite:
        raise BundleError(f"{target}: already exists; pass --overwrite (overwrite=True) to replace it, or choose another --name")
    data = prepare(cfg.data)  # the pruned weights read the features the source was fitted on: same data, or stop here
    if fitted_state(data.features.to_json()) != fitted_state(predictor.features.to_json()):
        raise BundleError(f"{source}: the data at {cfg.data.path} differs from what the run was trained on; "
                          "pruning fine-tunes on the run's own training data")
    settings = cfg.to_dict()
    settings["model"] = pruned.model.model_dump(mode="json")
    settings["runs_dir"] = str(source.parent)
    t = settings["train"]
    t["epochs"] = epochs or max(1, round(cfg.train.epochs / 4))
    t["max_steps"] = None if epochs or cfg.train.max_steps is None else max(1, round(cfg.train.max_steps / 4))
    t["lr"] = cfg.train.lr * FINETUNE_LR
    new_cfg = Config.model_validate(settings)
    params_before = count_parameters(predictor.model)
    new_cfg.name = target.name
    if say:
        say(f"pruned {ratio:g} of every width: " + ", ".join(f"{k} {pruned.widths_before[k]} -> {v}" for k, v in pruned.widths_after.items())
            + f"; fine-tuning {t['epochs']} epoch(s) at lr {t['lr']:g} into {target}")
    run_dir = _train_variant(new_cfg, target, overwrite, init=pruned.state)
    bundle = Bundle(run_dir)
    bundle.update_meta(variant={"kind": "pruned", "source": str(source), "ratio": ratio, "widths_before": pruned.widths_before,
                                "widths_after": pruned.widths_after, "params_before": params_before,
                                "params_after": bundle.meta()["parameters"], "finetune_epochs": t["epochs"]})
    return run_dir


# ------------------------------------------------------------------------------------------------ tune
def tune(config: Config | str | Path | dict[str, Any], *, overrides: list[str] | dict[str, Any] | None = None,
         trials: int | None = None, timeout: float | None = None, storage: str | None = None, study: str | None = None,
         jobs: int | None = None, say: Callable[[str], None] | None = None):
    """Search the config's `tune.space` with Optuna; returns a forgeml.tune.search.TuneResult (study folder, best
    values, best.yaml). Arguments given here replace the tune section's own. Everything the user can get wrong
    (the space, the objective, the storage, the counts) is refused before any folder or database is made.

    The wiring of the layers: forgeml/tune never imports this module; it gets `train` (this module's) as the
    function that trains one trial's config into a bundle."""
    from forgeml.tune import search as tune_search
    from forgeml.tune import space as tune_space
    from forgeml.tune.storage import require_optuna

    cfg = config if isinstance(config, Config) else load_config(config, overrides)
    if isinstance(config, Config) and overrides:
        cfg = load_config(cfg.to_dict(), overrides)
    if cfg.tune is None:
        raise ConfigError("tune: the config has no tune section; add one that names what to search, e.g.\n"
                          "  tune: {space: {train.lr: {log_uniform: [1e-4, 1e-2]}}, trials: 20}")
    given = {f"tune.{k}": v for k, v in dict(trials=trials, timeout=timeout, storage=storage, study=study, jobs=jobs).items()
             if v is not None}
    if given:
        cfg = load_config(cfg.to_dict(), given)  # schema-checked like the file: --trials -1 names tune.trials
    require_optuna()
    tune_space.check_space(cfg)
    objective = cfg.tune.objective or cfg.train.monitor
    names = _val_metric_names(cfg)
    if objective not in names:
        raise ConfigError(f"tune.objective: {objective!r} is not measured on the validation split of this run; choose one of "
                          f"{', '.join(names)}{did_you_mean(objective, names)}")
    return tune_search.run(cfg, objective, train, say=say)


def _val_metric_names(cfg: Config) -> list[str]:
    """What a run of this config measures on its validation split (as check_monitor lists them); the data is read
    once for it. No validation split is an error: a study compares trials on it."""
    if cfg.model.name == "gpt":
        return ["val.loss"]
    data = prepare(cfg.data)
    if "val" not in data.splits:
        raise ConfigError("data.split.val: tune compares trials on the validation split and this run has none; "
                          "set data.split.val > 0 or data.val_path")
    return ["val.loss"] + [f"val.{m}" for m in metrics_for(data.features, full=False).names]
