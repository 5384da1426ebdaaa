"""The classic copy task: learn to output the source sequence. Shared by several tests."""

import numpy as np
import tensorflow as tf

import tf_transformer as tft
from tf_transformer.decoding import END_ID, START_ID

VOCAB_SIZE = 16
FIRST_TOKEN = 4  # ids 0-3 are PAD, UNK, START, END


def copy_examples(num_examples, length=8, seed=0):
    """Returns (source [E, L], target_in [E, L+1], target_out [E, L+1]) int32 arrays."""
    rng = np.random.default_rng(seed)
    source = rng.integers(FIRST_TOKEN, VOCAB_SIZE, size=(num_examples, length)).astype(np.int32)
    start = np.full((num_examples, 1), START_ID, np.int32)
    end = np.full((num_examples, 1), END_ID, np.int32)
    return source, np.concatenate([start, source], 1), np.concatenate([source, end], 1)


def copy_dataset(num_examples, batch_size=64, seed=0):
    source, target_in, target_out = copy_examples(num_examples, seed=seed)
    return tf.data.Dataset.from_tensor_slices(((source, target_in), target_out)).batch(batch_size)


def copy_config(**overrides):
    return tft.TransformerConfig.preset("tiny", vocab_size=VOCAB_SIZE, max_length=32,
                                        **overrides)


def train_copy_model(epochs=12, seed=0):
    """Trains a tiny Transformer on the copy task; returns (model, held-out evaluation dict)."""
    tf.keras.utils.set_random_seed(seed)
    model = tft.Transformer(copy_config())
    model.compile(
        optimizer=tf.keras.optimizers.Adam(
            tft.WarmupInverseSqrtSchedule(64, warmup_steps=200, scale=2.0),
            beta_2=0.98, epsilon=1e-9),
        loss=tft.MaskedSparseCategoricalCrossentropy(label_smoothing=0.0),
        metrics=[tft.MaskedAccuracy()])
    model.fit(copy_dataset(4096, seed=seed).shuffle(64, seed=seed), epochs=epochs, verbose=0)
    held_out = model.evaluate(copy_dataset(512, seed=seed + 1000), verbose=0, return_dict=True)
    return model, held_out
