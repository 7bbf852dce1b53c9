"""Every train.* setting reaches the code: each one, changed in a Config and passed through the pipeline's
trainer factory, changes something observable (the optimizer, the lr at a step, the loss, the steps,
the weights, the history). A setting that never reaches the Trainer fails here."""

import pytest
import torch

from forgeml import pipeline
from forgeml.config import load_config
from forgeml.data.prepare import prepare
from forgeml.training.callbacks import Callback
from forgeml.training.checkpoint import load_checkpoint

BASE = {"iris": {"data": {"path": "sklearn:iris"}, "model": {"name": "mlp", "hidden": [8]}},
        "diabetes": {"data": {"path": "sklearn:diabetes"}, "model": {"name": "mlp", "hidden": [8]}}}
TRAIN = ["train.epochs=2", "train.batch_size=32", "train.lr=0.01", "train.log_every_steps=1", "train.progress=false",
         "train.tensorboard=false"]  # iris: 105 training rows, 4 steps an epoch


class Record(Callback):
    """What a run did: lr after each step, the history records, batch sizes seen, the step in checkpoints/last.pt."""

    def __init__(self):
        self.lrs, self.train, self.val, self.batches, self.checkpointed, self.threads = [], [], [], [], set(), set()

    def on_fit_start(self, trainer):
        trainer.model.register_forward_pre_hook(lambda m, args: self.batches.append(len(next(iter(args[0].values())))
                                                                                    if isinstance(args[0], dict) else len(args[0])))

    def on_step_end(self, trainer):
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])
        self.threads.add(torch.get_num_threads())
        last = trainer.run_dir / "checkpoints" / "last.pt"
        if last.is_file():
            self.checkpointed.add(load_checkpoint(last)["step"])

    def on_log(self, trainer, record):
        self.train.append(record)

    def on_eval(self, trainer, record):
        self.val.append(record)


@pytest.fixture(scope="module")
def prepared():
    return {name: prepare(load_config(base).data) for name, base in BASE.items()}


@pytest.fixture(scope="module")
def run(prepared, tmp_path_factory):
    done = {}

    def run(overrides, data="iris"):
        key = (data, *overrides)
        if key not in done:
            cfg = load_config(BASE[data], TRAIN + list(overrides))
            record = Record()
            trainer = pipeline._trainer(cfg, prepared[data].features, tmp_path_factory.mktemp("run"), [record])
            val = prepared[data].splits["val"]
            result = trainer.fit(pipeline._train_batches(cfg, prepared[data], trainer), (val.x, val.y))
            done[key] = (trainer, record, result)
        return done[key]

    return run


def group(t, r, res):
    return t.optimizer.param_groups[0]


def weights(t, r, res):
    return torch.cat([p.detach().flatten() for p in t.model.parameters()]).tolist()


def first_loss(t, r, res):
    return r.train[0]["loss"]


def lrs(t, r, res):
    return [round(x, 8) for x in r.lrs]


