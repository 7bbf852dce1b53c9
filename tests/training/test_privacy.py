"""train.privacy: DP-SGD through Opacus (real Opacus, real runs on small real data)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from forgeml import pipeline
from forgeml.bundle import Bundle
from forgeml.cli import main
from forgeml.config import load_config
from forgeml.data.poisson import PoissonBatcher
from forgeml.errors import ConfigError
from forgeml.training.privacy import PrivateTrainer, plan_noise
from tests.training.test_resume import InterruptAt  # a real Ctrl-C at a step

pytest.importorskip("opacus")

PRIVATE = {"epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0}


def table(n=600, seed=0):
    """A separable 2-class table as tensors: y depends on the first two of 6 columns."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def trainer(**privacy):
    return PrivateTrainer(nn.Linear(6, 2), "cross_entropy", epochs=2, batch_size=50, lr=0.05, progress=False,
                          privacy={**PRIVATE, **privacy})


# ------------------------------------------------------------------------------------------------ the budget
def test_spent_epsilon_is_within_the_target_and_close_to_it():
    t = trainer(seed=0)
    t.fit(table())
    spent = t.privacy_spent()
    assert spent["steps"] == spent["planned_steps"] == 2 * 12  # ceil(600 / 50) Poisson draws per epoch
    assert spent["sample_rate"] == pytest.approx(1 / 12)
    assert 0.97 * 3.0 <= spent["epsilon"] <= 3.0


def test_a_smaller_epsilon_means_more_noise_and_max_steps_counts():
    sigmas = [plan_noise(600, 50, 2, None, eps, 1e-5, 1.0).noise_multiplier for eps in (1.0, 3.0)]
    assert sigmas[0] > sigmas[1] > 0
    more_steps = plan_noise(600, 50, 2, 100, 3.0, 1e-5, 1.0)  # max_steps wins over epochs: more steps, more noise
    assert more_steps.steps == 100 and more_steps.noise_multiplier > sigmas[1]
    t = trainer(epsilon=1.0, seed=0, max_grad_norm=0.5)
    t.plan = t.plan_for(600)  # what fit() does first
    assert t.plan.noise_multiplier == pytest.approx(sigmas[0])


def test_max_grad_norm_clips_each_rows_gradient():
    """The gradient DP-SGD sums is each row's own gradient scaled down to norm <= max_grad_norm (measured, not trusted)."""
    x, y = table(16)
    x = x * 50  # gradients far above the clipping norm
    sums = {}
    for c in (0.5, 2.0):
        t = trainer(max_grad_norm=c, seed=0)
        with torch.no_grad():
            t.model.weight.zero_()  # uniform outputs: every row's gradient is large, none already fitted
        t.train_step(x, y)
        params = [p for p in t.model.parameters()]
        per_row = torch.cat([p.grad_sample.reshape(16, -1) for p in params], dim=1)  # (rows, all weights)
        norms = per_row.norm(dim=1)
        assert norms.min() > c  # every row would be clipped
        t.optimizer.clip_and_accumulate()
        summed = torch.cat([p.summed_grad.reshape(-1) for p in params])
        expected = (per_row * (c / (norms + 1e-6))[:, None]).sum(0)  # by hand: each row scaled to norm c
        assert torch.allclose(summed, expected, atol=1e-4)
        assert summed.norm() <= 16 * c + 1e-4
        sums[c] = summed
    assert float(sums[2.0].norm()) == pytest.approx(4 * float(sums[0.5].norm()), rel=1e-4)


def test_poisson_batches_vary_in_size_and_repeat_by_seed():
    x, y = table(1000)
    b = PoissonBatcher(x, y, 0.05, 20, seed=3)
    sizes = [len(yb) for _, yb in b.epoch(0)]
    assert len(sizes) == 20 and len(set(sizes)) > 3  # each row joins on its own: the size varies
    assert 40 < sum(sizes) / 20 < 60  # about q x N = 50
    again = [yb for _, yb in PoissonBatcher(x, y, 0.05, 20, seed=3).epoch(0, start=5)]
    assert all(torch.equal(a, b_) for a, b_ in zip(again, [yb for _, yb in b.epoch(0)][5:]))
    assert not torch.equal(next(iter(PoissonBatcher(x, y, 0.05, 20, seed=4).epoch(0)))[1], next(iter(b.epoch(0)))[1])


