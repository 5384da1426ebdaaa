"""One harness for layer tests: config round trip, weights, .keras save/load, a training step
and mixed precision."""

import os

import keras
import numpy as np
import tensorflow as tf


def check_layer(make_layer, inputs, call, tmp_path, atol=1e-5):
    """Runs the common checks on a layer.

    Args:
        make_layer: callable(**overrides) -> a new layer (overrides e.g. dtype=...).
        inputs: list of numpy arrays, the positional inputs of the functional model.
        call: callable(layer, keras_inputs) -> output tensor; how the layer is applied.
        tmp_path: pathlib.Path for the saved model.
        atol: float, tolerance for identical outputs.

    Returns:
        The fp32 output of the layer on `inputs` (numpy).
    """
    layer = make_layer()

    # get_config -> from_config -> get_config is the identity.
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config

    # In a functional model: .keras save/load gives identical outputs.
    keras_inputs = [keras.Input(shape=x.shape[1:], dtype=x.dtype) for x in inputs]
    model = keras.Model(keras_inputs, call(layer, keras_inputs))
    expected = np.asarray(model(inputs))
    path = os.path.join(tmp_path, "layer.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(restored(inputs)), expected, atol=atol)

    # One training step moves every trainable weight, except key biases: adding a constant
    # to all of a query's logits leaves the softmax unchanged, so their gradient is zero.
    weights = [w for w in model.trainable_weights if not w.path.endswith("key/bias")]
    before = [w.numpy().copy() for w in weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    target = np.random.default_rng(0).normal(size=expected.shape).astype(np.float32)
    model.train_on_batch(inputs, target)
    assert before, "the layer has no trainable weights"
    unchanged = [w.path for w, b in zip(weights, before) if np.all(w.numpy() == b)]
    assert not unchanged, f"a training step did not change {unchanged}"

    # Mixed precision: computes in bfloat16, keeps float32 weights, stays close to float32.
    mixed = make_layer(dtype="mixed_bfloat16")
    mixed_model = keras.Model(keras_inputs, call(mixed, keras_inputs))
    mixed_model.set_weights(model.get_weights())
    assert all(w.dtype == "float32" for w in mixed.weights)
    mixed_output = mixed_model(inputs)
    assert mixed_output.dtype in (tf.bfloat16, tf.float32)
    reference = np.asarray(model(inputs))
    scale = np.abs(reference).max() + 1e-6
    np.testing.assert_allclose(np.asarray(tf.cast(mixed_output, tf.float32)) / scale,
                               reference / scale, atol=0.05)
    return expected
