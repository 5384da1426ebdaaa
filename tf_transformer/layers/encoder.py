"""The encoder: a stack of self-attention + feed-forward layers (section 3.1).

Shape letters: B batch, S source length, D model width, N heads, L layers.
"""

import keras
import tensorflow as tf

from tf_transformer.layers.attention import MultiHeadAttention
from tf_transformer.layers.feed_forward import FeedForward
from tf_transformer.layers.residual import ResidualNorm


def _check_rate(name, value):
    if value is not None and not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1); received {name}={value}.")


@keras.saving.register_keras_serializable(package="tf_transformer")
class EncoderLayer(keras.layers.Layer):
    """Self-attention then a feed-forward network, each with residual + layer norm.

    Args:
        num_heads: int. Attention heads; must divide the input width.
        inner_dim: int. Feed-forward inner width d_ff.
        dropout: float, default 0.0. Residual dropout.
        attention_dropout: float or None, default None (same as `dropout`).
        norm_first: bool, default False. Pre-layer-norm blocks.
        layer_norm_epsilon: float, default 1e-6.

    Call arguments:
        inputs: [B, S, D] tensor.
        padding_mask: [B, S] bool or None; False at padding.
        training: bool.
        return_attention_scores: bool, default False.

    Returns:
        [B, S, D] tensor, and the self-attention weights [B, N, S, S] if asked.

    References:
        Vaswani et al., 2017, section 3.1.
    """

    def __init__(self, num_heads, inner_dim, dropout=0.0, attention_dropout=None,
                 norm_first=False, layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if num_heads <= 0:
            raise ValueError(f"`num_heads` must be positive; received num_heads={num_heads}.")
        if inner_dim <= 0:
            raise ValueError(f"`inner_dim` must be positive; received inner_dim={inner_dim}.")
        _check_rate("dropout", dropout)
        _check_rate("attention_dropout", attention_dropout)
        self.num_heads = num_heads
        self.inner_dim = inner_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, inputs_shape):
        width = inputs_shape[-1]
        if width % self.num_heads:
            raise ValueError(f"The input width {width} is not divisible by "
                             f"num_heads={self.num_heads}.")
        attention_dropout = self.dropout if self.attention_dropout is None else self.attention_dropout
        self.self_attention = MultiHeadAttention(
            self.num_heads, width // self.num_heads, dropout=attention_dropout,
            dtype=self.dtype_policy, name="self_attention")
        self.self_attention_residual = ResidualNorm(
            self.norm_first, self.dropout, self.layer_norm_epsilon, dtype=self.dtype_policy,
            name="self_attention_residual")
        self.feed_forward = FeedForward(self.inner_dim, dtype=self.dtype_policy,
                                        name="feed_forward")
        self.feed_forward_residual = ResidualNorm(
            self.norm_first, self.dropout, self.layer_norm_epsilon, dtype=self.dtype_policy,
            name="feed_forward_residual")
        for layer in (self.self_attention, self.self_attention_residual, self.feed_forward,
                      self.feed_forward_residual):
            layer.build(inputs_shape)
        self.built = True

    def call(self, inputs, padding_mask=None, training=None, return_attention_scores=False):
        normed = self.self_attention_residual.normalize_input(inputs)  # [B, S, D]
        attended, weights = self.self_attention(
            normed, normed, padding_mask=padding_mask, return_attention_scores=True,
            training=training)  # [B, S, D], [B, N, S, S]
        x = self.self_attention_residual(inputs, attended, training=training)  # [B, S, D]
        transformed = self.feed_forward(self.feed_forward_residual.normalize_input(x),
                                        training=training)  # [B, S, D]
        outputs = self.feed_forward_residual(x, transformed, training=training)  # [B, S, D]
        if return_attention_scores:
            return outputs, weights
        return outputs

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "inner_dim": self.inner_dim,
                       "dropout": self.dropout, "attention_dropout": self.attention_dropout,
                       "norm_first": self.norm_first,
                       "layer_norm_epsilon": self.layer_norm_epsilon})
        return config


@keras.saving.register_keras_serializable(package="tf_transformer")
class Encoder(keras.layers.Layer):
    """A stack of `EncoderLayer`s over embedded inputs (plus a final norm in pre-norm mode).

    Args:
        num_layers: int. Number of layers L.
        num_heads, inner_dim, dropout, attention_dropout, norm_first, layer_norm_epsilon:
            as in `EncoderLayer`.

    Call arguments:
        inputs: [B, S, D] embedded source.
        padding_mask: [B, S] bool or None.
        training: bool.
        return_attention_scores: bool, default False.

    Returns:
        [B, S, D] tensor, and the weights [B, L, N, S, S] of every layer if asked.
    """

    def __init__(self, num_layers, num_heads, inner_dim, dropout=0.0, attention_dropout=None,
                 norm_first=False, layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if num_layers <= 0:
            raise ValueError(f"`num_layers` must be positive; received num_layers={num_layers}.")
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.inner_dim = inner_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        # Fail at construction, not at build, on bad sublayer arguments.
        EncoderLayer(num_heads, inner_dim, dropout, attention_dropout)

    def build(self, inputs_shape):
        # One attribute per layer rather than a list: TensorFlow checkpoints and SavedModels
        # track attributes, not Keras's tracked lists.
        for i in range(self.num_layers):
            setattr(self, f"layer_{i}", EncoderLayer(
                self.num_heads, self.inner_dim, self.dropout, self.attention_dropout,
                self.norm_first, self.layer_norm_epsilon, dtype=self.dtype_policy,
                name=f"layer_{i}"))
        for layer in self.encoder_layers:
            layer.build(inputs_shape)
        self.final_norm = None
        if self.norm_first:
            self.final_norm = keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="final_norm")
            self.final_norm.build(inputs_shape)
        self.built = True

    @property
    def encoder_layers(self):
        return [getattr(self, f"layer_{i}") for i in range(self.num_layers)]

    def call(self, inputs, padding_mask=None, training=None, return_attention_scores=False):
        x = inputs
        all_weights = []
        for layer in self.encoder_layers:
            x, weights = layer(x, padding_mask=padding_mask, training=training,
                               return_attention_scores=True)  # [B, S, D], [B, N, S, S]
            all_weights.append(weights)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if return_attention_scores:
            return x, tf.stack(all_weights, axis=1)  # [B, L, N, S, S]
        return x

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_layers": self.num_layers, "num_heads": self.num_heads,
                       "inner_dim": self.inner_dim, "dropout": self.dropout,
                       "attention_dropout": self.attention_dropout,
                       "norm_first": self.norm_first,
                       "layer_norm_epsilon": self.layer_norm_epsilon})
        return config
