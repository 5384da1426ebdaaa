"""The residual connection around every sub-layer, with post- or pre-layer normalization."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_transformer")
class ResidualNorm(keras.layers.Layer):
    """Wraps a sub-layer output in dropout, a residual connection and layer normalization.

    Post-norm (the paper, section 5.4): LayerNorm(x + Dropout(Sublayer(x))).
    Pre-norm: x + Dropout(Sublayer(LayerNorm(x))); the stack then ends with a LayerNorm.
    Use `normalize_input` on the sub-layer input and `combine` on its output.

    Args:
        norm_first: bool, default False. Pre-norm if True.
        dropout: float, default 0.0. Residual dropout rate.
        epsilon: float, default 1e-6. Layer normalization epsilon.
    """

    def __init__(self, norm_first=False, dropout=0.0, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); received dropout={dropout}.")
        self.norm_first = norm_first
        self.dropout = dropout
        self.epsilon = epsilon

    def build(self, inputs_shape):
        self.norm = keras.layers.LayerNormalization(epsilon=self.epsilon, dtype=self.dtype_policy,
                                                    name="norm")
        self.norm.build(inputs_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def normalize_input(self, inputs):
        """The sub-layer's input: normalized in pre-norm mode, unchanged in post-norm mode."""
        return layer_norm(self.norm, inputs) if self.norm_first else inputs

    def call(self, inputs, sublayer_output, training=None):
        """Returns the block output from the block input and the sub-layer output, [B, T, D]."""
        outputs = inputs + self.dropout_layer(sublayer_output, training=training)
        return outputs if self.norm_first else layer_norm(self.norm, outputs)

    def compute_output_shape(self, inputs_shape, sublayer_output_shape=None):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"norm_first": self.norm_first, "dropout": self.dropout,
                       "epsilon": self.epsilon})
        return config


def layer_norm(norm, inputs):
    """What `norm`, a built `keras.layers.LayerNormalization` over the last axis, computes.

    (x - mean) * (gamma / sqrt(variance + epsilon)) + beta, in float32 at least as Keras
    computes it, with fewer elementwise passes over [B, T, D] than Keras's own formula (which
    scales x and the mean separately). Each pass costs at every decoding step, and more once
    a step's rows make TensorFlow split an elementwise op across threads.

    Args:
        norm: the `keras.layers.LayerNormalization` whose epsilon, gamma and beta to use.
        inputs: [..., D] tensor.

    Returns:
        The normalized tensor, in `norm`'s compute dtype.
    """
    dtype = tf.float64 if inputs.dtype == tf.float64 else tf.float32
    x = tf.cast(inputs, dtype)
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)  # [..., 1]
    centered = x - mean  # [..., D]
    variance = tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)  # [..., 1]
    scale = tf.math.rsqrt(variance + norm.epsilon) * tf.cast(norm.gamma, dtype)  # [..., D]
    return tf.cast(centered * scale + tf.cast(norm.beta, dtype), norm.compute_dtype)
