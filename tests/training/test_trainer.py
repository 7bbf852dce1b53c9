"""The Trainer against a plain hand-written loop, and its options."""

import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from forgeml.config import TrainConfig
from forgeml.data.batcher import TensorBatcher
from forgeml.errors import ConfigError
from forgeml.training.schedules import lr_multiplier
from forgeml.training.trainer import Trainer


def data(n=96, d=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    return x, y


def model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def hand_loop(net, x, y, batch_size, epochs, lr, seed, accum=1):
    """What a careful user writes: same batches (the batcher's permutation), AdamW, no decay."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0, foreach=True)
    batches = TensorBatcher(x, y, batch_size // accum, seed=seed)
    for epoch in range(epochs):
        for i, (xb, yb) in enumerate(batches.epoch(epoch)):
            (F.cross_entropy(net(xb), yb) / accum).backward()
            if (i + 1) % accum == 0:
                opt.step()
                opt.zero_grad(set_to_none=True)
    return net


def test_same_weights_as_a_hand_written_loop():
    x, y = data()
    ours, ref = model(), model()
    # fp32 asked for: auto is bf16 on a CPU with AVX512-BF16 or AMX, and the hand loop is fp32
    Trainer(ours, "cross_entropy", optimizer="adamw", lr=1e-2, epochs=3, batch_size=16, seed=5, precision="fp32",
            progress=False).fit((x, y))
    hand_loop(ref, x, y, 16, 3, 1e-2, seed=5)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_gradient_accumulation_matches_the_hand_loop():
    x, y = data()
    ours, ref = model(), model()
    Trainer(ours, "cross_entropy", lr=1e-2, epochs=2, batch_size=32, grad_accum=2, seed=1, precision="fp32", progress=False).fit((x, y))
    hand_loop(ref, x, y, 32, 2, 1e-2, seed=1, accum=2)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_overriding_compute_loss_changes_what_is_trained():
    """compute_loss is the seam: a subclass's objective is what the loop minimises, step for step as a hand loop."""

    class Penalised(Trainer):
        def compute_loss(self, x, y):
            out = self.step_model(x)
            return self.loss_fn(out, y) + 0.5 * out.pow(2).mean()  # logits kept small

    x, y = data()
    plain, ours, ref = model(), model(), model()
    Trainer(plain, "cross_entropy", lr=1e-2, epochs=2, batch_size=16, seed=2, progress=False).fit((x, y))
    Penalised(ours, "cross_entropy", lr=1e-2, epochs=2, batch_size=16, seed=2, progress=False).fit((x, y))
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.0, foreach=True)
    batches = TensorBatcher(x, y, 16, seed=2)
    for epoch in range(2):
        for xb, yb in batches.epoch(epoch):
            out = ref(xb)
            (F.cross_entropy(out, yb) + 0.5 * out.pow(2).mean()).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(ours[2].weight, plain[2].weight, atol=1e-3)


