import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_transformer as tft
from tests.copy_task import copy_config, copy_examples

SOURCE = np.array([[5, 6, 7, 8, 3, 0, 0], [9, 4, 12, 11, 10, 13, 3]], np.int32)
TARGET_IN = np.array([[2, 7, 8, 9, 0], [2, 4, 5, 6, 7]], np.int32)


@pytest.fixture(params=[
    dict(),
    dict(norm_first=True, position_encoding="concatenated"),
    dict(position_encoding="learned", share_embeddings=False, tie_output=False,
         target_vocab_size=20),
], ids=["paper", "prenorm-t2t", "learned-untied"])
def model(request):
    tf.keras.utils.set_random_seed(1)
    return tft.Transformer(copy_config(**request.param))


def test_logits_shape_and_float32(model):
    logits = model((SOURCE, TARGET_IN))
    assert logits.shape == (2, 5, model.transformer_config.target_vocab_size)
    assert logits.dtype == tf.float32


def test_padded_source_tokens_change_nothing(model):
    # Padding is masked everywhere: more padding gives the same logits.
    padded_source = np.pad(SOURCE, [[0, 0], [0, 4]])
    np.testing.assert_allclose(model((padded_source, TARGET_IN)), model((SOURCE, TARGET_IN)),
                               atol=1e-5)


def test_logits_at_t_ignore_later_target_tokens(model):
    logits = model((SOURCE, TARGET_IN)).numpy()
    changed = TARGET_IN.copy()
    changed[:, 3:] = [[14, 15], [13, 12]]
    np.testing.assert_allclose(model((SOURCE, changed)).numpy()[:, :3], logits[:, :3],
                               atol=1e-5)
    assert not np.allclose(model((SOURCE, changed)).numpy()[:, 3:], logits[:, 3:])


def test_cached_decoding_equals_full_forward_pass(model):
    if model.output_projection is not None:  # a zero bias would hide a step that drops it
        bias = model.output_projection.bias
        bias.assign(tf.random.normal(bias.shape, seed=2))
    target = np.array([[2, 7, 8, 9, 10], [2, 4, 5, 6, 7]], np.int32)
    full = model((SOURCE, target)).numpy()
    cache = model.init_cache(model.encode(SOURCE), SOURCE)
    for step in range(target.shape[1]):
        logits, cache = model.decode_step(tf.constant(target[:, step]), tf.constant(step), cache)
        np.testing.assert_allclose(logits, full[:, step], atol=1e-4)


def test_attention_maps(model):
    maps = model.attention_maps(SOURCE, TARGET_IN)
    L, N = 2, 4
    assert maps["encoder_self"].shape == (2, L, N, 7, 7)
    assert maps["decoder_self"].shape == (2, L, N, 5, 5)
    assert maps["cross"].shape == (2, L, N, 5, 7)
    for kind in ("encoder_self", "decoder_self", "cross"):
        np.testing.assert_allclose(maps[kind].numpy().sum(-1), 1.0, atol=1e-5)
    # Sentence 0 has 5 real source tokens: keys 5 and 6 get exactly zero attention.
    assert np.all(maps["encoder_self"].numpy()[0, ..., 5:] == 0.0)
    assert np.all(maps["cross"].numpy()[0, ..., 5:] == 0.0)
    assert np.all(maps["decoder_self"].numpy()[..., np.triu(np.ones((5, 5), bool), 1)] == 0.0)
    np.testing.assert_allclose(maps["logits"], model((SOURCE, TARGET_IN)), atol=1e-5)


def test_config_round_trip_and_keras_save_load(model, tmp_path):
    config = model.get_config()
    clone = tft.Transformer.from_config(config)
    assert clone.get_config() == config
    expected = model((SOURCE, TARGET_IN)).numpy()
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, tft.Transformer)
    assert restored.transformer_config == model.transformer_config
    np.testing.assert_allclose(restored((SOURCE, TARGET_IN)), expected, atol=1e-6)


