"""Tests for serving/server/batcher.py: merging, splitting, scalar separation, failures."""

import asyncio
import concurrent.futures
import threading

import numpy as np
import pytest

from serving.server.batcher import Batcher, BatchingOptions, batch_key


class RecordingModel:
    """Doubles x and adds the scalar `shift`; records the batch sizes it ran."""

    def __init__(self, fail_on=None):
        self.batches = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, inputs):
        x = inputs["x"]
        with self.lock:
            self.batches.append(x.shape[0])
        if self.fail_on is not None and self.fail_on in x:
            raise ValueError(f"bad value {self.fail_on}")
        shift = inputs["shift"] if "shift" in inputs else 0
        return {"y": 2 * x + shift, "rows": np.full(x.shape[0], x.shape[0])}


def run_requests(requests, options, model):
    """Sends all requests concurrently through one batcher; returns the outputs in order."""

    async def main():
        with concurrent.futures.ThreadPoolExecutor(2) as executor:
            batcher = Batcher(options, executor)

            async def one(inputs):
                key, rows = batch_key(inputs)
                return await batcher.run(("m", key), inputs, rows, model)

            return await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)

    return asyncio.run(main())


def test_batch_key_separates_scalars_and_trailing_shapes():
    a = {"x": np.zeros(3), "shift": np.array(1.0)}
    b = {"x": np.zeros(5), "shift": np.array(1.0)}
    c = {"x": np.zeros(3), "shift": np.array(2.0)}
    d = {"x": np.zeros((3, 2)), "shift": np.array(1.0)}
    assert batch_key(a)[0] == batch_key(b)[0]
    assert batch_key(a) == (batch_key(a)[0], 3)
    assert batch_key(a)[0] != batch_key(c)[0]
    assert batch_key(a)[0] != batch_key(d)[0]
    assert batch_key({"shift": np.array(1.0)}) == (None, 0)  # nothing to batch
    assert batch_key({"x": np.zeros(2), "z": np.zeros(3)}) == (None, 0)  # disagreeing dim 0
    assert (
        batch_key({"s": np.array(b"a", dtype=object), "x": np.zeros(1)})[0]
        == batch_key({"s": np.array(b"a", dtype=object), "x": np.zeros(2)})[0]
    )


def test_concurrent_requests_merge_and_split_back():
    model = RecordingModel()
    requests = [{"x": np.arange(i, i + 2, dtype=np.float32)} for i in range(0, 16, 2)]  # 8 x 2 rows
    results = run_requests(
        requests, BatchingOptions(max_batch_size=16, batch_timeout_micros=50_000), model
    )
    for request, result in zip(requests, results):
        np.testing.assert_array_equal(result["y"], 2 * request["x"])
    assert model.batches == [16]  # one run for all eight requests
    assert all(result["rows"].tolist() == [16, 16] for result in results)


def test_max_batch_size_bounds_each_batch():
    model = RecordingModel()
    requests = [{"x": np.full(3, i, np.float32)} for i in range(5)]  # 15 rows
    results = run_requests(
        requests, BatchingOptions(max_batch_size=6, batch_timeout_micros=50_000), model
    )
    assert all(size <= 6 for size in model.batches)
    assert sum(model.batches) == 15
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], np.full(3, 2 * i))


def test_different_scalars_are_not_merged():
    model = RecordingModel()
    requests = [
        {"x": np.ones(1, np.float32), "shift": np.array(float(i % 2), np.float32)} for i in range(6)
    ]
    results = run_requests(
        requests, BatchingOptions(max_batch_size=32, batch_timeout_micros=50_000), model
    )
    assert sorted(model.batches) == [3, 3]
    assert [float(r["y"][0]) for r in results] == [2.0, 3.0] * 3


def test_oversized_request_runs_alone():
    model = RecordingModel()
    results = run_requests(
        [{"x": np.ones(10, np.float32)}], BatchingOptions(max_batch_size=4), model
    )
    assert model.batches == [10]
    assert results[0]["y"].shape == (10,)


def test_a_failing_request_does_not_fail_its_batch_mates():
    model = RecordingModel(fail_on=-1.0)
    requests = [{"x": np.array([v], np.float32)} for v in (1.0, -1.0, 3.0)]
    results = run_requests(
        requests, BatchingOptions(max_batch_size=8, batch_timeout_micros=50_000), model
    )
    assert float(results[0]["y"][0]) == 2.0
    assert isinstance(results[1], ValueError)
    assert float(results[2]["y"][0]) == 6.0


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="max_batch_size must be >= 1; got 0"):
        BatchingOptions(max_batch_size=0)
    with pytest.raises(ValueError, match="batch_timeout_micros must be >= 0; got -1"):
        BatchingOptions(batch_timeout_micros=-1)