# ------------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("setting, match", [
    ("train.grad_accum=2", "grad_accum"), ("train.clip_grad_norm=1.0", "clip_grad_norm"),
    ("train.precision=fp16", "precision fp16"), ("train.compile=true", "compile"), ("train.strategy=ddp", "strategy ddp")])
def test_settings_dp_sgd_cannot_honour_are_refused(setting, match):
    with pytest.raises(ConfigError, match=match):
        load_config("examples/digits-cnn.yaml", ["train.privacy={epsilon: 3}", setting])


def test_a_language_model_is_refused():
    with pytest.raises(ConfigError, match="language model"):
        load_config("examples/shakespeare-gpt.yaml", ["train.privacy={epsilon: 3}"])


@pytest.mark.parametrize("privacy, match", [("{epsilon: 0.05, delta: 1e-5}", "cannot be met"),
                                             ("{epsilon: 3, delta: 0.01}", "not below 1 / training rows")])
def test_an_impossible_budget_is_refused_before_any_folder(runs, privacy, match):
    cfg = load_config("examples/digits-cnn.yaml", [f"runs_dir={runs}", f"train.privacy={privacy}", "train.progress=false"])
    with pytest.raises(ConfigError, match=match):
        pipeline.train(cfg)
    assert list(runs.iterdir()) == []


def test_a_layer_opacus_cannot_handle_is_refused_by_name(runs):
    cfg = load_config("examples/sms-spam-transformer.yaml", [f"runs_dir={runs}", "train.privacy={epsilon: 3}", "data.limit=300"])
    with pytest.raises(ConfigError, match=r"encoders\.text \(TransformerEncoder: its own parameters pos, cls\)"):
        pipeline.train(cfg)
    assert list(runs.iterdir()) == []


# ------------------------------------------------------------------------------------------------ whole runs
def digits(runs, *extra):
    return load_config("examples/digits-cnn.yaml", [
        f"runs_dir={runs}", "train.epochs=2", "train.progress=false", "train.tensorboard=false", "data.limit=500",
        "train.batch_size=50", "data.augment.translate=0",
        "train.privacy={epsilon: 3, delta: 1e-4, seed: 7}", *extra])


@pytest.fixture(scope="module")
def private_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return pipeline.train(digits(runs), name="whole", report=False), runs


def test_a_private_bundle_loads_and_predicts_like_any_other(private_run):
    run, _ = private_run
    weights = Bundle(run).load_weights()
    assert not any("_module" in k or "grad_sample" in k for k in weights)  # the Opacus wrapper is not in the names
    assert not any("running_mean" in k for k in weights)  # group norm where the config has batch norm
    import forgeml

    model = forgeml.load(run)  # rebuilds group norm from config.yaml's train.privacy, loads strictly
    assert isinstance(model.model.encoders["image"].features[0][1], nn.GroupNorm)
    spent = Bundle(run).meta()["privacy"]
    assert spent["epsilon"] <= 3.0 and spent["steps"] == spent["planned_steps"]
    history = Bundle(run).read_history()
    eps = [r["epsilon"] for r in history if r["split"] == "train"]
    assert eps == sorted(eps) and eps[-1] == pytest.approx(spent["epsilon"], abs=1e-3)
    import numpy as np
    from sklearn.datasets import load_digits

    images = load_digits().images[:20].astype(np.float32)
    predicted = model.predict([{"image": im} for im in images])
    assert len(predicted) == 20 and all(p["label"] in [str(d) for d in range(10)] for p in predicted)
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-4 for p in predicted)


