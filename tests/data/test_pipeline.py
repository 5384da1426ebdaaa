"""Tests of make_batches: token budget, content, START/END, truncation, determinism, sharding."""

import collections
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tf_transformer.data import (
    bucket_batch_sizes,
    bucket_boundaries,
    make_batches,
    make_distributed_batches_fn,
)
from tf_transformer.text import END_ID, PAD_ID, START_ID

MAX_LENGTH = 24


def _batches(dataset):
    return [
        (source.numpy(), target_input.numpy(), target_output.numpy())
        for (source, target_input), target_output in dataset
    ]


def _unpadded_rows(batches):
    """Returns the (source, target_output) rows of all batches, without padding, as tuples."""
    rows = []
    for source, _, target_output in batches:
        for s, t in zip(source, target_output):
            rows.append((tuple(s[s != PAD_ID]), tuple(t[t != PAD_ID])))
    return rows


def _expected_rows(text_pairs, pair, max_length, truncate):
    rows = []
    for english, spanish in text_pairs.batch(512):
        for s, t in zip(pair.source.tokenize(english).to_list(),
                        pair.target.tokenize(spanish).to_list()):
            if truncate:
                s, t = s[:max_length], t[:max_length - 1]
            elif len(s) > max_length or len(t) + 1 > max_length:
                continue
            rows.append((tuple(s), tuple(t) + (END_ID,)))
    return rows


def test_bucket_boundaries_and_sizes():
    boundaries = bucket_boundaries(24)
    assert boundaries == [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 24]
    sizes = bucket_batch_sizes(boundaries, 24, 100)
    assert sizes[0] == 100 // 7 and sizes[-1] == 100 // 24
    with pytest.raises(ValueError, match="max_tokens=10 is smaller than max_length=24"):
        bucket_batch_sizes(boundaries, 24, 10)


def test_token_budget_batches_hold_every_pair_once_within_budget(text_pairs, small_pair):
    max_tokens = 200
    batches = _batches(make_batches(
        text_pairs, small_pair, max_length=MAX_LENGTH, max_tokens=max_tokens, seed=1
    ))
    for source, target_input, target_output in batches:
        assert source.dtype == np.int32 and target_input.shape == target_output.shape
        assert source.size <= max_tokens and target_input.size <= max_tokens
        assert source.shape[1] <= MAX_LENGTH and target_input.shape[1] <= MAX_LENGTH
        # Target input is START + target; target output is target + END.
        np.testing.assert_array_equal(target_input[:, 0], START_ID)
        lengths = (target_output != PAD_ID).sum(axis=1)
        np.testing.assert_array_equal(target_output[np.arange(len(lengths)), lengths - 1], END_ID)
        np.testing.assert_array_equal(
            np.where(target_output == END_ID, PAD_ID, target_output)[:, :-1],
            target_input[:, 1:],
        )
        assert not np.isin(source, [START_ID, END_ID]).any()
    expected = _expected_rows(text_pairs, small_pair, MAX_LENGTH, truncate=False)
    assert collections.Counter(_unpadded_rows(batches)) == collections.Counter(expected)
    assert 0 < len(expected) < 2000  # Some pairs were too long and dropped.


def test_truncate_keeps_every_pair(text_pairs, small_pair):
    max_length = 8
    batches = _batches(make_batches(
        text_pairs, small_pair, max_length=max_length, max_tokens=64, too_long="truncate",
        shuffle_buffer=None,
    ))
    rows = _unpadded_rows(batches)
    assert len(rows) == 2000
    assert max(source.shape[1] for source, _, _ in batches) == max_length
    assert max(target.shape[1] for _, target, _ in batches) == max_length
    assert collections.Counter(rows) == collections.Counter(
        _expected_rows(text_pairs, small_pair, max_length, truncate=True)
    )


