import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.harness import check_layer
from tf_transformer.layers import Decoder, DecoderLayer, Encoder, EncoderLayer
from tf_transformer.layers.residual import layer_norm

B, S, T, D = 2, 6, 5, 16


def _random(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_harness(tmp_path, norm_first):
    x, mask = _random(B, S, D), np.ones((B, S), bool)
    mask[1, 4:] = False
    check_layer(lambda **kw: EncoderLayer(4, 32, dropout=0.1, norm_first=norm_first, **kw),
                [x, mask], lambda layer, i: layer(i[0], padding_mask=i[1]), tmp_path)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_harness(tmp_path, norm_first):
    x, memory = _random(B, T, D, seed=1), _random(B, S, D, seed=2)
    check_layer(lambda **kw: DecoderLayer(4, 32, dropout=0.1, norm_first=norm_first, **kw),
                [x, memory], lambda layer, i: layer(i[0], i[1]), tmp_path)


def test_stacks_harness(tmp_path):
    x, memory = _random(B, T, D, seed=3), _random(B, S, D, seed=4)
    check_layer(lambda **kw: Encoder(2, 4, 32, norm_first=True, **kw), [memory],
                lambda layer, i: layer(i[0]), tmp_path)
    check_layer(lambda **kw: Decoder(2, 4, 32, **kw), [x, memory],
                lambda layer, i: layer(i[0], i[1]), tmp_path)


def test_post_norm_is_layer_norm_of_residual_sum():
    layer = EncoderLayer(4, 32)
    x = _random(B, S, D, seed=5)
    out = layer(x).numpy()
    attended = layer.self_attention(x, x).numpy()
    h = x + attended
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6)
    ffn = layer.feed_forward(h).numpy() + h
    expected = (ffn - ffn.mean(-1, keepdims=True)) / np.sqrt(ffn.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, expected, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_layer_norm_equals_keras_layer_normalization(dtype):
    norm = keras.layers.LayerNormalization(epsilon=1e-3, dtype=dtype)
    norm.build((None, S, D))
    norm.gamma.assign(_random(D, seed=9) + 1.0)
    norm.beta.assign(_random(D, seed=10))
    x = tf.cast(_random(B, S, D, seed=11) * 3.0 + 2.0, norm.compute_dtype)
    ours = layer_norm(norm, x)
    assert ours.dtype == norm.compute_dtype
    np.testing.assert_allclose(tf.cast(ours, tf.float32), tf.cast(norm(x), tf.float32),
                               atol=1e-5 if dtype == "float32" else 3e-2)


def test_decoder_never_attends_to_later_positions():
    decoder = Decoder(2, 4, 32)
    x, memory = _random(B, T, D, seed=6), _random(B, S, D, seed=7)
    out, (self_weights, cross_weights) = decoder(x, memory, return_attention_scores=True)
    assert self_weights.shape == (B, 2, 4, T, T) and cross_weights.shape == (B, 2, 4, T, S)
    upper = np.triu(np.ones((T, T), bool), k=1)
    assert np.all(self_weights.numpy()[..., upper] == 0.0)
    # Changing later inputs leaves earlier outputs exactly as they were.
    changed = x.copy()
    changed[:, 3:] = _random(B, T - 3, D, seed=8)
    np.testing.assert_allclose(decoder(changed, memory).numpy()[:, :3], out.numpy()[:, :3],
                               atol=1e-6)


def test_encoder_padding_gets_zero_attention_in_every_layer():
    encoder = Encoder(3, 4, 32)
    mask = np.ones((B, S), bool)
    mask[0, 3:] = False
    _, weights = encoder(_random(B, S, D, seed=9), padding_mask=mask, return_attention_scores=True)
    assert weights.shape == (B, 3, 4, S, S)
    assert np.all(weights.numpy()[0, :, :, :, 3:] == 0.0)


def test_decoder_cached_steps_equal_full_pass():
    decoder = Decoder(2, 4, 32, norm_first=True)
    x, memory = _random(B, T, D, seed=10), _random(B, S, D, seed=11)
    memory_mask = np.ones((B, S), bool)
    memory_mask[1, 2:] = False
    full = decoder(x, memory, memory_padding_mask=memory_mask).numpy()
    cache = decoder.init_cache(tf.constant(memory))
    for step in range(T):
        out, cache = decoder.decode_step(x[:, step:step + 1], cache, memory_mask)
        np.testing.assert_allclose(out[:, 0], full[:, step], atol=1e-5)


def test_decoder_cached_steps_with_hypotheses_sharing_the_memory():
    # K=3 hypotheses per sentence are B*K rows that share their sentence's encoder keys/values.
    decoder = Decoder(2, 4, 32)
    K = 3
    x, memory = _random(B * K, T, D, seed=12), _random(B, S, D, seed=13)
    memory_mask = np.ones((B, S), bool)
    memory_mask[0, 4:] = False
    full = decoder(x, np.repeat(memory, K, axis=0),
                   memory_padding_mask=np.repeat(memory_mask, K, axis=0)).numpy()
    cache = decoder.init_cache(tf.constant(memory), hypotheses_per_sentence=K)
    assert cache[0]["cross"]["key"].shape[0] == B and cache[0]["self"]["key"].shape[0] == B * K
    for step in range(T):
        out, cache = decoder.decode_step(x[:, step:step + 1], cache, memory_mask)
        np.testing.assert_allclose(out[:, 0], full[:, step], atol=1e-5)


def test_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        EncoderLayer(3, 32)(_random(1, 2, 16))
