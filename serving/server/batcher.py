"""Dynamic batching: concurrent requests to one signature run as one batch.

Like TF Serving's `--enable_batching`: requests for the same model version and
signature wait in a queue until `max_batch_size` rows are queued or the oldest
has waited `batch_timeout_micros`, and a batch thread is free. Their inputs are
concatenated along dimension 0, the signature runs once, and each output is
split back by row counts.

Only requests that can share a batch are queued together. The queue key holds
the model, version and signature, the dtype and trailing shape (dims 1..) of
every batched input, and the value of every scalar (rank-0) input: two
`translate_beams` requests are merged only when their `beam_size`, `top_beams`
and `alpha` are equal. A request with no batched input, or with more rows than
`max_batch_size`, runs alone.

Everything here runs on the asyncio event loop; the model runs in the
executor given to the batcher, so the loop never blocks.
"""

import asyncio
import collections
import dataclasses
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's batching parameters that matter here.

    Args:
        max_batch_size: int, most rows in one batch (default 32).
        batch_timeout_micros: int, longest wait of the oldest request before a
            partial batch runs (default 1000). With 0, a batch runs as soon as a
            batch thread is free: requests that arrive while the threads are busy
            still pile up and run together.
        num_batch_threads: int, batches running at once (default 2).
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    num_batch_threads: int = 2

    def __post_init__(self):
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1; got {self.max_batch_size}.")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"batch_timeout_micros must be >= 0; got {self.batch_timeout_micros}.")
        if self.num_batch_threads < 1:
            raise ValueError(f"num_batch_threads must be >= 1; got {self.num_batch_threads}.")


@dataclasses.dataclass
class _Task:
    inputs: dict
    rows: int
    future: asyncio.Future
    enqueued: float


class _Queue:
    def __init__(self):
        self.tasks = collections.deque()
        self.rows = 0
        self.wakeup = asyncio.Event()


def batch_key(inputs):
    """Splits a request's inputs into the queue key part and the row count.

    Args:
        inputs: dict str -> np.ndarray.

    Returns:
        (key, rows): key is a hashable tuple, rows the shared dimension 0 of the
        non-scalar inputs. (None, 0) when the request cannot be batched (no
        non-scalar input, or non-scalar inputs disagree on dimension 0).
    """
    parts = []
    rows = None
    for name in sorted(inputs):
        array = inputs[name]
        if array.ndim == 0:
            # Scalars must be equal to share a batch; tobytes() of an object array
            # holds pointers, so strings are compared by value.
            value = array.item() if array.dtype == object else array.tobytes()
            parts.append((name, "scalar", str(array.dtype), value))
            continue
        if rows is None:
            rows = array.shape[0]
        elif rows != array.shape[0]:
            return None, 0
        parts.append((name, "batched", str(array.dtype), array.shape[1:]))
    if rows is None or rows == 0:
        return None, 0
    return tuple(parts), rows


class Batcher:
    """Merges concurrent requests per key and runs each batch in an executor.

    Args:
        options: `BatchingOptions`.
        executor: a `concurrent.futures.Executor` running the model.
    """

    def __init__(self, options, executor):
        self._options = options
        self._executor = executor
        self._queues = {}
        self._slots = None  # asyncio.Semaphore, created on the running loop.
        self.batches_run = 0
        self.rows_run = 0

    async def run(self, key, inputs, rows, run_fn):
        """Queues a request and waits for its share of the batch output.

        Args:
            key: hashable; requests with equal keys may be merged. Must include
                what `batch_key` returns plus the servable and signature.
            inputs: dict str -> np.ndarray, dimension 0 = `rows` for batched inputs.
            rows: int.
            run_fn: callable(inputs) -> dict str -> np.ndarray, the model call
                (run in the executor); all requests of one key must share it.

        Returns:
            dict str -> np.ndarray, this request's rows of every output.
        """
        loop = asyncio.get_running_loop()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._options.num_batch_threads)
        if rows > self._options.max_batch_size:
            async with self._slots:
                return await loop.run_in_executor(self._executor, run_fn, inputs)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
            asyncio.ensure_future(self._schedule(key, queue, run_fn))
        future = loop.create_future()
        queue.tasks.append(_Task(inputs, rows, future, time.monotonic()))
        queue.rows += rows
        queue.wakeup.set()
        return await future

    async def _schedule(self, key, queue, run_fn):
        """Forms batches for one key until its queue stays idle for a second."""
        timeout = self._options.batch_timeout_micros / 1e6
        max_rows = self._options.max_batch_size
        while True:
            if not queue.tasks:
                queue.wakeup.clear()
                try:
                    await asyncio.wait_for(queue.wakeup.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    if not queue.tasks:
                        del self._queues[key]
                        return
                continue
            deadline = queue.tasks[0].enqueued + timeout
            while queue.rows < max_rows:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                queue.wakeup.clear()
                try:
                    await asyncio.wait_for(queue.wakeup.wait(), timeout=remaining)
                except asyncio.TimeoutError:
                    break
            await self._slots.acquire()
            batch, rows = [], 0
            while queue.tasks and rows + queue.tasks[0].rows <= max_rows:
                task = queue.tasks.popleft()
                queue.rows -= task.rows
                if task.future.done():  # Cancelled: its deadline passed while queued.
                    continue
                batch.append(task)
                rows += task.rows
            if not batch:
                self._slots.release()
                continue
            asyncio.ensure_future(self._run_batch(batch, run_fn))

    async def _run_batch(self, batch, run_fn):
        loop = asyncio.get_running_loop()
        try:
            merged = _concatenate([task.inputs for task in batch])
            try:
                outputs = await loop.run_in_executor(self._executor, run_fn, merged)
            except Exception as error:  # noqa: BLE001 -- delivered to every request of the batch.
                if len(batch) == 1:
                    _resolve(batch[0].future, error=error)
                else:
                    # One bad request must not fail the others: run them one by one.
                    await self._run_one_by_one(batch, run_fn)
                return
            self.batches_run += 1
            self.rows_run += sum(task.rows for task in batch)
            total = sum(task.rows for task in batch)
            if len(batch) > 1 and any(
                np.ndim(v) == 0 or np.shape(v)[0] != total for v in outputs.values()
            ):
                # Outputs that do not follow the batch cannot be split.
                await self._run_one_by_one(batch, run_fn)
                return
            start = 0
            for task in batch:
                stop = start + task.rows
                _resolve(
                    task.future, result={name: value[start:stop] for name, value in outputs.items()}
                )
                start = stop
        finally:
            self._slots.release()

    async def _run_one_by_one(self, batch, run_fn):
        loop = asyncio.get_running_loop()
        for task in batch:
            if task.future.done():
                continue
            try:
                result = await loop.run_in_executor(self._executor, run_fn, task.inputs)
            except Exception as error:  # noqa: BLE001
                _resolve(task.future, error=error)
            else:
                _resolve(task.future, result=result)


def _concatenate(inputs_list):
    if len(inputs_list) == 1:
        return inputs_list[0]
    first = inputs_list[0]
    merged = {}
    for name, array in first.items():
        if array.ndim == 0:
            merged[name] = array
        else:
            merged[name] = np.concatenate([inputs[name] for inputs in inputs_list], axis=0)
    return merged


def _resolve(future, result=None, error=None):
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
