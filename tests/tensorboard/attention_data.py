"""Synthetic attention data shared by the TensorBoard tests.

Weights are softmaxes of random scores with padded key positions masked out, then trimmed to the
real tokens, exactly as the training callback and `tft-inspect` hand them to `write_attention`.
"""

import numpy as np
import tensorflow as tf

from tf_transformer.tensorboard import summaries

NUM_LAYERS = 2
NUM_HEADS = 3
RUN = "train"
STEPS = (1, 2)
PROBES = {
    "probe_0": (["▁A", "▁dog", "▁runs", "."], ["<s>", "▁Un", "▁perro", "▁corre", "."]),
    "probe_1": (["▁Two", "▁men", "▁play", "▁chess", "▁outside", "."], ["<s>", "▁Dos", "▁hombres"]),
}


def masked_softmax(scores, key_length):
    """Softmax over the last axis of `scores [..., Tq, Tk_padded]` ignoring keys >= key_length."""
    scores = np.where(np.arange(scores.shape[-1]) < key_length, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def synthetic_attention(source_length, target_length, seed, padded_length=8):
    """Returns kind -> float32 [L, N, Tq, Tk] trimmed from padded, masked softmaxes."""
    rng = np.random.default_rng(seed)
    lengths = {
        "encoder_self": (source_length, source_length),
        "decoder_self": (target_length, target_length),
        "cross": (target_length, source_length),
    }
    attention = {}
    for kind, (queries, keys) in lengths.items():
        scores = rng.normal(size=(NUM_LAYERS, NUM_HEADS, padded_length, padded_length))
        padded = masked_softmax(scores, keys)  # [L, N, P, P]
        attention[kind] = padded[:, :, :queries, :keys].astype(np.float32)  # [L, N, Tq, Tk]
    return attention


def write_run(logdir, images=False):
    """Writes every probe at every step into `logdir`; returns {(probe, step): attention}."""
    written = {}
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for step in STEPS:
            for seed, (probe, (source, target)) in enumerate(PROBES.items()):
                attention = synthetic_attention(len(source), len(target), seed=10 * step + seed)
                summaries.write_attention(
                    step,
                    probe,
                    source,
                    target,
                    attention,
                    translation=f"translation of {probe} at {step}",
                    images=images,
                )
                written[probe, step] = attention
    writer.close()
    return written
