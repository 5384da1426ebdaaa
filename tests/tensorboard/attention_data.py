"""Synthetic attention data and a TensorBoard app client shared by the TensorBoard tests.

Weights are softmaxes of random scores with padded key positions masked out, then trimmed to the
real tokens, exactly as the training callback and `tft-inspect` hand them to `write_attention`.
"""

import numpy as np
import tensorflow as tf
from tensorboard import program
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins.core import core_plugin
from werkzeug import test as werkzeug_test

from tf_transformer.tensorboard import summaries
from tf_transformer.tensorboard.plugin import AttentionLoader

PLUGIN_ROOT = "/data/plugin/attention"

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


def tensorboard_client(logdir, **flags):
    """A werkzeug client of the TensorBoard app, built as `tensorboard --logdir` builds it.

    Args:
        logdir: the logdir to serve.
        **flags: more TensorBoard flags, e.g. `attention_export_dir`.
    """
    plugins = [core_plugin.CorePluginLoader(include_debug_info=False), AttentionLoader]
    tensorboard = program.TensorBoard(plugins=plugins)
    tensorboard.configure(logdir=str(logdir), samples_per_plugin={"attention": 0}, **flags)
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance=tensorboard.flags.samples_per_plugin
    )
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    app = application.TensorBoardWSGIApp(tensorboard.flags, plugins, data_provider=provider)
    return werkzeug_test.Client(app)
