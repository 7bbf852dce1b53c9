"""The Batcher on its own (no HTTP): which requests share a forward pass."""

import asyncio
import time

import pytest
import torch

from forgeml.serve.batcher import Batcher, QueueFull


def _rows(values):
    return {"x": torch.tensor(values, dtype=torch.float32)[:, None]}


def _recording_forward(passes):
    def forward(stacked):
        rows = stacked["x"][:, 0].tolist()
        passes.append(rows)
        return [f"p{int(v)}" for v in rows]
    return forward


def test_each_request_gets_its_own_rows_back_in_order():
    passes = []

    async def main():
        b = Batcher(_recording_forward(passes), max_batch_size=64, max_wait_ms=50)
        b.start()
        answers = await asyncio.gather(b.submit(_rows([1, 2]), 2), b.submit(_rows([3]), 1), b.submit(_rows([4, 5, 6]), 3))
        await b.drain()
        return answers

    assert asyncio.run(main()) == [["p1", "p2"], ["p3"], ["p4", "p5", "p6"]]
    assert passes == [[1, 2, 3, 4, 5, 6]]  # one pass for the three requests


def test_the_wait_counts_from_the_first_arrival_not_from_when_the_worker_wakes():
    """A burst of requests keeps the event loop busy before the worker runs (here: a blocking sleep after the first
    submit). Its max_wait had already passed by then, so the batch goes at once with what was waiting; a request that
    comes 50 ms later is in the next pass. (Counting from the wake-up, the worker waited a whole second more and took
    it along: the forward thread sat idle.)"""
    passes = []

    async def main():
        b = Batcher(_recording_forward(passes), max_batch_size=64, max_wait_ms=1000)
        b.start()
        await asyncio.sleep(0)  # the worker waits on the queue
        first = asyncio.ensure_future(b.submit(_rows([1]), 1))
        await asyncio.sleep(0)  # `first` is queued; the worker's wake-up is scheduled...
        time.sleep(1.1)  # ...but the loop is busy (handling the rest of a burst) past max_wait
        await asyncio.sleep(0.05)
        second = await b.submit(_rows([2]), 1)
        answers = [await first, second]
        await b.drain()
        return answers

    assert asyncio.run(main()) == [["p1"], ["p2"]]
    assert passes == [[1], [2]]


def test_rows_beyond_max_batch_size_wait_for_the_next_pass():
    passes = []

    async def main():
        b = Batcher(_recording_forward(passes), max_batch_size=3, max_wait_ms=50)
        b.start()
        await asyncio.gather(*[b.submit(_rows([i, i]), 2) for i in range(3)])
        await b.drain()

    asyncio.run(main())
    assert [len(p) for p in passes] == [2, 2, 2]  # 2 + 2 > 3: a request is never split across passes


def test_full_queue_refuses():
    async def main():
        b = Batcher(_recording_forward([]), max_batch_size=1, max_wait_ms=0, max_queue=2)
        # not started: nothing leaves the queue
        pending = asyncio.ensure_future(b.submit(_rows([1, 2]), 2))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await b.submit(_rows([3]), 1)
        pending.cancel()

    asyncio.run(main())
