import math

import keras
import numpy as np
import pytest

from tests.layers.harness import check_layer
from tf_transformer.layers import (
    LearnedPositionEmbedding,
    SinusoidalPositionEncoding,
    sinusoid_table,
)


@pytest.mark.parametrize("pos, i", [(0, 0), (1, 0), (7, 3), (50, 10), (99, 31)])
def test_interleaved_matches_the_paper(pos, i):
    # PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).
    d = 64
    table = sinusoid_table(100, d, "interleaved")
    angle = pos / 10000 ** (2 * i / d)
    assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)


@pytest.mark.parametrize("pos, i", [(0, 0), (3, 1), (20, 15), (99, 31)])
def test_concatenated_matches_tensor2tensor(pos, i):
    # get_timing_signal_1d: inv_timescale_i = exp(-i * log(1e4) / (d/2 - 1)); sines then cosines.
    d = 64
    table = sinusoid_table(100, d, "concatenated")
    angle = pos * math.exp(-i * math.log(1.0e4) / (d // 2 - 1))
    assert table[pos, i] == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[pos, d // 2 + i] == pytest.approx(math.cos(angle), abs=1e-6)


def test_layer_returns_slice_at_start_index():
    layer = SinusoidalPositionEncoding(max_length=40, variant="interleaved")
    inputs = np.zeros((2, 5, 8), np.float32)
    out = layer(inputs, start_index=3).numpy()
    table = sinusoid_table(40, 8)
    assert out.shape == (2, 5, 8)
    np.testing.assert_allclose(out[1], table[3:8], atol=1e-6)
    # Unbroadcast, for adding with broadcasting: one row of the same values.
    single = layer(inputs, start_index=3, broadcast=False).numpy()
    assert single.shape == (1, 5, 8)
    np.testing.assert_allclose(single[0], table[3:8], atol=1e-6)


def test_sinusoid_config_round_trip_and_save(tmp_path):
    inputs = np.random.default_rng(0).normal(size=(2, 6, 8)).astype(np.float32)
    layer = SinusoidalPositionEncoding(16, variant="concatenated", max_timescale=100.0)
    assert SinusoidalPositionEncoding.from_config(layer.get_config()).get_config() == \
        layer.get_config()
    keras_input = keras.Input(shape=(None, 8))
    model = keras.Model(keras_input, keras_input + layer(keras_input))
    expected = np.asarray(model(inputs))
    np.testing.assert_allclose(
        expected - inputs,
        np.broadcast_to(sinusoid_table(16, 8, "concatenated", 100.0)[:6], inputs.shape),
        atol=1e-6)
    # The non-default variant and timescale must survive saving: the defaults give other values.
    assert np.abs(sinusoid_table(16, 8)[:6] - (expected - inputs)[0]).max() > 0.1
    path = tmp_path / "position.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    (restored_layer,) = [x for x in restored.layers if isinstance(x, SinusoidalPositionEncoding)]
    assert restored_layer.get_config() == layer.get_config()
    np.testing.assert_allclose(np.asarray(restored(inputs)), expected, atol=1e-6)


def test_learned_position_embedding(tmp_path):
    inputs = np.random.default_rng(1).normal(size=(2, 6, 8)).astype(np.float32)
    out = check_layer(lambda **kw: LearnedPositionEmbedding(16, **kw), [inputs],
                      lambda layer, x: x[0] + layer(x[0]), tmp_path)
    assert out.shape == (2, 6, 8)
    layer = LearnedPositionEmbedding(16)
    layer(inputs)
    np.testing.assert_allclose(layer(inputs[:, :2], start_index=4)[0],
                               layer.position_embeddings.numpy()[4:6], atol=1e-6)
    single = layer(inputs[:, :2], start_index=4, broadcast=False)
    assert single.shape == (1, 2, 8)
    np.testing.assert_allclose(single[0], layer.position_embeddings.numpy()[4:6], atol=1e-6)


@pytest.mark.parametrize("make, bad", [
    (lambda: SinusoidalPositionEncoding(0), "max_length=0"),
    (lambda: SinusoidalPositionEncoding(8, variant="rotary"), "rotary"),
    (lambda: LearnedPositionEmbedding(-2), "max_length=-2"),
])
def test_invalid_arguments_name_the_value(make, bad):
    with pytest.raises(ValueError, match=bad):
        make()
