"""Position information: fixed sinusoids (two variants) and learned position embeddings.

Shape letters: B batch, T sequence length, D model width, P maximum positions.
"""

import math

import keras
import numpy as np
import tensorflow as tf

SINUSOID_VARIANTS = ("interleaved", "concatenated")


def sinusoid_table(num_positions, width, variant="interleaved", max_timescale=1.0e4,
                   min_timescale=1.0):
    """Returns the sinusoidal encoding of positions 0..num_positions-1 as a [P, D] array.

    Args:
        num_positions: int. Number of positions P.
        width: int. Encoding width D.
        variant: str, default "interleaved". "interleaved" is the paper's section 3.5:
            PE(pos, 2i) = sin(pos / 10000^(2i/D)), PE(pos, 2i+1) = cos(pos / 10000^(2i/D)).
            "concatenated" is Tensor2Tensor's `get_timing_signal_1d`: D/2 timescales spaced
            geometrically from `min_timescale` to `max_timescale`, all sines then all cosines.
        max_timescale: float, default 1e4.
        min_timescale: float, default 1.0 ("concatenated" only).

    Returns:
        float32 numpy array [P, D].
    """
    if variant not in SINUSOID_VARIANTS:
        raise ValueError(f"`variant` must be one of {SINUSOID_VARIANTS}; received {variant!r}.")
    positions = np.arange(num_positions, dtype=np.float64)[:, None]  # [P, 1]
    if variant == "interleaved":
        dims = np.arange(width)[None, :]  # [1, D]
        rates = 1.0 / np.power(max_timescale, (2 * (dims // 2)) / width)  # [1, D]
        angles = positions * rates  # [P, D]
        table = np.where(dims % 2 == 0, np.sin(angles), np.cos(angles))  # [P, D]
    else:
        num_timescales = width // 2
        increment = math.log(max_timescale / min_timescale) / max(num_timescales - 1, 1)
        inv_timescales = min_timescale * np.exp(np.arange(num_timescales) * -increment)
        angles = positions * inv_timescales[None, :]  # [P, D/2]
        table = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)  # [P, 2*(D/2)]
        table = np.pad(table, [[0, 0], [0, width % 2]])  # [P, D]
    return table.astype(np.float32)


@keras.saving.register_keras_serializable(package="tf_transformer")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Fixed sinusoidal position encoding, returned to be added to the token embeddings.

    Args:
        max_length: int. Longest sequence supported.
        variant: str, default "interleaved". See `sinusoid_table`.
        max_timescale: float, default 1e4.

    Call arguments:
        inputs: [B, T, D] tensor; only its shape is used.
        start_index: int or int32 scalar, default 0. Position of the first element (for
            incremental decoding).
        broadcast: bool, default True. False returns [1, T, D], to be added with
            broadcasting rather than as a materialized [B, T, D] copy.

    Returns:
        [B, T, D] tensor, the encodings of positions start_index..start_index+T-1.

    References:
        Vaswani et al., 2017, section 3.5; Tensor2Tensor `common_attention.get_timing_signal_1d`.
    """

    def __init__(self, max_length, variant="interleaved", max_timescale=1.0e4, **kwargs):
        super().__init__(**kwargs)
        if max_length <= 0:
            raise ValueError(f"`max_length` must be positive; received max_length={max_length}.")
        if variant not in SINUSOID_VARIANTS:
            raise ValueError(f"`variant` must be one of {SINUSOID_VARIANTS}; received {variant!r}.")
        self.max_length = max_length
        self.variant = variant
        self.max_timescale = max_timescale

    def build(self, inputs_shape):
        # A constant rather than a variable: it is not trained and checkpoints stay small.
        self._table = tf.constant(sinusoid_table(self.max_length, inputs_shape[-1], self.variant,
                                                 self.max_timescale))  # [P, D]
        self.built = True

    def call(self, inputs, start_index=0, broadcast=True):
        length = tf.shape(inputs)[1]
        table = tf.cast(self._table, self.compute_dtype)
        encoding = tf.slice(table, [start_index, 0], [length, -1])  # [T, D]
        if not broadcast:
            return encoding[None]  # [1, T, D]
        return tf.broadcast_to(encoding[None], tf.shape(inputs))  # [B, T, D]

    def get_config(self):
        config = super().get_config()
        config.update({"max_length": self.max_length, "variant": self.variant,
                       "max_timescale": self.max_timescale})
        return config


@keras.saving.register_keras_serializable(package="tf_transformer")
class LearnedPositionEmbedding(keras.layers.Layer):
    """A trained embedding vector per position (the paper's Table 3, row E).

    Args:
        max_length: int. Longest sequence supported.
        initializer: initializer, default "glorot_uniform".

    Call arguments:
        inputs: [B, T, D] tensor; only its shape is used.
        start_index: int or int32 scalar, default 0.
        broadcast: bool, default True. False returns [1, T, D] (see
            `SinusoidalPositionEncoding`).

    Returns:
        [B, T, D] tensor.
    """

    def __init__(self, max_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if max_length <= 0:
            raise ValueError(f"`max_length` must be positive; received max_length={max_length}.")
        self.max_length = max_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings", shape=(self.max_length, inputs_shape[-1]),
            initializer=self.initializer)
        self.built = True

    def call(self, inputs, start_index=0, broadcast=True):
        length = tf.shape(inputs)[1]
        table = tf.convert_to_tensor(self.position_embeddings)
        encoding = tf.cast(tf.slice(table, [start_index, 0], [length, -1]),
                           self.compute_dtype)  # [T, D]
        if not broadcast:
            return encoding[None]  # [1, T, D]
        return tf.broadcast_to(encoding[None], tf.shape(inputs))  # [B, T, D]

    def get_config(self):
        config = super().get_config()
        config.update({"max_length": self.max_length,
                       "initializer": keras.initializers.serialize(self.initializer)})
        return config