def test_same_seed_same_batches(text_pairs, small_pair):
    def run(seed):
        dataset = make_batches(
            text_pairs, small_pair, max_length=MAX_LENGTH, max_tokens=300, seed=seed
        )
        return [np.concatenate([s.ravel(), ti.ravel()]) for s, ti, _ in _batches(dataset)]

    first, second, other = run(7), run(7), run(8)
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert len(first) != len(other) or not all(
        np.array_equal(a, b) for a, b in zip(first, other)
    )


def test_fixed_size_batches_pad_more_than_token_budget(text_pairs, small_pair):
    def padding_share(batches):
        real = sum(int((a != PAD_ID).sum()) for b in batches for a in b[:2])
        total = sum(a.size for b in batches for a in b[:2])
        return 1 - real / total

    fixed = _batches(make_batches(
        text_pairs, small_pair, max_length=MAX_LENGTH, batch_size=32, seed=1
    ))
    assert all(len(batch[0]) == 32 for batch in fixed[:-1])
    bucketed = _batches(make_batches(
        text_pairs, small_pair, max_length=MAX_LENGTH, max_tokens=32 * 12, seed=1
    ))
    print(f"\npadding share: fixed batches {padding_share(fixed):.1%}, "
          f"token budget {padding_share(bucketed):.1%}")
    assert padding_share(bucketed) < padding_share(fixed) / 2


def test_bad_batching_arguments(text_pairs, small_pair):
    with pytest.raises(ValueError, match="exactly one of max_tokens"):
        make_batches(text_pairs, small_pair, max_tokens=100, batch_size=8)
    with pytest.raises(ValueError, match="exactly one of max_tokens"):
        make_batches(text_pairs, small_pair)
    with pytest.raises(ValueError, match="'cut'"):
        make_batches(text_pairs, small_pair, batch_size=8, too_long="cut")


def test_distributed_fn_shards_and_splits_global_batch(text_pairs, small_pair):
    dataset_fn = make_distributed_batches_fn(
        text_pairs, small_pair, global_batch_size=64, max_length=MAX_LENGTH,
        shuffle_buffer=None,
    )
    rows = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        batches = _batches(dataset_fn(context))
        assert max(len(batch[0]) for batch in batches) == 32
        rows.append(collections.Counter(_unpadded_rows(batches)))
    assert min(sum(shard.values()) for shard in rows) > 0.4 * sum(sum(s.values()) for s in rows)
    everything = _expected_rows(text_pairs, small_pair, MAX_LENGTH, truncate=False)
    assert rows[0] + rows[1] == collections.Counter(everything)


def test_mirrored_strategy_gets_per_replica_token_budget(small_pair, tmp_path):
    """Two logical CPUs need a fresh process (devices are fixed once TF starts)."""
    small_pair.save(tmp_path / "tokenizer")
    script = textwrap.dedent(
        """
        import json, sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tests.text.corpus import anki_pairs
        from tf_transformer.data import distribute_batches
        from tf_transformer.text import TokenizerPair
        pairs = anki_pairs("validation", 600)
        dataset = tf.data.Dataset.from_tensor_slices(
            ([e for e, _ in pairs], [s for _, s in pairs]))
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        batches = distribute_batches(strategy, dataset, TokenizerPair.load(sys.argv[1]),
                                     max_tokens=120, max_length=24, seed=0)
        sizes = []
        for (source, target_input), _ in batches:
            sizes += [[int(tf.size(s)), int(tf.size(t))] for s, t in zip(
                strategy.experimental_local_results(source),
                strategy.experimental_local_results(target_input))]
        print(json.dumps({"replicas": strategy.num_replicas_in_sync, "sizes": sizes}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "tokenizer")],
        capture_output=True, text=True, timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert len(report["sizes"]) > 4
    largest = max(max(pair) for pair in report["sizes"])
    # Each replica gets the whole budget: were it split between the 2 replicas, no replica
    # batch could exceed 120 / 2 = 60 tokens.
    assert 120 / 2 < largest <= 120