def test_resume_continues_the_accountant_and_batch_norm_is_replaced_with_a_message(private_run, caplog):
    whole, runs = private_run
    with caplog.at_level("INFO", logger="forgeml"), pytest.raises(KeyboardInterrupt):
        pipeline.train(digits(runs), name="cut", callbacks=[InterruptAt(5)], report=False)
    assert "replaced by group norm at encoders.image.features.0.1, encoders.image.features.1.1" in caplog.text
    assert "features.json (normalisation statistics, category lists, vocabularies, label names) is fitted" in caplog.text
    cut = runs / "cut"
    assert Bundle(cut).meta()["status"] == "interrupted"
    pipeline.resume(cut)
    a, b = Bundle(whole).meta()["privacy"], Bundle(cut).meta()["privacy"]
    assert a == b  # the resumed accountant counted the steps before the stop: the same epsilon for the same steps
    wa, wb = Bundle(whole).load_weights(), Bundle(cut).load_weights()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # same draws and same noise after the resume: an exact resume


def test_train_and_evaluate_print_the_spent_epsilon(private_run, capsys):
    run, _ = private_run
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    spent = Bundle(run).meta()["privacy"]["epsilon"]
    assert "privacy:" in out and f"spent epsilon {spent:.4g} of the 3 planned" in out
    from forgeml.report.build import write_report

    assert "differentially private" in write_report(run).read_text()


def test_an_lstm_trains_privately_and_its_bundle_has_plain_lstm_names(runs):
    cfg = load_config("examples/sms-spam-lstm.yaml", [f"runs_dir={runs}", "train.privacy={epsilon: 8, delta: 1e-4}",
                                                      "data.limit=200", "data.text.max_length=12", "train.max_steps=2",
                                                      "train.eval_batches=1", "train.progress=false",
                                                      "train.tensorboard=false"])
    run = pipeline.train(cfg, report=False)
    weights = Bundle(run).load_weights()
    assert "encoders.text.rnn.weight_ih_l0" in weights and not any(".l0." in k for k in weights)
    import forgeml

    model = forgeml.load(run)
    assert isinstance(model.model.encoders["text"].rnn, nn.LSTM)
    assert math.isfinite(Bundle(run).meta()["privacy"]["epsilon"])


def test_the_conv1d_series_encoder_gets_per_row_gradients_through_its_group_norm():
    """conv1d's masked batch norm takes (x, mask): its group norm ignores the mask, and every weight gets a per-row
    gradient (the check Opacus makes before a step)."""
    from opacus import GradSampleModule

    from forgeml.data.prepare import prepare
    from forgeml.data.tensor_dict import rows
    from forgeml.models import build_network
    from forgeml.models.compose import head_settings
    from forgeml.training.privacy import make_compatible

    cfg = load_config("examples/libras-conv1d.yaml")
    data = prepare(cfg.data)
    net = make_compatible(build_network(cfg.model, data.features.inputs, data.features.outputs,
                                        head_settings(cfg, data.features.outputs), seed=0), say=lambda _: None)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    split = data.splits["train"]
    net.loss(GradSampleModule(net)(rows(split.x, 0, 8)), rows(split.y, 0, 8)).backward()
    assert all(p.grad_sample.shape[0] == 8 for p in net.parameters() if p.requires_grad)


def test_the_plain_trainer_refuses_privacy_rather_than_ignore_it():
    from forgeml.training.trainer import Trainer

    with pytest.raises(ConfigError, match="PrivateTrainer"):
        Trainer(nn.Linear(6, 2), "cross_entropy", privacy=PRIVATE)


def test_importing_opacus_leaves_the_root_logger_as_it_was():
    """opacus.utils.module_utils calls logging.basicConfig on import: every forgeml note printed twice (once
    timestamped) until require_opacus put the root logger's handlers back."""
    import subprocess
    import sys

    code = ("import logging; from forgeml.training.privacy import require_opacus; require_opacus(); "
            "print(len(logging.getLogger().handlers), logging.getLogger().level)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["0", "30"], out.stdout + out.stderr  # no handler, level WARNING (30), as Python starts
