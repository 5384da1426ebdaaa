"""The attention callback on a model whose translations never end."""

import os

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

import tf_transformer
from tests.trainers.conftest import TRANSLATION
from tf_transformer.text import train_tokenizers
from trainers.callbacks import AttentionCallback


def test_attention_of_a_translation_that_fills_every_position(tmp_path):
    words = list(TRANSLATION)
    pairs = [(" ".join(words[i:i + 5]), " ".join(TRANSLATION[w] for w in words[i:i + 5]))
             for i in range(len(words) - 5)] * 20
    tf.keras.utils.set_random_seed(4)  # before any tokenizer exists: it resets eager resources
    tokenizers = train_tokenizers(pairs, str(tmp_path / "tokenizer"), vocab_size=60)
    config = tf_transformer.TransformerConfig.preset(
        "tiny", vocab_size=tokenizers.source.vocab_size, max_length=8)
    model = tf_transformer.Transformer(config)
    # An untrained model that can never say END: the greedy translation fills all 8 positions.
    model.decode_step = _without_end(model.decode_step)
    callback = AttentionCallback(tokenizers, [pairs[0][0]], str(tmp_path / "logs"),
                                 max_length=8, images=False)
    callback.set_model(model)
    callback.write(step=0)

    accumulator = event_accumulator.EventAccumulator(
        str(tmp_path / "logs"), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    (event,) = accumulator.Tensors("attention/probe_0/target_tokens")
    target_tokens = tensor_util.make_ndarray(event.tensor_proto)
    assert len(target_tokens) == 8  # START + 7 tokens: the model's 8 positions
    (event,) = accumulator.Tensors("attention/probe_0/cross")
    cross = tensor_util.make_ndarray(event.tensor_proto)
    assert cross.shape[2] == 8
    np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-5)
    assert os.listdir(tmp_path / "logs")


def _without_end(decode_step):
    def step(token_ids, position, cache):
        logits, cache = decode_step(token_ids, position, cache)
        return logits - 1e9 * tf.one_hot(3, tf.shape(logits)[-1]), cache
    return step
