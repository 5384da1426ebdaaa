"""Hand-made batches of unequal token counts, and one `fit` of `TokenWeightedTransformer` on
them under a given strategy, for the token-weighting tests (run in subprocesses: logical
devices and multi-worker clusters must be set up before TensorFlow starts).

Every step has `PARTS` batches of different shapes and token counts (`step_parts`). The
reference run sees, per step, one batch holding all of them (`union`); the distributed and
accumulating runs see the parts spread over replicas, workers and micro-batches.
"""

import json

import keras
import numpy as np
import tensorflow as tf

import tf_transformer as tft
from tests.trainers.recorder import Recorder
from trainers.multi_worker import MultiWorkerTransformer
from trainers.steps import TokenWeightedTransformer, group_micro_batches, input_options

VOCAB = 40
STEPS = 4
PARTS = 4
# (rows, source width, target width) of the parts of a step: unequal token counts.
SHAPES = [(2, 3, 4), (7, 9, 11), (4, 6, 5), (9, 4, 8)]


def _part(rng, rows, source_width, target_width):
    """((source [B, S], target_input [B, T]), target_output [B, T]) with random lengths."""
    source = np.zeros([rows, source_width], np.int32)
    target_input = np.zeros([rows, target_width], np.int32)
    target_output = np.zeros([rows, target_width], np.int32)
    for row in range(rows):
        source_length = rng.integers(1, source_width + 1)
        source[row, :source_length] = rng.integers(4, VOCAB, source_length)
        length = rng.integers(1, target_width)  # words, + START or END
        words = rng.integers(4, VOCAB, length)
        target_input[row, :length + 1] = np.concatenate([[2], words])
        target_output[row, :length + 1] = np.concatenate([words, [3]])
    return (source, target_input), target_output


def step_parts(seed=0):
    """STEPS lists of PARTS batches; the parts' order rotates from step to step."""
    rng = np.random.default_rng(seed)
    steps = []
    for step in range(STEPS):
        shapes = SHAPES[step % PARTS:] + SHAPES[:step % PARTS]
        steps.append([_part(rng, *shape) for shape in shapes])
    return steps


def union(parts):
    """One batch holding the rows of all `parts`, padded to the widest of them."""
    source_width = max(part[0][0].shape[1] for part in parts)
    target_width = max(part[1].shape[1] for part in parts)

    def pad(array, width):
        return np.pad(array, [[0, 0], [0, width - array.shape[1]]])

    return ((np.concatenate([pad(p[0][0], source_width) for p in parts]),
             np.concatenate([pad(p[0][1], target_width) for p in parts])),
            np.concatenate([pad(p[1], target_width) for p in parts]))


def _dataset(elements):
    spec = tf.TensorSpec([None, None], tf.int32)
    return tf.data.Dataset.from_generator(lambda: iter(elements),
                                          output_signature=((spec, spec), spec))


def run(strategy, accumulate_steps, elements_fn, out_path):
    """Fits STEPS steps; writes {"losses", "accuracy", "iterations"} (JSON) and the weights
    (.npz) to `out_path` + ".json" / ".npz".

    Args:
        strategy: `tf.distribute.Strategy`.
        accumulate_steps: int.
        elements_fn: callable(input_pipeline_id) -> list of batches in the order that
            pipeline yields them.
        out_path: str, path prefix of the outputs.
    """
    keras.utils.set_random_seed(1)
    config = tft.TransformerConfig.preset("tiny", vocab_size=VOCAB, max_length=16)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    model_class = MultiWorkerTransformer if multi_worker else TokenWeightedTransformer
    with strategy.scope():
        model = model_class(config, accumulate_steps=accumulate_steps)
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss=tft.MaskedSparseCategoricalCrossentropy(label_smoothing=0.1),
                      metrics=[tft.MaskedAccuracy(name="accuracy")])
    data = strategy.distribute_datasets_from_function(
        lambda context: group_micro_batches(
            _dataset(elements_fn(context.input_pipeline_id)), accumulate_steps),
        options=input_options(accumulate_steps))
    recorder = Recorder()
    history = model.fit(data, epochs=1, steps_per_epoch=STEPS, callbacks=[recorder],
                        verbose=0)
    with open(out_path + ".json", "w") as f:
        json.dump({"losses": recorder.batch_losses[0],
                   "accuracy": [float(value) for value in history.history["accuracy"]],
                   "iterations": int(model.optimizer.iterations.numpy())}, f)
    np.savez(out_path + ".npz", *model.get_weights())