def test_overriding_train_step_changes_the_step():
    """train_step is the seam for a step of another shape: here two backward passes per micro-batch (the gradient of
    the loss counted twice), which is plain SGD with twice the learning rate."""

    class Twice(Trainer):
        def train_step(self, x, y):
            for _ in range(2):
                loss = self.compute_loss(x, y)
                loss.backward()
            return loss.detach()

    x, y = data()
    doubled, ours = model(), model()
    doubled.load_state_dict(ours.state_dict())
    Twice(ours, "cross_entropy", optimizer="sgd", momentum=0.0, lr=1e-2, epochs=1, batch_size=16, seed=2, progress=False).fit((x, y))
    Trainer(doubled, "cross_entropy", optimizer="sgd", momentum=0.0, lr=2e-2, epochs=1, batch_size=16, seed=2, progress=False).fit((x, y))
    for a, b in zip(ours.parameters(), doubled.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_learns_with_every_optimizer_and_schedule():
    x, y = data(n=256)
    for opt, sched in [("sgd", "step"), ("adam", "cosine"), ("adamw", "onecycle"), ("rmsprop", "constant")]:
        net = model()
        before = F.cross_entropy(net(x), y).item()
        t = Trainer(net, "cross_entropy", optimizer=opt, lr=0.01 if opt != "sgd" else 0.1, schedule=sched, warmup_steps=3,
                    epochs=8, batch_size=32, progress=False)
        t.fit((x, y))
        assert F.cross_entropy(net(x), y).item() < before * 0.7, (opt, sched)


def test_user_loss_and_optimizer_object_and_clip_and_label_smoothing():
    x, y = data()
    net = model()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    calls = []

    def my_loss(out, target):
        calls.append(1)
        return F.cross_entropy(out, target)

    Trainer(net, my_loss, optimizer=opt, epochs=1, batch_size=32, clip_grad_norm=0.5, progress=False).fit((x, y))
    assert len(calls) == 3
    Trainer(model(), "cross_entropy", label_smoothing=0.1, epochs=1, progress=False).fit((x, y))


def test_early_stopping_stops_and_reports_it(tmp_path):
    x, y = data()
    t = Trainer(model(), "cross_entropy", lr=1e-9, epochs=50, batch_size=32, progress=False, run_dir=tmp_path,
                monitor="val.loss", early_stopping={"patience": 2, "min_delta": 0.1}, tensorboard=False)
    result = t.fit((x, y), (x, y))
    assert result.stopped_early and result.steps == 3 * 3  # best at epoch 1, two bad epochs, stop
    assert (tmp_path / "checkpoints" / "best.safetensors").is_file() and (tmp_path / "history.jsonl").is_file()


def test_precisions_run_and_learn():
    x, y = data(n=128)
    for precision in ("bf16", "fp16"):
        net = model()
        before = F.cross_entropy(net(x), y).item()
        Trainer(net, "cross_entropy", lr=0.02, epochs=5, batch_size=32, precision=precision, progress=False).fit((x, y))
        assert F.cross_entropy(net(x), y).item() < before, precision


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="did you mean train.epochs"):
        Trainer(model(), epoch=3)
    with pytest.raises(ConfigError, match="train.monitor"):
        x, y = data()
        Trainer(model(), "cross_entropy", epochs=1, monitor="val.accuracy", progress=False).fit((x, y), (x, y))