def test_checkpoint_round_trip(model, tmp_path):
    expected = model((SOURCE, TARGET_IN)).numpy()
    path = tf.train.Checkpoint(model=model).write(os.path.join(tmp_path, "ckpt"))
    tf.keras.utils.set_random_seed(99)
    fresh = tft.Transformer(model.transformer_config)  # weights exist before any call
    assert not np.allclose(fresh((SOURCE, TARGET_IN)), expected)
    tf.train.Checkpoint(model=fresh).read(path).assert_consumed()
    np.testing.assert_allclose(fresh((SOURCE, TARGET_IN)), expected, atol=1e-6)


def test_weights_exist_before_first_call():
    model = tft.Transformer(copy_config())
    assert model.built and len(model.weights) > 0


def test_shared_embeddings_are_one_matrix():
    shared = tft.Transformer(copy_config())
    assert shared.source_embedding is shared.target_embedding
    names = [w.path for w in shared.weights if "embedding" in w.path]
    assert len(names) == 1


@pytest.mark.parametrize("policy, compute_dtype", [("mixed_bfloat16", "bfloat16"),
                                                   ("mixed_float16", "float16")])
def test_mixed_precision_computes_in_half_and_returns_float32_logits(policy, compute_dtype):
    tf.keras.utils.set_random_seed(2)
    fp32 = tft.Transformer(copy_config(share_embeddings=False, tie_output=False))
    mixed = tft.Transformer(copy_config(share_embeddings=False, tie_output=False), dtype=policy)
    mixed.set_weights(fp32.get_weights())
    # Every layer, down to each Dense, LayerNormalization and Dropout, follows the policy.
    layers = list(mixed._flatten_layers(include_self=True))
    assert len(layers) > 20
    wrong = [(layer.name, layer.compute_dtype) for layer in layers
             if layer.compute_dtype != compute_dtype]
    assert not wrong, f"layers not computing in {compute_dtype}: {wrong}"
    assert all(w.dtype == "float32" for w in mixed.weights)
    # The activations really are half precision; the logits come out float32.
    memory = mixed.encode(SOURCE)
    assert memory.dtype == compute_dtype
    out = mixed((SOURCE, TARGET_IN))
    assert out.dtype == tf.float32
    cache = mixed.init_cache(memory, SOURCE)
    step_logits, _ = mixed.decode_step(tf.constant([2, 2]), 0, cache)
    assert step_logits.dtype == tf.float32
    np.testing.assert_allclose(step_logits, out[:, 0], atol=0.05 * np.abs(out).max())
    # Half precision rounding shows, but stays small.
    reference = fp32((SOURCE, TARGET_IN)).numpy()
    difference = np.abs(out.numpy() - reference).max()
    assert 0 < difference < 0.1 * np.abs(reference).max()


def test_too_long_input_is_a_clear_error():
    model = tft.Transformer(copy_config())
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_length=32"):
        model((np.ones((1, 40), np.int32), TARGET_IN[:1]))


def test_fit_evaluate_on_a_dataset():
    model = tft.Transformer(copy_config())
    model.compile(optimizer="adam", loss=tft.MaskedSparseCategoricalCrossentropy(),
                  metrics=[tft.MaskedAccuracy()])
    source, target_in, target_out = copy_examples(64)
    data = tf.data.Dataset.from_tensor_slices(((source, target_in), target_out)).batch(16)
    history = model.fit(data, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    result = model.evaluate(data, verbose=0, return_dict=True)
    assert set(result) == {"loss", "masked_accuracy"}


def test_learns_the_copy_task(trained_copy_model):
    # 20 epochs of 64 batches of 64 random sequences; held-out sequences drawn with another seed.
    _, held_out = trained_copy_model
    print(f"copy task held-out token accuracy: {held_out['masked_accuracy']:.4f}")
    assert held_out["masked_accuracy"] >= 0.99
