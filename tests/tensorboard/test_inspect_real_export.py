"""`tft-inspect` against the real exported translator (trained tiny model)."""

import os

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from serving import inspect

SENTENCES = ["Where is the train station?", "I like books."]


def test_inspect_real_export_writes_trimmed_normalized_attention(exported_translator, tmp_path):
    export_dir, model, _ = exported_translator
    logdir = os.path.join(str(tmp_path), "inspect")
    # The model's base folder: tft-inspect picks its newest version.
    results = inspect.inspect(os.path.dirname(export_dir), logdir, SENTENCES, step=1,
                              images=False)
    served = tf.saved_model.load(export_dir).signatures["serving_default"](
        text=tf.constant(SENTENCES))["translation"].numpy()
    assert [result["translation"] for result in results] == [t.decode() for t in served]
    accumulator = event_accumulator.EventAccumulator(
        logdir, size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    config = model.transformer_config
    for index in range(len(SENTENCES)):
        def read(field, index=index):
            (event,) = accumulator.Tensors(f"attention/sentence_{index}/{field}")
            return tensor_util.make_ndarray(event.tensor_proto)

        source, target = read("source_tokens"), read("target_tokens")
        assert target[0] == b"<s>" and b"" not in source.tolist()
        cross, decoder = read("cross"), read("decoder_self")
        assert cross.shape == (config.num_decoder_layers, config.num_heads, len(target),
                               len(source))
        np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-4)
        np.testing.assert_allclose(read("encoder_self").sum(-1), 1.0, atol=1e-4)
        assert np.all(np.triu(decoder, k=1) < 1e-6)