def test_schedule_shapes():
    cfg = TrainConfig(lr=1.0, schedule="cosine", warmup_steps=10, min_lr=0.1)
    f = lr_multiplier(cfg, total_steps=110, steps_per_epoch=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(110) == pytest.approx(0.1)
    step = lr_multiplier(TrainConfig(schedule="step", step_every_epochs=2, gamma=0.5), 100, 10)
    assert step(19) == 1.0 and step(20) == 0.5 and step(40) == 0.25
    one = lr_multiplier(TrainConfig(lr=1.0, schedule="onecycle", onecycle_pct=0.25), 100, 10)
    assert one(0) == pytest.approx(0.0) and one(25) == pytest.approx(1.0) and one(100) == pytest.approx(0.0)


def test_weight_decay_only_on_matrices():
    from forgeml.training.optim import param_groups

    groups = param_groups(model(), 0.1)
    assert [len(g["params"]) for g in groups] == [2, 2]
    assert all(p.dim() == 2 for p in groups[0]["params"]) and groups[1]["weight_decay"] == 0.0


def test_adam_uses_the_fused_kernel_on_a_cpu():
    for name in ("adam", "adamw"):
        opt = Trainer(model(), "cross_entropy", optimizer=name, device="cpu", progress=False).optimizer
        assert opt.defaults["fused"] is True and not opt.defaults["foreach"], name


def test_compile_matches_eager():
    pytest.importorskip("torch._dynamo")
    x, y = data()
    eager, compiled = model(), model()
    Trainer(eager, "cross_entropy", lr=1e-2, epochs=1, batch_size=32, progress=False).fit((x, y))
    try:
        Trainer(compiled, "cross_entropy", lr=1e-2, epochs=1, batch_size=32, compile=True, progress=False).fit((x, y))
    except Exception as exc:  # no working C++ toolchain for inductor here
        pytest.skip(f"torch.compile unavailable: {exc}")
    for a, b in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_dataloader_works_and_resumes_at_its_position(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    x, y = data()
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False)
    net = model()
    result = Trainer(net, "cross_entropy", epochs=2, progress=False, run_dir=tmp_path, tensorboard=False).fit(loader, loader)
    assert result.steps == 12 and result.last_eval["loss"] > 0


def test_tensorboard_logs_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    x, y = data()
    Trainer(model(), "cross_entropy", epochs=1, batch_size=16, log_every_steps=2, progress=False, run_dir=tmp_path).fit((x, y), (x, y))
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_loss_comes_from_the_settings_and_numpy_inputs_work():
    import numpy as np

    x, y = data()
    t = Trainer(model(), loss="mse", epochs=1, progress=False)
    assert isinstance(t.loss_fn, nn.Module) and "Regression" in type(t.loss_fn).__name__
    t = Trainer(model(), class_weights=[1.0, 2.0, 3.0], label_smoothing=0.1, epochs=1, progress=False)
    assert t.loss_fn.weight.tolist() == [1.0, 2.0, 3.0] and t.loss_fn.label_smoothing == 0.1
    assert t.fit((x.numpy(), y.numpy().astype(np.int64))).steps == 2


def test_a_second_fit_continues_training():
    x, y = data()
    net = model()
    t = Trainer(net, "cross_entropy", lr=1e-2, epochs=1, batch_size=32, progress=False)
    assert t.fit((x, y)).steps == 3
    after_first = [p.detach().clone() for p in net.parameters()]
    assert t.fit((x, y)).steps == 6  # three more steps, from where the first call ended
    assert any(not torch.equal(a, b) for a, b in zip(after_first, net.parameters()))


def test_fit_leaves_the_global_rng_as_found_and_is_still_seeded():
    import random

    import numpy as np

    x, y = data()
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.5), nn.Linear(16, 3))  # dropout draws from torch's RNG
    b = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.5), nn.Linear(16, 3))
    b.load_state_dict(a.state_dict())
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    Trainer(a, "cross_entropy", epochs=1, batch_size=32, seed=3, progress=False).fit((x, y))
    assert torch.equal(torch.get_rng_state(), states[0])
    assert (np.random.get_state()[1] == states[1]).all() and random.getstate() == states[2]
    torch.rand(1000)  # the caller's RNG elsewhere: training is seeded by train.seed only
    Trainer(b, "cross_entropy", epochs=1, batch_size=32, seed=3, progress=False).fit((x, y))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_between_logs_the_loop_reads_no_loss_with_item_and_still_catches_a_nan(monkeypatch):
    # .item() waits for the device (a stalled launch queue on a GPU): only the log interval may call it
    x, y = data()
    calls = []
    item = torch.Tensor.item

    def counted(self):
        if sys._getframe(1).f_code.co_filename.endswith("trainer.py"):  # the optimizer reads its CPU step counts too
            calls.append(self.numel())
        return item(self)

    monkeypatch.setattr(torch.Tensor, "item", counted)
    Trainer(model(), "cross_entropy", batch_size=2, max_steps=45, log_every_steps=50, progress=False).fit((x, y))
    assert len(calls) == 1  # the last step's log (an epoch is 48 steps); the divergence check every 10 steps reads a host copy

    class NanAfter(nn.Module):  # a loss that becomes NaN at step 13, long before the first log at step 50
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, out, target):
            self.calls += 1
            loss = F.cross_entropy(out, target)
            return loss * float("nan") if self.calls >= 13 else loss

    from forgeml.errors import TrainingDiverged

    t = Trainer(model(), NanAfter(), batch_size=2, max_steps=45, log_every_steps=50, progress=False)
    with pytest.raises(TrainingDiverged, match="became nan .*at step 10"):
        t.fit((x, y))
    assert t.step <= 13 + 2 * 10


def test_a_fit_that_raises_still_moves_the_rng_stream_on():
    x, y = data()
    draws = []

    class Draw(nn.Module):  # draws from torch's global RNG, as dropout does; fails once, on demand
        def __init__(self):
            super().__init__()
            self.linear, self.fail_at = nn.Linear(6, 3), None

        def forward(self, x):
            draws.append(torch.rand(1).item())
            if len(draws) == self.fail_at:
                raise RuntimeError("out of memory, say")
            return self.linear(x)

    net = Draw()
    t = Trainer(net, "cross_entropy", batch_size=32, max_steps=2, progress=False)
    t.fit((x, y))
    net.fail_at = len(draws) + 2
    with pytest.raises(RuntimeError):
        t.fit((x, y))
    failed = draws[-2:]
    del draws[:]
    t.fit((x, y))
    assert draws[:2] != failed  # the next fit continues the stream, not replaying the failed call's draws
