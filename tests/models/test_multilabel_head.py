"""The multi-label head: logits out, BCE loss, pos_weight and prior bias from label frequencies, and a
tiny real training run on the GoEmotions sample that learns."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from forgeml.data.features.multilabel import MultiLabelTarget
from forgeml.data.features.text import TextFeature
from forgeml.evaluation.multilabel import MultiLabelMetrics, tune_thresholds
from forgeml.models.heads.multilabel import MultiLabelHead, MultiLabelHeadConfig, build
from forgeml.training.trainer import Trainer

DATA = Path(__file__).resolve().parents[2] / "data" / "goemotions"


def target(values=("a,b", "a", "a,c", "a")) -> MultiLabelTarget:
    return MultiLabelTarget("y").fit(np.array(values, dtype=object))  # frequencies a 1, b 1/4, c 1/4


def test_forward_gives_logits_and_loss_is_bce_with_logits():
    torch.manual_seed(0)
    head = build({"prior_bias": False}, 8, target())
    h = torch.randn(5, 8)
    out = head(h)
    assert out.shape == (5, 3) and out.dtype == torch.float32
    y = torch.randint(0, 2, (5, 3)).float()
    assert head.loss(out, y).item() == pytest.approx(F.binary_cross_entropy_with_logits(out, y).item())
    assert head.loss(out, y).ndim == 0


def test_prior_bias_starts_at_each_labels_training_frequency():
    head = build(None, 4, target())
    p = torch.sigmoid(head(torch.zeros(1, 4)))[0]  # zero input: the bias alone
    assert p.tolist() == pytest.approx([1 - 1e-4, 0.25, 0.25], abs=1e-6)  # a label on every row is clamped below 1


def test_pos_weight_balanced_sqrt_capped_and_in_the_loss():
    t = target(("a,b", "a", "a", "a", "a", "a", "a", "a", "a", "a,c"))  # a 10/10, b 1/10, c 1/10
    assert build({"pos_weight": "none"}, 4, t).pos_weight is None
    assert build({"pos_weight": "balanced"}, 4, t).pos_weight.tolist() == pytest.approx([0.0, 9.0, 9.0])
    assert build({"pos_weight": "sqrt"}, 4, t).pos_weight.tolist() == pytest.approx([0.0, 3.0, 3.0])
    assert build({"pos_weight": "balanced", "pos_weight_max": 5}, 4, t).pos_weight.tolist() == pytest.approx([0.0, 5.0, 5.0])
    head = build({"pos_weight": "balanced"}, 4, t)
    out, y = torch.randn(6, 3), torch.randint(0, 2, (6, 3)).float()
    assert head.loss(out, y).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(out, y, pos_weight=torch.tensor([0.0, 9.0, 9.0])).item())
    assert "pos_weight" not in head.state_dict()  # rebuilt from features.json, never saved with the weights


def test_a_misspelt_setting_is_an_error_not_a_silent_default():
    with pytest.raises(ValidationError, match="pos_wieght"):
        build({"pos_wieght": "balanced"}, 4, target())
    with pytest.raises(ValidationError):
        MultiLabelHeadConfig(pos_weight="sometimes")
    cfg = MultiLabelHeadConfig(dropout=0.2)
    assert isinstance(build(cfg, 4, target()), MultiLabelHead)


class MeanEmbedding(nn.Module):
    """The smallest text encoder: token embeddings averaged over the non-padding positions."""

    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != 0).unsqueeze(-1).float()  # (B, T, 1)
        return (self.embed(ids) * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, D)


class Model(nn.Module):
    def __init__(self, encoder: nn.Module, head: MultiLabelHead):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids))


def read_split(split: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{split}.tsv", sep="\t", header=None, names=["text", "labels", "id"], keep_default_na=False, dtype=str)


@pytest.mark.slow
def test_a_tiny_training_run_on_the_goemotions_sample_learns():
    train, dev = read_split("train"), read_split("dev")
    text = TextFeature("text", max_length=48, settings={"tokenizer": "word", "min_count": 2}).fit(train["text"].to_numpy())
    labels = MultiLabelTarget("labels", names_path=str(DATA / "emotions.txt")).fit(train["labels"].to_numpy())
    x, y = torch.from_numpy(text.transform(train["text"].to_numpy())), torch.from_numpy(labels.encode(train["labels"].to_numpy()))
    xv, yv = torch.from_numpy(text.transform(dev["text"].to_numpy())), torch.from_numpy(labels.encode(dev["labels"].to_numpy()))
    torch.manual_seed(0)
    model = Model(MeanEmbedding(text.vocab_size, 32), build({"pos_weight": "sqrt"}, 32, labels))
    trainer = Trainer(model, model.head.loss, optimizer="adamw", lr=1e-2, epochs=6, batch_size=64, progress=False,
                      device="cpu", threads=1, metrics=lambda: MultiLabelMetrics(labels.labels, full=False))
    before = trainer.evaluate((x, y))["loss"]
    result = trainer.fit((x, y), (xv, yv))
    after = trainer.evaluate((x, y))["loss"]
    assert after < 0.8 * before  # the training loss falls
    assert 0 < result.last_eval["f1_micro"] <= 1 and "f1_macro" in result.last_eval
    # thresholds tuned on dev, kept by the target, used by decode
    model.eval()
    with torch.no_grad():
        probs = torch.sigmoid(model(xv))
    labels.set_thresholds(tune_thresholds(probs, yv))
    decoded = labels.decode(probs)
    assert len(decoded) == len(dev) and all(set(d) <= set(labels.labels) for d in decoded)
    assert labels.to_json()["thresholds"] == labels.thresholds != [0.5] * 28
