"""Each rank's share of the batches (data/shard.py), checked in one process by asking for every rank's share."""

from __future__ import annotations

import torch

from forgeml.data.batcher import TensorBatcher
from forgeml.data.bucket import BucketBatcher
from forgeml.data.shard import DealtBatches, ShardedBatches


def _ids(batcher, epoch=0, start=0):
    return [y.tolist() for _, y in batcher.epoch(epoch, start)]


def test_the_ranks_slices_make_up_each_global_batch_and_no_row_twice():
    x, y = torch.randn(40, 3), torch.arange(40)
    whole = _ids(TensorBatcher(x, y, 8, seed=3))
    parts = [_ids(ShardedBatches(TensorBatcher(x, y, 8, seed=3), r, 2)) for r in range(2)]
    assert [a + b for a, b in zip(*parts, strict=True)] == whole  # rank 0 the first half of each batch, rank 1 the rest
    assert sorted(sum(parts[0] + parts[1], [])) == list(range(40))


def test_a_short_batch_that_does_not_split_is_left_out_and_one_that_does_is_shared():
    x, y = torch.randn(43, 3), torch.arange(43)  # 5 batches of 8 and one of 3
    odd = ShardedBatches(TensorBatcher(x, y, 8, seed=0), 0, 2)
    assert odd.drops_short and odd.short_rows == 3 and len(odd) == 5
    assert len(_ids(odd)) == 5
    x, y = torch.randn(44, 3), torch.arange(44)  # a short batch of 4: 2 rows each
    even = [ShardedBatches(TensorBatcher(x, y, 8, seed=0), r, 2) for r in range(2)]
    assert not even[0].drops_short and len(even[0]) == 6
    assert sorted(sum(_ids(even[0]) + _ids(even[1]), [])) == list(range(44))


def test_resuming_mid_epoch_skips_the_kept_batches_even_past_a_left_out_one():
    # the length-bucketing batcher shuffles its short batch anywhere in the epoch
    x = torch.randint(1, 9, (43, 6))
    y = torch.arange(43)
    sharded = ShardedBatches(BucketBatcher(x, y, 8, seed=5), 1, 2)
    assert sharded.drops_short and len(sharded) == 5
    full = _ids(sharded, epoch=2)
    assert len(full) == 5
    for start in range(5):
        assert _ids(sharded, epoch=2, start=start) == full[start:]


def test_evaluation_batches_are_dealt_whole_and_limited_as_one_process_would_be():
    x, y = torch.randn(50, 3), torch.arange(50)
    whole = _ids(TensorBatcher(x, y, 8, shuffle=False))  # 7 batches
    dealt = [_ids(DealtBatches(TensorBatcher(x, y, 8, shuffle=False), r, 2)) for r in range(2)]
    assert dealt[0] == whole[0::2] and dealt[1] == whole[1::2]
    limited = [DealtBatches(TensorBatcher(x, y, 8, shuffle=False), r, 2, limit=3) for r in range(2)]
    assert [len(d) for d in limited] == [2, 1]
    assert sorted(sum(_ids(limited[0]) + _ids(limited[1]), [])) == sorted(sum(whole[:3], []))
