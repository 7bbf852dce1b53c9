import numpy as np
import pytest
import torch

from forgeml.config import AugmentConfig, SplitConfig
from forgeml.data.augment import Augment, cutout, random_shift
from forgeml.data.batcher import IterableBatches, TensorBatcher
from forgeml.data.split import split_indices


def test_stratified_split_is_seeded_disjoint_and_keeps_proportions():
    labels = np.array(["a"] * 80 + ["b"] * 20, dtype=object)
    one = split_indices(100, SplitConfig(val=0.1, test=0.2, seed=3), labels, True, True)
    two = split_indices(100, SplitConfig(val=0.1, test=0.2, seed=3), labels, True, True)
    assert all(np.array_equal(one[k], two[k]) for k in one)
    assert sorted(np.concatenate(list(one.values())).tolist()) == list(range(100))
    assert (labels[one["test"]] == "b").sum() == 4  # 20% of the 20 b's
    other = split_indices(100, SplitConfig(val=0.1, test=0.2, seed=4), labels, True, True)
    assert not np.array_equal(one["test"], other["test"])


def test_ordered_split_and_no_training_rows():
    out = split_indices(10, SplitConfig(val=0.2, test=0.3, ordered=True), None, True, True)
    assert out["train"].tolist() == [0, 1, 2, 3, 4] and out["test"].tolist() == [7, 8, 9]
    with pytest.raises(ValueError, match="no training rows"):
        split_indices(2, SplitConfig(val=0.5, test=0.5), None, True, True)


def test_batcher_covers_every_row_once_per_epoch_and_is_repeatable():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    b = TensorBatcher(x, y, batch_size=4, seed=1)
    assert len(b) == 3
    seen = torch.cat([yb for _, yb in b.epoch(0)])
    assert sorted(seen.tolist()) == list(range(10))
    assert torch.equal(seen, torch.cat([yb for _, yb in b.epoch(0)]))
    assert not torch.equal(seen, torch.cat([yb for _, yb in b.epoch(1)]))
    resumed = torch.cat([yb for _, yb in b.epoch(0, start=1)])
    assert torch.equal(resumed, seen[4:])


def test_iterable_batches_skip_to_position():
    batches = IterableBatches([(torch.zeros(2), torch.tensor([i, i])) for i in range(5)])
    assert [int(y[0]) for _, y in batches.epoch(0, start=3)] == [3, 4]


def test_a_dataloaders_own_generator_is_saved_so_the_epoch_after_an_epoch_end_checkpoint_keeps_its_order():
    from torch.utils.data import DataLoader, TensorDataset

    def loader():  # what a resumed process builds: the generator fresh from its seed
        data = TensorDataset(torch.zeros(12, 1), torch.arange(12))
        return IterableBatches(DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(1)))

    run = loader()
    list(run.epoch(0))
    saved = run.state_dict()  # an epoch-end checkpoint
    order = torch.cat([y for _, y in run.epoch(1)])
    resumed = loader()
    resumed.load_state_dict(saved)
    assert torch.equal(torch.cat([y for _, y in resumed.epoch(1)]), order)


def test_shift_moves_content_and_keeps_shape():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 5, 5)
    x[:, :, 2, 2] = 1.0
    out = random_shift(x, 1)
    assert out.shape == x.shape and torch.all(out.sum((1, 2, 3)) == 1)  # the dot moved, never lost at pad 1
    positions = {tuple(torch.nonzero(o[0])[0].tolist()) for o in out}
    assert len(positions) > 3


def test_cutout_and_flip_and_config():
    torch.manual_seed(0)
    x = torch.ones(8, 1, 10, 10)
    assert (cutout(x, 3) == 0).any()
    holes = (cutout(torch.ones(200, 1, 10, 10), 2) == 0).sum((1, 2, 3))
    assert holes.max() == 4 and (holes < 4).any()  # a 2x2 square, cut where it hangs off the edge
    aug = Augment(AugmentConfig(translate=1, hflip=True, cutout=2))
    assert aug.active and aug(x).shape == x.shape
    assert not Augment(AugmentConfig()).active


def test_drop_last_counts_rows_of_a_dict_batch_not_its_keys():
    import torch

    from forgeml.data.batcher import TensorBatcher

    x = {"a": torch.arange(5.0)[:, None], "b": torch.arange(5)}  # 5 rows, 2 keys
    batches = TensorBatcher(x, torch.arange(5), 4, shuffle=False, drop_last=True)
    assert len(batches) == 1 and [len(yb) for _, yb in batches.epoch(0)] == [4]


def test_group_split_keeps_every_group_in_one_split_with_and_without_labels():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 3)  # 60 groups of 3 rows
    labels = np.array(["a", "b", "c"], dtype=object)[groups % 3]
    for lab in (labels, None):
        for seed in range(3):
            out = split_indices(180, SplitConfig(val=0.1, test=0.2, seed=seed), lab, True, True, groups=groups)
            assert sorted(np.concatenate(list(out.values())).tolist()) == list(range(180))
            sides = [set(groups[out[k]].tolist()) for k in ("train", "val", "test")]
            assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])  # no group in two splits
            assert 27 <= len(out["test"]) <= 45 and len(out["val"])  # near 20%: whole folds of groups
    out = split_indices(180, SplitConfig(seed=1), labels, True, True, groups=groups)
    assert {c: (labels[out["test"]] == c).sum() for c in "abc"} == {"a": 12, "b": 12, "c": 12}  # classes kept level
    with pytest.raises(ValueError, match="split.group keeps groups whole by shuffling"):
        split_indices(180, SplitConfig(ordered=True), None, True, True, groups=rng.integers(0, 5, 180))
