import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.harness import check_layer
from tf_transformer.layers import MultiHeadAttention, causal_mask, merge_masks

B, T, S, D, N = 2, 5, 7, 16, 4
H = D // N


def _random(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _built_layer(**kwargs):
    layer = MultiHeadAttention(N, H, **kwargs)
    layer.build((B, T, D), (B, S, D))
    for weight in layer.weights:  # non-zero biases, so a forgotten bias shows
        weight.assign(_random(*weight.shape, seed=len(weight.path)) * 0.3)
    return layer


def _reference(layer, query, value, mask=None):
    """softmax(Q K^T / sqrt(H)) V per head, heads concatenated, then W^O, in numpy."""
    w = {weight.path.split("/")[-2] + "/" + weight.name: weight.numpy() for weight in layer.weights}
    q = np.einsum("btd,dnh->btnh", query, w["query/kernel"]) + w["query/bias"]
    k = np.einsum("bsd,dnh->bsnh", value, w["key/kernel"]) + w["key/bias"]
    v = np.einsum("bsd,dnh->bsnh", value, w["value/kernel"]) + w["value/bias"]
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(H)
    if mask is not None:
        scores = np.where(mask[:, None], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bnts,bsnh->btnh", weights, v)
    out = np.einsum("btnh,nhd->btd", heads, w["attention_output/kernel"])
    return out + w["attention_output/bias"], weights


def test_equals_handwritten_scaled_dot_product():
    layer = _built_layer()
    query, value = _random(B, T, D, seed=1), _random(B, S, D, seed=2)
    output, weights = layer(query, value, return_attention_scores=True)
    expected_output, expected_weights = _reference(layer, query, value)
    assert weights.shape == (B, N, T, S)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(output, expected_output, atol=1e-4)


def test_equals_keras_multi_head_attention_with_copied_weights():
    layer = _built_layer()
    reference = keras.layers.MultiHeadAttention(num_heads=N, key_dim=H)
    query, value = _random(B, T, D, seed=3), _random(B, S, D, seed=4)
    reference(query, value)  # builds
    assert [w.shape for w in reference.weights] == [w.shape for w in layer.weights]
    reference.set_weights(layer.get_weights())
    mask = np.random.default_rng(5).random((B, T, S)) > 0.3
    mask[..., 0] = True
    np.testing.assert_allclose(layer(query, value, attention_mask=mask),
                               reference(query, value, attention_mask=mask), atol=1e-5)


def test_padded_keys_get_exactly_zero_weight():
    layer = _built_layer()
    query, value = _random(B, T, D, seed=6), _random(B, S, D, seed=7) * 50  # large logits
    padding = np.array([[True] * 4 + [False] * 3, [True] * 6 + [False]])
    _, weights = layer(query, value, padding_mask=padding, return_attention_scores=True)
    weights = weights.numpy()
    assert np.all(weights[0, :, :, 4:] == 0.0)
    assert np.all(weights[1, :, :, 6:] == 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    _, expected = _reference(layer, query, value, np.broadcast_to(padding[:, None], (B, T, S)))
    np.testing.assert_allclose(weights, expected, atol=1e-5)


def test_causal_mask_hides_the_future():
    layer = _built_layer()
    x = _random(B, T, D, seed=8)
    _, weights = layer(x, x, attention_mask=causal_mask(T), return_attention_scores=True)
    upper = np.triu(np.ones((T, T), bool), k=1)
    assert np.all(weights.numpy()[:, :, upper] == 0.0)
    assert np.all(weights.numpy()[:, :, ~upper] > 0.0)


def test_cached_steps_equal_full_causal_attention():
    layer = _built_layer()
    x = _random(B, T, D, seed=9)
    full = layer(x, x, attention_mask=causal_mask(T)).numpy()
    cache = {"key": tf.zeros([B, N, 0, H]), "value": tf.zeros([B, N, 0, H])}
    for step in range(T):
        out, cache = layer.call_cached(x[:, step:step + 1], cache, append=True)
        assert cache["key"].shape == (B, N, step + 1, H)  # only the positions decoded so far
        np.testing.assert_allclose(out[:, 0], full[:, step], atol=1e-5)
    # The fused Q/K/V projection gives the three Keras-layout projections' keys and values.
    key, value = layer.project_key_value(x)
    np.testing.assert_allclose(cache["key"], key, atol=1e-5)
    np.testing.assert_allclose(cache["value"], value, atol=1e-5)


def _cached_steps(layer, x, memory, mask=None, kernels=None):
    """Decodes `x` [B, T, D] one position at a time: (self-attention through a growing cache,
    attention to `memory`'s keys/values under `mask`), each [B, T, D]."""
    batch = x.shape[0]
    key, value = layer.project_key_value(memory)
    cache = {"key": tf.zeros([batch, N, 0, H]), "value": tf.zeros([batch, N, 0, H])}
    self_outputs, cross_outputs = [], []
    for step in range(x.shape[1]):
        query = x[:, step:step + 1]
        out, cache = layer.call_cached(query, cache, append=True)
        self_outputs.append(out[:, 0])
        out, _ = layer.call_cached(query, {"key": key, "value": value}, mask=mask,
                                   kernels=kernels)
        cross_outputs.append(out[:, 0])
    return np.stack(self_outputs, axis=1), np.stack(cross_outputs, axis=1)


def test_cached_steps_without_biases_equal_full_attention():
    layer = _built_layer(use_bias=False)
    assert not any("bias" in weight.path for weight in layer.weights)
    x, memory = _random(B, T, D, seed=14), _random(B, S, D, seed=15)
    full_self = layer(x, x, attention_mask=causal_mask(T)).numpy()
    full_cross = layer(x, memory).numpy()
    steps_self, steps_cross = _cached_steps(layer, x, memory, kernels=layer.step_kernels())
    np.testing.assert_allclose(steps_self, full_self, atol=1e-5)
    np.testing.assert_allclose(steps_cross, full_cross, atol=1e-5)


def test_static_cache_equals_cross_attention():
    layer = _built_layer()
    query, memory = _random(B, T, D, seed=10), _random(B, S, D, seed=11)
    padding = np.array([[True] * 5 + [False] * 2, [True] * S])
    key, value = layer.project_key_value(memory)
    out, _ = layer.call_cached(query, {"key": key, "value": value}, mask=merge_masks(padding))
    np.testing.assert_allclose(out, layer(query, memory, padding_mask=padding), atol=1e-5)


def test_layer_harness(tmp_path):
    query, value = _random(B, T, D, seed=12), _random(B, S, D, seed=13)
    mask = np.ones((B, S), bool)
    mask[0, 5:] = False
    check_layer(
        lambda **kw: MultiHeadAttention(N, H, dropout=0.1, **kw), [query, value, mask],
        lambda layer, x: layer(x[0], x[1], padding_mask=x[2]), tmp_path)


@pytest.mark.parametrize("kwargs, bad", [
    (dict(num_heads=0, key_dim=4), "num_heads=0"),
    (dict(num_heads=2, key_dim=-1), "key_dim=-1"),
    (dict(num_heads=2, key_dim=4, dropout=1.5), "dropout=1.5"),
])
def test_invalid_arguments_name_the_value(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        MultiHeadAttention(**kwargs)


# 3 rows, or 40 rows against at most 7 positions: broadcast products; 420 rows: matmul kernels
# (more query-key pairs than attention._STEP_PAIRS from the first position on).
@pytest.mark.parametrize("batch", [3, 40, 420])
def test_cached_steps_take_either_kernel_path_to_the_same_result(batch):
    layer = _built_layer()
    x, memory = _random(batch, T, D, seed=12), _random(batch, S, D, seed=13)
    padding = np.ones((batch, S), bool)
    padding[::2, 4:] = False
    expected_self = _reference(layer, x, x, np.broadcast_to(np.tril(np.ones((T, T), bool)),
                                                            (batch, T, T)))[0]
    expected_cross = _reference(layer, x, memory,
                                np.broadcast_to(padding[:, None], (batch, T, S)))[0]
    steps_self, steps_cross = _cached_steps(layer, x, memory, mask=merge_masks(padding))
    np.testing.assert_allclose(steps_self, expected_self, atol=1e-4)
    np.testing.assert_allclose(steps_cross, expected_cross, atol=1e-4)
