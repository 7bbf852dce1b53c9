"""Knowledge distillation: the loss per output kind against hand-computed values, and a student trained end to end
from a tiny digits teacher into an ordinary bundle."""

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import forgeml
from forgeml import pipeline
from forgeml.bundle import Bundle
from forgeml.compress.distill import Teacher, check_kinds, check_settings, distill_loss
from forgeml.config import load_config
from forgeml.data.featureset import fitted_state
from forgeml.errors import BundleError, ConfigError
from forgeml.models import count_parameters
from forgeml.models.heads.classification import ClassHead
from forgeml.models.heads.multilabel import MultiLabelHead
from forgeml.models.heads.regression import RegressionHead
from forgeml.models.network import Network
from forgeml.pipeline import _student_config
from forgeml.training.callbacks import Callback
from tests.training.test_resume import InterruptAt


# ------------------------------------------------------------------------------------------ the loss
def test_soft_terms_against_hand_computed_values():
    net = three_output_network()
    y = {"c": torch.tensor([0]), "m": torch.tensor([[1.0]]), "r": torch.tensor([[0.0]])}
    # class: logits (1, 0) against the teacher's (0, 1) at T = 2: KL of softmax(0, .5) to softmax(.5, 0) = a * tanh(a / 2), a = .5
    s, t = {"c": torch.tensor([[1.0, 0.0]])}, {"c": torch.tensor([[0.0, 1.0]])}
    loss = distill_loss(s, t, y, net, {"c": "classification"}, temperature=2.0, alpha=1.0)
    assert loss.item() == pytest.approx(4 * 0.5 * math.tanh(0.25), rel=1e-5)  # times T^2 = 4
    # multilabel: student logit 0 (p = .5) against sigmoid(2 / 2): BCE is log 2 whatever the target; times T^2, times its weight .5
    loss = distill_loss({"m": torch.tensor([[0.0]])}, {"m": torch.tensor([[2.0]])}, y, net, {"m": "multilabel"}, 2.0, 1.0)
    assert loss.item() == pytest.approx(0.5 * 4 * math.log(2), rel=1e-5)
    # regression: MSE to the teacher's values (2.5), times its weight 2; the temperature plays no part
    s, t = {"r": torch.tensor([[1.0], [3.0]])}, {"r": torch.tensor([[0.0], [1.0]])}
    y2 = {"r": torch.zeros(2, 1)}
    for T in (1.0, 5.0):
        assert distill_loss(s, t, y2, net, {"r": "regression"}, T, 1.0).item() == pytest.approx(2 * 2.5)


def three_output_network() -> Network:
    class Pick(nn.Module):  # the input as it is: the heads see (B, 4)
        out_dim = 4

        def forward(self, inputs):
            return inputs["x"]

    class Concat(nn.Module):
        def forward(self, vectors):
            return torch.cat(vectors, dim=1)

    torch.manual_seed(0)
    heads = {"c": ClassHead(4, 3, label_smoothing=0.1), "m": MultiLabelHead(4, 2), "r": RegressionHead(4, 1)}
    return Network({"x": Pick()}, Concat(), heads, weights={"c": 1.0, "m": 0.5, "r": 2.0})


def test_alpha_zero_is_the_plain_loss_and_alpha_one_ignores_the_labels():
    net, kinds = three_output_network(), {"c": "classification", "m": "multilabel", "r": "regression"}
    x = {"x": torch.randn(5, 4)}
    out, teacher = net(x), {k: v + torch.randn_like(v) for k, v in net(x).items()}
    y = {"c": torch.tensor([0, 1, 2, 1, 0]), "m": torch.tensor([[1.0, 0], [0, 1], [1, 1], [0, 0], [1, 0]]), "r": torch.randn(5, 1)}
    y_other = {"c": (y["c"] + 1) % 3, "m": 1 - y["m"], "r": y["r"] + 3}
    plain = net.loss(out, y)  # each head's own loss (label smoothing included), weighted
    torch.testing.assert_close(distill_loss(out, teacher, y, net, kinds, 4.0, 0.0), plain)
    only_teacher = distill_loss(out, teacher, y, net, kinds, 4.0, 1.0)
    torch.testing.assert_close(distill_loss(out, teacher, y_other, net, kinds, 4.0, 1.0), only_teacher)
    assert not torch.allclose(net.loss(out, y_other), plain)
    mixed = distill_loss(out, teacher, y, net, kinds, 4.0, 0.3)
    torch.testing.assert_close(mixed, 0.3 * only_teacher + 0.7 * plain)
    # a student that already gives the teacher's outputs has nothing left to learn from it
    torch.testing.assert_close(distill_loss(out, {"r": out["r"]}, y, net, {"r": "regression"}, 4.0, 1.0), torch.tensor(0.0))


def test_a_student_whose_outputs_differ_from_the_teachers_is_refused():
    big = three_output_network()
    teacher = Teacher(big, Path("runs/big"), {"outputs": [{"name": n, "kind": k} for n, k in
                                                         [("c", "classification"), ("m", "multilabel"), ("r", "regression")]]})
    assert not any(p.requires_grad for p in big.parameters()) and not big.training  # frozen
    x = {"x": torch.randn(3, 4)}
    teacher.check_outputs(three_output_network(), x)
    other = three_output_network()
    other.heads["c"] = ClassHead(4, 5)  # five classes where the teacher has three
    with pytest.raises(ConfigError, match=r"student: its outputs c \[5\], m \[2\], r \[1\] do not match the teacher's c \[3\]"):
        teacher.check_outputs(other, x)


