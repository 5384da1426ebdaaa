import numpy as np
import pytest
import tensorflow as tf

import tf_transformer as tft
from tests.copy_task import copy_config, copy_examples
from tf_transformer import decoding

SOURCE = np.array([[5, 6, 7, 8, 9, 10, 0, 0], [11, 4, 12, 13, 14, 15, 6, 7],
                   [9, 9, 9, 0, 0, 0, 0, 0]], np.int32)


@pytest.fixture(scope="module")
def random_model():
    tf.keras.utils.set_random_seed(3)
    return tft.Transformer(copy_config(norm_first=True))


def _strip(ids):
    """Tokens up to and including END, as a list per sentence."""
    out = []
    for row in np.atleast_2d(np.asarray(ids)):
        row = list(row)
        out.append(row[:row.index(decoding.END_ID) + 1] if decoding.END_ID in row else
                   [t for t in row if t != 0])
    return out


def test_cached_greedy_equals_uncached_greedy(random_model):
    cached = tf.function(lambda s: decoding.greedy_decode(random_model, s, max_length=20))(SOURCE)
    uncached = tf.function(
        lambda s: decoding.greedy_decode_uncached(random_model, s, max_length=20))(SOURCE)
    assert cached.ids.shape[1] == 20  # the untrained model never says END: runs to the cap
    np.testing.assert_array_equal(cached.ids, uncached.ids)
    np.testing.assert_allclose(cached.scores, uncached.scores, rtol=1e-4)


def test_beam_size_one_equals_greedy(random_model, trained_copy_model):
    for model in (random_model, trained_copy_model[0]):
        greedy = decoding.greedy_decode(model, SOURCE, max_length=20)
        beam = decoding.beam_search(model, SOURCE, beam_size=1, alpha=0.0, max_length=20)
        assert _strip(beam.ids[:, 0]) == _strip(greedy.ids)
        np.testing.assert_allclose(beam.scores[:, 0], greedy.scores, rtol=1e-4)


def test_trained_model_copies_with_greedy_and_beam(trained_copy_model):
    model, _ = trained_copy_model
    source, _, target_out = copy_examples(16, seed=77)
    greedy = tf.function(lambda s: decoding.greedy_decode(model, s, max_length=20))(source)
    assert _strip(greedy.ids) == [list(row) for row in target_out]
    beams = tf.function(lambda s: decoding.beam_search(model, s, beam_size=4, top_beams=4,
                                                        alpha=0.6, max_length=20))(source)
    assert _strip(beams.ids[:, 0]) == [list(row) for row in target_out]
    scores = beams.scores.numpy()
    assert scores.shape == (16, 4)
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "beams must be sorted best first"
    # Same ranking as greedy when alpha=0: the best beam's log-probability is never below it.
    raw = decoding.beam_search(model, source, beam_size=4, alpha=0.0, max_length=20)
    assert np.all(raw.scores.numpy()[:, 0] >= greedy.scores.numpy() - 1e-4)


def test_best_beam_never_below_greedy_on_noisy_inputs(trained_copy_model):
    # Sequences longer than any seen in training make the model unsure, so beams differ.
    model, _ = trained_copy_model
    source = np.random.default_rng(5).integers(4, 16, size=(32, 14)).astype(np.int32)
    greedy = decoding.greedy_decode(model, source, max_length=30)
    beams = decoding.beam_search(model, source, beam_size=4, top_beams=2, alpha=0.0,
                                 max_length=30)
    assert np.all(beams.scores.numpy()[:, 0] >= greedy.scores.numpy() - 1e-4)
    assert np.all(beams.scores.numpy()[:, 0] >= beams.scores.numpy()[:, 1] - 1e-6)


def test_results_do_not_depend_on_the_batch(trained_copy_model):
    model, _ = trained_copy_model
    source, _, _ = copy_examples(6, seed=8)
    together = decoding.beam_search(model, source, beam_size=3, top_beams=2, max_length=20)
    alone = decoding.beam_search(model, source[2:3], beam_size=3, top_beams=2, max_length=20)
    assert _strip(alone.ids[0, 0]) == _strip(together.ids[2, 0])
    np.testing.assert_allclose(alone.scores[0], together.scores[2], rtol=1e-4)


def test_length_budget_follows_the_source(random_model):
    result = decoding.greedy_decode(random_model, SOURCE, max_length=30, length_ratio=1.0,
                                    length_offset=2)
    lengths = (result.ids.numpy() != 0).sum(axis=1)
    np.testing.assert_array_equal(lengths, [6 + 2, 8 + 2, 3 + 2])


def test_length_penalty_is_gnmt():
    assert float(decoding.length_penalty(7, 0.6)) == pytest.approx(((5 + 7) / 6) ** 0.6)
    assert float(decoding.length_penalty(7, 0.0)) == 1.0


def test_sampling_top_k_one_is_greedy_and_seeded_sampling_repeats(trained_copy_model):
    model, _ = trained_copy_model
    greedy = decoding.greedy_decode(model, SOURCE, max_length=20)
    top1 = decoding.greedy_decode(model, SOURCE, max_length=20, temperature=1.0, top_k=1, seed=1)
    np.testing.assert_array_equal(top1.ids, greedy.ids)
    a = decoding.greedy_decode(model, SOURCE, max_length=20, temperature=5.0, seed=3)
    b = decoding.greedy_decode(model, SOURCE, max_length=20, temperature=5.0, seed=3)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_decoding_compiles_with_xla(trained_copy_model):
    model, _ = trained_copy_model
    source, _, target_out = copy_examples(4, seed=9)
    compiled = tf.function(lambda s: decoding.greedy_decode(model, s, max_length=16),
                           jit_compile=True)
    assert _strip(compiled(source).ids) == [list(row) for row in target_out]
