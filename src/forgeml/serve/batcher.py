"""Dynamic batching: requests that arrive within max_wait_ms of each other share one forward pass.

Each request's rows are turned into tensors by the request itself (a bad row fails its own request only), then wait
here. One worker takes the first waiting request, keeps taking requests that arrive within max_wait_ms until
max_batch_size rows, stacks their tensors, runs the network ONCE in a thread (so the event loop, and /health, keep
answering), decodes, and hands each request exactly its own rows back. While a pass runs, new requests queue up and
form the next batch at once: under load batches grow by themselves, alone a request waits at most max_wait_ms.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


class QueueFull(Exception):
    """More than max_queue rows are waiting: the server answers 503 with Retry-After."""


class ShuttingDown(Exception):
    """The server is draining its queue for shutdown and takes no new work: a 503."""


@dataclass
class Job:
    inputs: Any  # this request's rows, transformed: a dict of (n, ...) tensors
    n: int
    future: asyncio.Future = field(repr=False)
    arrived: float = 0.0  # loop.time() at submit: a batch's wait is counted from its first request's arrival


def stack_tensors(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate the requests' tensors along the batch axis; text and series of different lengths are padded at the
    end with zeros (token id 0 is padding, a series is zero past its end: docs/contract.md), as one transform would."""
    out = {}
    for key in parts[0]:
        tensors = [p[key] for p in parts]
        if tensors[0].dim() >= 2 and len({t.shape[1] for t in tensors}) > 1:
            longest = max(t.shape[1] for t in tensors)
            # pad dim 1 (T) only: F.pad lists (last dim's left, right, ..., dim 1's left, right)
            tensors = [F.pad(t, [0, 0] * (t.dim() - 2) + [0, longest - t.shape[1]]) for t in tensors]
        out[key] = torch.cat(tensors)  # (sum of n, ...)
    return out


class Batcher:
    """`await batcher.submit(inputs, n)` -> that request's n decoded predictions.

    `forward(stacked_inputs) -> list of per-row predictions` runs in a single worker thread: one pass at a time (a
    Predictor is not made for concurrent calls, and on a CPU one pass already uses every core)."""

    def __init__(self, forward: Callable[[dict[str, torch.Tensor]], list[Any]], max_batch_size: int = 64,
                 max_wait_ms: float = 5.0, max_queue: int = 1024, metrics=None,
                 stack: Callable[[list[Any]], Any] | None = None):
        self.stack = stack or stack_tensors  # how requests' inputs become one batch
        self.forward, self.max_batch_size, self.max_wait = forward, max(1, max_batch_size), max(0.0, max_wait_ms) / 1000
        self.max_queue, self.metrics = max_queue, metrics
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.waiting = 0  # rows queued and not yet taken into a batch
        self.closing = False
        self._carry: Job | None = None  # taken while filling a batch that it would have overfilled: first in the next one
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgeml-forward")
        self._worker: asyncio.Task | None = None
        self.busy = False  # a batch is between leaving the queue and its requests' answers

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, inputs: dict[str, torch.Tensor], n: int) -> list[Any]:
        if self.closing:
            raise ShuttingDown("the server is shutting down")
        if self.waiting + n > self.max_queue:
            raise QueueFull(f"{self.waiting} rows are already waiting (the queue holds {self.max_queue})")
        loop = asyncio.get_running_loop()
        job = Job(inputs, n, loop.create_future(), loop.time())
        self.waiting += n
        self._gauge()
        self.queue.put_nowait(job)
        return await job.future

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self.waiting)

    async def _next(self, timeout: float | None) -> Job:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        if timeout is None:
            return await self.queue.get()
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def _collect(self) -> list[Job]:
        """The first waiting job, and those that arrive within max_wait of it, up to max_batch_size rows.

        The wait counts from the first job's arrival, not from when this worker gets to it: requests that come in one
        burst are all handled (each to its submit) before the worker runs, and waiting another max_wait after that
        only idled the forward thread (about a tenth of the throughput at concurrency 32)."""
        loop = asyncio.get_running_loop()
        jobs = [await self._next(None)]
        rows, deadline = jobs[0].n, jobs[0].arrived + self.max_wait
        while rows < self.max_batch_size:
            try:
                # what is already queued is taken without waiting; only an empty queue waits out the deadline
                job = self.queue.get_nowait() if not self.queue.empty() else await self._next(max(0.0, deadline - loop.time()))
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            if rows + job.n > self.max_batch_size:
                self._carry = job
                break
            jobs.append(job)
            rows += job.n
        return jobs

    async def _run(self) -> None:
        while True:
            jobs = await self._collect()
            self.busy = True
            try:
                await self._answer(jobs)
            finally:
                self.busy = False

    async def _answer(self, jobs: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        self.waiting -= sum(j.n for j in jobs)
        self._gauge()
        jobs = [j for j in jobs if not j.future.cancelled()]  # the client went away: no work for it
        if not jobs:
            return
        try:
            stacked = self.stack([j.inputs for j in jobs])
            predictions = await loop.run_in_executor(self._thread, self.forward, stacked)
        except Exception as exc:  # noqa: BLE001 - a failed pass fails its requests, never the worker
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(exc)
            return
        if self.metrics is not None:
            self.metrics.batch_size.observe(sum(j.n for j in jobs))
        start = 0
        for j in jobs:  # each request gets exactly its own rows, in order
            if not j.future.done():
                j.future.set_result(predictions[start:start + j.n])
            start += j.n

    async def drain(self, timeout: float = 30.0) -> None:
        """Shutdown: refuse new work, answer everything already queued, then stop the worker."""
        self.closing = True
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while (self.waiting > 0 or self._carry is not None or self.busy) and loop.time() < end:
            await asyncio.sleep(0.01)
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._thread.shutdown(wait=False)
