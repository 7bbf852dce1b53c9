"""train.freeze, train.unfreeze and train.lr_groups: what trains, when, and at which learning rate."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

import forgeml
from forgeml import pipeline
from forgeml.errors import ConfigError
from forgeml.training.callbacks import Callback
from forgeml.training.optim import param_groups
from tests.pretrained_fixtures import sms_config
from tests.training.test_resume import InterruptAt

pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_frozen_parameters_stay_bit_identical_and_the_rest_train(runs, tiny_bert):
    run = forgeml.train(sms_config(runs, tiny_bert, freeze=["encoders.text.model.embeddings.*", "encoders.text.model.encoder.layer.0.*"]))
    source, trained = load_file(str(tiny_bert / "model.safetensors")), load_file(str(run / "model.safetensors"))
    prefix = "encoders.text.model."
    frozen = [k for k in trained if k.startswith(prefix + "embeddings.") or k.startswith(prefix + "encoder.layer.0.")]
    assert len(frozen) > 10
    for k in frozen:
        assert torch.equal(trained[k], source[k.removeprefix(prefix)]), k
    moved = [k for k in trained if k.startswith(prefix + "encoder.layer.1.")]
    assert any(not torch.equal(trained[k], source[k.removeprefix(prefix)]) for k in moved)


def test_a_pattern_that_matches_nothing_names_it_and_real_names(runs, tiny_bert):
    with pytest.raises(ConfigError, match=r"train.freeze: 'encoder.text.\*' matches no parameter of this model; parameter "
                                          r"names look like encoders.text.model.embeddings"):
        forgeml.train(sms_config(runs, tiny_bert, freeze=["encoder.text.*"]))
    with pytest.raises(ConfigError, match=r"train.lr_groups: 'heads.nope.\*' matches no parameter"):
        forgeml.train(sms_config(runs, tiny_bert, lr_groups={"heads.nope.*": 1e-3}))
    assert list(runs.iterdir()) == []  # refused before any run folder exists
    with pytest.raises(ConfigError, match="lr of 'heads.*' is 0; it must be > 0"):
        forgeml.train(sms_config(runs, tiny_bert, lr_groups={"heads.*": 0}))


def test_lr_groups_carry_their_lr_and_change_training(runs, tiny_bert):
    seen = {}

    class Groups(Callback):
        def on_fit_start(self, trainer):
            seen["groups"] = [(g.get("initial_lr", g["lr"]), g["weight_decay"], len(g["params"])) for g in trainer.optimizer.param_groups]

    run = forgeml.train(sms_config(runs, tiny_bert, lr_groups={"encoders.text.*": 2e-5}, weight_decay=0.01), callbacks=[Groups()])
    lrs = {lr for lr, _, _ in seen["groups"]}
    assert lrs == {1e-3, 2e-5}
    assert seen["groups"][0][0] == 1e-3  # train.lr's groups first: history's lr is train.lr's
    body = sum(n for lr, _, n in seen["groups"] if lr == 2e-5)
    assert body == len([k for k in load_file(str(run / "model.safetensors")) if k.startswith("encoders.text.")])
    other = forgeml.train(sms_config(runs, tiny_bert, lr_groups={"encoders.text.*": 1e-2}, weight_decay=0.01), name="other")
    a, b = load_file(str(run / "model.safetensors")), load_file(str(other / "model.safetensors"))
    assert not torch.equal(a["encoders.text.model.encoder.layer.1.output.dense.weight"],
                           b["encoders.text.model.encoder.layer.1.output.dense.weight"])


def test_unfreezing_needs_a_forgeml_network():
    import forgeml as f

    with pytest.raises(ConfigError, match="train.unfreeze: gradual unfreezing needs a forgeml network"):
        f.Trainer(torch.nn.Linear(2, 2), "mse", unfreeze={"every_epochs": 1}, progress=False)


def test_warmup_and_schedule_scale_every_group():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    from forgeml.config import TrainConfig
    from forgeml.training.optim import build_optimizer
    from forgeml.training.schedules import build_schedule

    cfg = TrainConfig(lr=1e-2, lr_groups={"0.*": 1e-4}, warmup_steps=4, schedule="cosine")
    opt = build_optimizer(model, cfg)
    sched = build_schedule(opt, cfg, 10, 10)
    lrs = sorted(set(sched.get_last_lr()))
    assert lrs == pytest.approx([1e-4 / 4, 1e-2 / 4])  # the first warmup step: a quarter of each group's peak
    assert len(param_groups(model, 0.0, {"0.*": 1e-4})) == 4  # per lr: matrices (decayed) and biases (not)


class Trainable(Callback):
    """Trainable parameters (numel) at the start of every epoch."""

    def __init__(self):
        self.counts = []

    def on_fit_start(self, trainer):
        self.counts.append(sum(p.numel() for p in trainer.model.parameters() if p.requires_grad))

    def on_epoch_end(self, trainer):
        self.counts.append(sum(p.numel() for p in trainer.model.parameters() if p.requires_grad))


def test_gradual_unfreezing_opens_one_layer_from_the_top_per_period(runs, tiny_bert):
    seen = Trainable()
    run = forgeml.train(sms_config(runs, tiny_bert, epochs=4, unfreeze={"every_epochs": 1}), callbacks=[seen])
    state = load_file(str(run / "model.safetensors"))
    size = {part: sum(v.numel() for k, v in state.items() if k.startswith(f"encoders.text.model.{part}"))
            for part in ("embeddings", "encoder.layer.0", "encoder.layer.1")}
    heads = sum(v.numel() for k, v in state.items() if not k.startswith("encoders."))
    assert seen.counts[:4] == [heads, heads + size["encoder.layer.1"], heads + size["encoder.layer.1"] + size["encoder.layer.0"],
                               heads + sum(size.values())]
    source = load_file(str(tiny_bert / "model.safetensors"))  # the embeddings opened for the last epoch only: they moved
    assert not torch.equal(state["encoders.text.model.embeddings.word_embeddings.weight"], source["embeddings.word_embeddings.weight"])


def test_unfreezing_and_freeze_together_and_on_resume(runs, tiny_bert):
    cfg = sms_config(runs, tiny_bert, epochs=3, unfreeze={"every_epochs": 1}, freeze=["encoders.text.model.encoder.layer.1.*"],
                     checkpoint_every_steps=1)
    with pytest.raises(KeyboardInterrupt) as info:
        forgeml.train(cfg, callbacks=[InterruptAt(4)])  # 3 steps per epoch: stops in the second epoch
    seen = Trainable()
    source = load_file(str(tiny_bert / "model.safetensors"))
    shutil.rmtree(tiny_bert)  # a resume reads the checkpoint and features.json, never the source folder
    run = pipeline.resume(info.value.run, callbacks=[seen])
    state = load_file(str(run / "model.safetensors"))
    heads = sum(v.numel() for k, v in state.items() if not k.startswith("encoders."))
    layer0 = sum(v.numel() for k, v in state.items() if k.startswith("encoders.text.model.encoder.layer.0."))
    # resumed in epoch 1: the top layer is open by the schedule but frozen by train.freeze; epoch 2 opens layer 0
    assert seen.counts[:2] == [heads, heads + layer0]
    assert all(torch.equal(v, source[k.removeprefix("encoders.text.model.")]) for k, v in state.items()
               if k.startswith("encoders.text.model.encoder.layer.1."))
