"""Multi-label metrics against a hand computation, and per-label threshold tuning."""

import pytest
import torch

from forgeml.evaluation.multilabel import (
    MultiLabelMetrics,
    ThresholdTuner,
    choose_thresholds,
    tune_thresholds,
)


def logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p / (1 - p))


# 4 rows, 3 labels; at 0.5 the predictions are:
#   pred  [1,0,1] [0,1,0] [1,1,0] [0,0,0]
#   true  [1,0,0] [0,1,0] [1,0,0] [0,0,1]
PROBS = torch.tensor([[0.9, 0.2, 0.7], [0.1, 0.8, 0.3], [0.6, 0.6, 0.4], [0.2, 0.1, 0.45]])
TRUE = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float32)


def test_metrics_match_a_hand_computation_and_stream_over_batches():
    m = MultiLabelMetrics(["a", "b", "c"])
    m.update(logit(PROBS[:3]), TRUE[:3])  # two batches: the result must not depend on the split
    m.update(logit(PROBS[3:]), TRUE[3:])
    out = m.compute()
    # per label: a tp2 fp0 fn0 -> F1 1; b tp1 fp1 fn0 -> 2/3; c tp0 fp1 fn1 -> 0
    assert out["per_label"]["a"]["f1"] == pytest.approx(1.0)
    assert out["per_label"]["b"]["f1"] == pytest.approx(2 / 3)
    assert out["per_label"]["c"]["f1"] == pytest.approx(0.0)
    assert out["per_label"]["b"]["precision"] == pytest.approx(0.5) and out["per_label"]["b"]["recall"] == pytest.approx(1.0)
    assert [out["per_label"][k]["support"] for k in "abc"] == [2, 1, 1]
    assert out["f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    # micro: tp 3, fp 2, fn 1 -> precision 3/5, recall 3/4, F1 6/9
    assert out["precision_micro"] == pytest.approx(3 / 5)
    assert out["recall_micro"] == pytest.approx(3 / 4)
    assert out["f1_micro"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert out["subset_accuracy"] == pytest.approx(1 / 4)  # only row 1 is exactly right


def test_per_label_thresholds_change_the_predictions():
    m = MultiLabelMetrics(["a", "b", "c"], thresholds=[0.5, 0.7, 0.42])
    m.update(logit(PROBS), TRUE)
    out = m.compute()
    # b at 0.7 drops row 2's false positive; c at 0.42 catches row 3 but still fires on row 0 (0.7)
    assert out["per_label"]["b"]["f1"] == pytest.approx(1.0)
    assert out["per_label"]["c"]["f1"] == pytest.approx(2 / 3)
    assert out["per_label"]["c"]["threshold"] == pytest.approx(0.42)
    assert out["subset_accuracy"] == pytest.approx(3 / 4)


def test_tuned_thresholds_beat_half_on_a_constructed_case_and_differ_per_label():
    g = torch.Generator().manual_seed(0)
    n = 2000
    y = (torch.rand(n, 2, generator=g) < torch.tensor([0.3, 0.1])).float()
    # label 0 is scored too high (positives ~0.8, negatives ~0.55), label 1 too low (~0.35 vs ~0.1):
    # 0.5 is wrong for both, in opposite directions
    noise = torch.rand(n, 2, generator=g) * 0.15
    probs = torch.where(y == 1, torch.tensor([0.75, 0.3]), torch.tensor([0.5, 0.05])) + noise
    t = tune_thresholds(probs, y)
    assert t[0] > 0.6 and t[1] <= 0.3  # one up, one down: per label, not one global number

    def macro(th):
        m = MultiLabelMetrics(["a", "b"], th)
        m.update(logit(probs.clamp(1e-6, 1 - 1e-6)), y)
        return m.compute()["f1_macro"]

    assert macro(t) == pytest.approx(1.0)
    assert macro([0.5, 0.5]) < 0.8


def test_streamed_tuning_equals_the_one_shot_function_and_brute_force():
    g = torch.Generator().manual_seed(1)
    probs, y = torch.rand(300, 4, generator=g), (torch.rand(300, 4, generator=g) < 0.3).float()
    probs = (probs + y * 0.3).clamp(max=1)
    tuner = ThresholdTuner(4)
    for i in range(0, 300, 64):
        tuner.update(logit(probs[i : i + 64].clamp(1e-6, 1 - 1e-6)), y[i : i + 64])
    streamed = tuner.compute()
    assert streamed == pytest.approx(tune_thresholds(probs, y), abs=1e-6)

    def f1(j, t):
        p = probs[:, j] >= t
        tp = (p & (y[:, j] == 1)).sum().item()
        return 2 * tp / (p.sum().item() + y[:, j].sum().item())

    for j in range(4):  # by hand: each label's F1 at every grid point, best value
        best = max(f1(j, k / 100) for k in range(1, 100))
        assert f1(j, streamed[j]) == pytest.approx(best)


def test_a_label_without_positives_keeps_the_fixed_threshold():
    probs = torch.tensor([[0.9, 0.2], [0.1, 0.3]])
    y = torch.tensor([[1, 0], [0, 0]])
    assert tune_thresholds(probs, y) == [pytest.approx(0.5), 0.5]  # label 0: F1 1 for 0.11..0.9, nearest 0.5
    assert tune_thresholds(probs, y, min_positives=2) == [0.5, 0.5]


def test_choose_thresholds_fixed_or_tuned():
    assert choose_thresholds(0.5, 3) == [0.5, 0.5, 0.5]
    tuner = ThresholdTuner(1)
    tuner.update(torch.tensor([[2.0], [-2.0]]), torch.tensor([[1.0], [0.0]]))
    assert choose_thresholds("tune", 1, tuner) == [pytest.approx(0.5)]
    with pytest.raises(ValueError):
        choose_thresholds("tune", 1)