def test_unsupported_outputs_and_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="'next_token' is a next_token output.*does not support"):
        check_kinds({"next_token": "next_token"}, "runs/gpt")
    with pytest.raises(ConfigError, match="temperature: 0.0 must be above 0"):
        check_settings(0.0, 0.5)
    with pytest.raises(ConfigError, match="alpha: 1.5 must be between 0"):
        check_settings(2.0, 1.5)


# ------------------------------------------------------------------------------------------ end to end
STUDENT = {"model": {"name": "cnn", "blocks": [{"channels": 8, "kernel": 3, "padding": 1, "pool": 2}], "head": "flatten",
                     "hidden": [16]}, "train": {"epochs": 2}}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    runs = tmp_path_factory.mktemp("distill") / "runs"
    cfg = load_config("examples/digits-cnn.yaml", [f"runs_dir={runs}", "data.limit=500", "train.epochs=3", "train.progress=false",
                                                   "train.tensorboard=false"])
    return pipeline.train(cfg, name="teacher")


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_distilled_student_is_an_ordinary_smaller_bundle(teacher):
    before = digest(teacher)
    run = pipeline.distill(teacher, STUDENT, temperature=4.0, alpha=0.7)
    assert run == teacher.parent / "teacher-distilled"
    assert digest(teacher) == before, "the teacher bundle is never modified"
    student, big = forgeml.load(run), forgeml.load(teacher)
    assert count_parameters(student.model) * 4 < count_parameters(big.model)
    # the weights file is the student's alone: exactly its state dict's keys, no teacher tensors
    assert set(Bundle(run).load_weights()) == set(student.model.state_dict())
    assert set(big.model.state_dict()) - set(student.model.state_dict())
    assert fitted_state(Bundle(run).read_json("features.json")) == fitted_state(Bundle(teacher).read_json("features.json"))
    variant = Bundle(run).meta()["variant"]
    assert variant == {"kind": "distilled", "source": str(teacher.resolve()), "temperature": 4.0, "alpha": 0.7,
                       "params_teacher": count_parameters(big.model), "params_student": count_parameters(student.model)}
    assert Bundle(run).meta()["status"] == "complete"
    assert {"val", "test"} <= set(Bundle(run).read_json("metrics.json"))  # how well it learns: benchmarks/distill.py
    assert {"label", "confidence"} <= set(student.predict([{"image": np.zeros((8, 8))}])[0])
    assert "test" in pipeline.evaluate(run)
    assert (run / "report.html").is_file()


def test_the_temperature_reaches_training_and_an_interrupted_distillation_resumes_exactly(teacher):
    whole = pipeline.distill(teacher, STUDENT, temperature=4.0, name="t4")
    cool = pipeline.distill(teacher, STUDENT, temperature=1.0, name="t1")
    with pytest.raises(KeyboardInterrupt):
        pipeline.distill(teacher, STUDENT, temperature=4.0, name="cut", callbacks=[InterruptAt(5)])
    pipeline.resume(teacher.parent / "cut")  # learns from the same teacher again, at the same temperature
    a, b, c = (Bundle(r).load_weights() for r in (whole, cool, teacher.parent / "cut"))
    assert any(not torch.equal(a[k], b[k]) for k in a), "temperature 1 and 4 trained the same weights"
    for key in a:
        assert torch.equal(a[key], c[key]), key


def test_a_student_with_other_data_is_refused_before_any_folder(teacher):
    other = {**STUDENT, "data": {"source": "sklearn", "path": "wine", "split": {"val": 0.1, "test": 0.2, "seed": 0}}}
    with pytest.raises(ConfigError, match=r"student: .*data.path is 'wine' \(the teacher's: 'digits'\).*remove its data section"):
        pipeline.distill(teacher, other, name="refused")
    with pytest.raises(ConfigError, match="no model section"):
        pipeline.distill(teacher, {"train": {"epochs": 1}}, name="refused")
    with pytest.raises(ConfigError, match="model.hidden"):
        pipeline.distill(teacher, {"model": {"name": "cnn", "hidden": "wide"}}, name="refused")
    with pytest.raises(ConfigError, match="alpha"):
        pipeline.distill(teacher, STUDENT, alpha=-0.1, name="refused")
    assert not (teacher.parent / "refused").exists()
    # the teacher's own data section, spelt out, is accepted; the student's train settings go over the teacher's
    teacher_cfg = load_config(teacher / "config.yaml")
    cfg = _student_config(teacher_cfg, {**STUDENT, "data": teacher_cfg.data.model_dump(mode="json")})
    assert cfg.data == teacher_cfg.data and cfg.model.hidden == [16]
    assert cfg.train.epochs == 2 and cfg.train.lr == teacher_cfg.train.lr


def test_an_existing_folder_needs_overwrite_and_a_failed_distillation_leaves_none(teacher):
    before = digest(teacher)
    pipeline.distill(teacher, {**STUDENT, "train": {"epochs": 1}}, name="again")
    with pytest.raises(BundleError, match="already exists; pass --overwrite"):
        pipeline.distill(teacher, STUDENT, name="again")

    class Crash(Callback):
        def on_step_end(self, trainer):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        pipeline.distill(teacher, STUDENT, name="crashed", callbacks=[Crash()])
    assert not (teacher.parent / "crashed").exists()
    with pytest.raises(RuntimeError, match="disk on fire"):  # --overwrite that fails puts the old student back
        pipeline.distill(teacher, STUDENT, name="again", overwrite=True, callbacks=[Crash()])
    assert Bundle(teacher.parent / "again").meta()["status"] == "complete"
    pipeline.distill(teacher, {**STUDENT, "train": {"epochs": 1}}, name="again", overwrite=True)
    assert digest(teacher) == before
