"""`tft-export --dtype`: an export that computes in bfloat16, on the trained fixture model."""

import numpy as np
import pytest
import tensorflow as tf

from serving.export import main
from tf_transformer.data import load_parallel
from tf_transformer.model import with_compute_dtype

SENTENCES = 64


def test_with_compute_dtype_rebuilds_the_layers_in_bfloat16_with_the_same_weights(
        exported_translator):
    _, model, _ = exported_translator
    bf16 = with_compute_dtype(model, "bfloat16")
    layers = [bf16.source_embedding, bf16.encoder.blocks[0].self_attention.query_dense,
              bf16.decoder.blocks[-1].cross_attention, bf16.decoder.blocks[-1].feed_forward]
    assert [layer.compute_dtype for layer in layers] == ["bfloat16"] * len(layers)
    assert all(weight.dtype == "float32" for weight in bf16.weights)
    for ours, theirs in zip(bf16.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert with_compute_dtype(model, "float32") is model
    with pytest.raises(ValueError, match="Unknown compute dtype 'int8'"):
        with_compute_dtype(model, "int8")


def test_bfloat16_export_runs_and_mostly_agrees_with_float32(exported_translator,
                                                             trained_model_dir, tmp_path):
    float32_dir, _, _ = exported_translator
    bf16_dir = str(tmp_path / "translator" / "1")
    assert main(["--model-dir", trained_model_dir, "--export-dir", bf16_dir,
                 "--dtype", "bfloat16"]) == 0
    float32 = tf.saved_model.load(float32_dir).signatures["serving_default"]
    bf16 = tf.saved_model.load(bf16_dir).signatures["serving_default"]
    # The exported graph computes in bfloat16 (and the scores come out as float32).
    graph = str(bf16.graph.as_graph_def())
    assert "DT_BFLOAT16" in graph and "DT_BFLOAT16" not in str(float32.graph.as_graph_def())
    texts = tf.constant([source for source, _ in load_parallel("anki_spa_eng", "test")
                         .take(SENTENCES).as_numpy_iterator()])
    ours, reference = bf16(text=texts), float32(text=texts)
    assert ours["score"].dtype == tf.float32
    same = np.mean(ours["translation"].numpy() == reference["translation"].numpy())
    assert same >= 0.75, f"only {same:.0%} of the bfloat16 translations equal float32's"
