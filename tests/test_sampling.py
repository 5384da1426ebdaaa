"""Sampling in `greedy_decode` (temperature, top-k, seed), checked against known distributions.

The model of the frequency tests is a real Transformer whose output projection has a zero
kernel and a chosen bias: whatever the source and prefix, every step's logits are that bias,
so every sampled token is an independent draw from softmax(bias / temperature), restricted to
the top k. With N draws, a token of probability p is drawn N p +- sqrt(N p (1 - p)) times;
the tests allow 4.5 standard deviations per token (a false alarm about once in 150,000 checks;
the seeds are fixed, so a run is repeatable anyway). Ignoring the temperature or top-k moves
the frequencies by 12 to 15 standard deviations.
"""

import numpy as np
import pytest
import tensorflow as tf

import tf_transformer as tft
from tests.copy_task import VOCAB_SIZE, copy_config
from tf_transformer import decoding

# Tokens 4-9 carry the probability; PAD, UNK, START, END and 10-15 are all but impossible, so
# no row ends early and every step is a draw.
PROBABILITIES = {4: 0.40, 5: 0.25, 6: 0.15, 7: 0.10, 8: 0.06, 9: 0.04}
BATCH, STEPS = 500, 8  # 4,000 draws
SOURCE = np.tile(np.array([[5, 6, 7, 8, 9, 10]], np.int32), [BATCH, 1])


@pytest.fixture(scope="module")
def known_model():
    """A Transformer whose next-token logits are log(PROBABILITIES) at every step."""
    tf.keras.utils.set_random_seed(4)
    model = tft.Transformer(copy_config(share_embeddings=False, tie_output=False))
    bias = np.full([VOCAB_SIZE], -30.0, np.float32)
    for token, probability in PROBABILITIES.items():
        bias[token] = np.log(probability)
    kernel = model.output_projection.kernel
    model.output_projection.kernel.assign(np.zeros(kernel.shape, np.float32))
    model.output_projection.bias.assign(bias)
    return model


def expected_distribution(temperature, top_k=0):
    """softmax(log p / temperature) over the top_k most likely tokens, as [VOCAB_SIZE]."""
    tokens = sorted(PROBABILITIES, key=PROBABILITIES.get, reverse=True)[:top_k or None]
    weights = np.zeros(VOCAB_SIZE)
    for token in tokens:
        weights[token] = PROBABILITIES[token] ** (1.0 / temperature)
    return weights / weights.sum()


def sampled_frequencies(model, temperature, top_k=0, seed=1):
    ids = decoding.greedy_decode(model, SOURCE, max_length=STEPS, temperature=temperature,
                                 top_k=top_k, seed=seed).ids.numpy()
    assert ids.shape == (BATCH, STEPS)
    return np.bincount(ids.ravel(), minlength=VOCAB_SIZE) / ids.size


def assert_follows(frequencies, expected):
    draws = BATCH * STEPS
    tolerance = 4.5 * np.sqrt(expected * (1 - expected) / draws)
    np.testing.assert_array_equal(frequencies[expected == 0], 0.0)
    np.testing.assert_array_less(np.abs(frequencies - expected), tolerance + 1e-12)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_sampled_frequencies_follow_the_softmax_at_the_temperature(known_model, temperature):
    frequencies = sampled_frequencies(known_model, temperature)
    # Tokens outside 4-9 have probability ~1e-13: never drawn.
    expected = expected_distribution(temperature)
    assert_follows(frequencies, expected)


@pytest.mark.parametrize("top_k", [1, 3, 5])
def test_top_k_samples_only_the_k_most_likely_in_proportion(known_model, top_k):
    frequencies = sampled_frequencies(known_model, temperature=1.0, top_k=top_k)
    assert np.count_nonzero(frequencies) == top_k
    assert_follows(frequencies, expected_distribution(1.0, top_k))


def test_two_seeds_differ_and_one_seed_repeats(known_model):
    def draw(seed):
        return decoding.greedy_decode(known_model, SOURCE[:64], max_length=STEPS,
                                      temperature=1.0, seed=seed).ids.numpy()

    first, again, other = draw(11), draw(11), draw(12)
    np.testing.assert_array_equal(first, again)
    # Two independent draws agree with probability sum(p^2) = 0.25 per token.
    agreement = np.mean(first == other)
    assert 0.15 < agreement < 0.35


def test_top_k_one_is_greedy_even_at_a_high_temperature():
    # An untrained model at temperature 100 samples almost uniformly: only top_k=1 keeps greedy.
    tf.keras.utils.set_random_seed(3)
    model = tft.Transformer(copy_config(norm_first=True))
    source = SOURCE[:16]
    greedy = decoding.greedy_decode(model, source, max_length=12).ids.numpy()
    top1 = decoding.greedy_decode(model, source, max_length=12, temperature=100.0, top_k=1,
                                  seed=5).ids.numpy()
    np.testing.assert_array_equal(top1, greedy)
    hot = decoding.greedy_decode(model, source, max_length=12, temperature=100.0,
                                 seed=5).ids.numpy()
    assert hot.shape != greedy.shape or np.mean(hot == greedy) < 0.5