# id, base overrides, the change, what to observe, the value expected after the change (None: only "differs")
CASES = [
    ("optimizer=sgd", [], ["train.optimizer=sgd"], lambda t, r, res: type(t.optimizer).__name__, "SGD"),
    ("optimizer=adam", [], ["train.optimizer=adam"], lambda t, r, res: type(t.optimizer).__name__, "Adam"),
    ("optimizer=rmsprop", [], ["train.optimizer=rmsprop"], lambda t, r, res: type(t.optimizer).__name__, "RMSprop"),
    ("optimizer=adamw", ["train.optimizer=sgd"], ["train.optimizer=adamw"], lambda t, r, res: type(t.optimizer).__name__, "AdamW"),
    ("lr", [], ["train.lr=0.05"], lambda t, r, res: r.lrs[0], 0.05),
    ("momentum", ["train.optimizer=sgd"], ["train.momentum=0.5"], lambda t, r, res: group(t, r, res)["momentum"], 0.5),
    ("nesterov", ["train.optimizer=sgd"], ["train.nesterov=true"], lambda t, r, res: group(t, r, res)["nesterov"], True),
    ("betas", [], ["train.betas=[0.8,0.95]"], lambda t, r, res: tuple(group(t, r, res)["betas"]), (0.8, 0.95)),
    ("weight_decay", [], ["train.weight_decay=0.1"], lambda t, r, res: group(t, r, res)["weight_decay"], 0.1),
    ("schedule=step", [], ["train.schedule=step", "train.step_every_epochs=1", "train.gamma=0.5"], lrs,
     [0.01] * 3 + [0.005] * 4 + [0.0025]),
    ("step_every_epochs", ["train.schedule=step", "train.gamma=0.5", "train.epochs=3"], ["train.step_every_epochs=2"], lrs,
     [0.01] * 7 + [0.005] * 4 + [0.005]),
    ("gamma", ["train.schedule=step", "train.step_every_epochs=1"], ["train.gamma=0.25"], lrs, [0.01] * 3 + [0.0025] * 4 + [0.000625]),
    ("schedule=cosine", [], ["train.schedule=cosine"], lambda t, r, res: round(r.lrs[-1], 8), 0.0),
    ("min_lr", ["train.schedule=cosine"], ["train.min_lr=0.002"], lambda t, r, res: round(r.lrs[-1], 8), 0.002),
    ("schedule=onecycle", [], ["train.schedule=onecycle"], lambda t, r, res: r.lrs.index(max(r.lrs)), 1),  # peak after int(8 * 0.3) steps
    ("onecycle_pct", ["train.schedule=onecycle"], ["train.onecycle_pct=0.5"], lambda t, r, res: r.lrs.index(max(r.lrs)), 3),
    ("warmup_steps", [], ["train.warmup_steps=4"], lambda t, r, res: lrs(t, r, res)[:3], [0.005, 0.0075, 0.01]),
    ("label_smoothing", [], ["train.label_smoothing=0.3"], first_loss, None),
    ("class_weights", [], ["train.class_weights=[1.0,5.0,0.2]"], first_loss, None),
    ("precision", ["train.precision=fp32"], ["train.precision=bf16"], first_loss, None),  # auto is bf16 on some CPUs
    ("grad_accum", [], ["train.grad_accum=2"], lambda t, r, res: max(r.batches[:8]), 16),
    ("batch_size", [], ["train.batch_size=16"], lambda t, r, res: res.steps, 14),
    ("clip_grad_norm", ["train.optimizer=sgd"], ["train.clip_grad_norm=0.001"], weights, None),
    ("seed", [], ["train.seed=1"], first_loss, None),
    ("epochs", [], ["train.epochs=3"], lambda t, r, res: res.steps, 12),
    ("max_steps", [], ["train.max_steps=3"], lambda t, r, res: res.steps, 3),
    ("eval_every_steps", [], ["train.eval_every_steps=3"], lambda t, r, res: [v["step"] for v in r.val], [3, 6, 8]),
    ("log_every_steps", [], ["train.log_every_steps=3"], lambda t, r, res: [x["step"] for x in r.train], [3, 4, 6, 8]),  # and each epoch's end
    ("eval_batches", ["train.batch_size=2", "train.max_steps=2"], ["train.eval_batches=1"],  # val: 15 rows in batches of 8
     lambda t, r, res: r.val[-1]["loss"], None),
    ("early_stopping.patience", ["train.eval_every_steps=1", "train.early_stopping.min_delta=10"],
     ["train.early_stopping.patience=2"], lambda t, r, res: res.steps, 3),
    ("early_stopping.min_delta", ["train.eval_every_steps=1", "train.early_stopping.patience=1", "train.lr=0.001"],
     ["train.early_stopping.min_delta=10"], lambda t, r, res: res.steps, 2),
    ("restore_best", ["train.optimizer=sgd", "train.lr=1.0", "train.eval_every_steps=1"], ["train.restore_best=false"],  # best: step 7
     lambda t, r, res: res.weights["step"], 8),
    ("monitor", [], ["train.monitor=val.accuracy"], lambda t, r, res: res.best["metric"], "val.accuracy"),
    ("checkpoint_every_steps", [], ["train.checkpoint_every_steps=3"], lambda t, r, res: sorted(r.checkpointed), [3, 4, 6]),
    ("threads", ["train.threads=1"], ["train.threads=3"], lambda t, r, res: r.threads, {3}),
    ("lr_groups", [], ["train.lr_groups={heads.*: 0.05}"], lambda t, r, res: {g["initial_lr"] for g in t.optimizer.param_groups},
     {0.01, 0.05}),
    ("freeze", [], ["train.freeze=[heads.*]"], lambda t, r, res: sum(p.requires_grad for p in t.model.parameters()), None),
    ("unfreeze", [], ["train.unfreeze.every_epochs=1"],
     lambda t, r, res: [type(c).__name__ for c in t.callbacks].count("GradualUnfreeze"), 1),
]
REGRESSION = [("loss", [], ["train.loss=l1"], first_loss, None), ("loss=huber", [], ["train.loss=huber"], first_loss, None)]


@pytest.mark.parametrize("name, base, change, observe, expected", [(*c[:1], *c[1:]) for c in CASES] +
                         [(c[0], c[1], c[2], c[3], c[4]) for c in REGRESSION], ids=[c[0] for c in CASES + REGRESSION])
def test_a_changed_setting_changes_what_happens(run, name, base, change, observe, expected):
    data = "diabetes" if any(name == c[0] for c in REGRESSION) else "iris"
    before, after = observe(*run(base, data)), observe(*run(base + change, data))
    assert after != before, f"{change} changed nothing observable"
    if expected is not None:
        assert after == pytest.approx(expected) if isinstance(expected, (float, list)) and not isinstance(expected, set) else after == expected


def test_every_training_setting_is_covered():
    from forgeml.config import TrainConfig

    covered = {c.split("=")[0].removeprefix("train.").split(".")[0] for case in CASES + REGRESSION for c in case[2]}
    not_here = {"compile": "its own test (test_trainer.py)", "device": "one device here", "progress": "display only",
                "tensorboard": "test_trainer.py",
                "activation_checkpointing": "test_activation_checkpointing.py (blocks recomputed, same gradients) and "
                                            "test_fsdp.py (under FSDP on 2 processes)",
                "strategy": "tests/training/test_distributed.py (real 2-process torchrun jobs)",
                "checkpoint_every_minutes": "test_killed_runs.py (a real run killed after a timed checkpoint)",
                "privacy": "test_privacy.py (epsilon sets the noise, max_grad_norm clips each row, the spent epsilon)",
                "negatives": "tests/test_recommend.py::test_losses_differ_by_setting (in_batch and uniform give other losses)",
                "num_negatives": "tests/test_recommend.py::test_losses_differ_by_setting (2 and 50 uniform negatives differ)"}
    assert set(TrainConfig.model_fields) - covered - set(not_here) == set()
