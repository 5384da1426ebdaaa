"""The encoder: a stack of self-attention + feed-forward layers (section 3.1).

Shape letters: B batch, S source length, D model width, N heads, L layers.
"""

import keras
import tensorflow as tf

from tf_transformer.layers.block import TransformerBlock, TransformerStack


@keras.saving.register_keras_serializable(package="tf_transformer")
class EncoderLayer(TransformerBlock):
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

    def build(self, inputs_shape):
        self.self_attention = self._attention(inputs_shape[-1], "self_attention")
        self.self_attention_residual = self._residual("self_attention_residual")
        self.feed_forward = self._feed_forward()
        self.feed_forward_residual = self._residual("feed_forward_residual")
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


@keras.saving.register_keras_serializable(package="tf_transformer")
class Encoder(TransformerStack):
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

    block_class = EncoderLayer

    def call(self, inputs, padding_mask=None, training=None, return_attention_scores=False):
        x = inputs
        all_weights = []
        for layer in self.blocks:
            x, weights = layer(x, padding_mask=padding_mask, training=training,
                               return_attention_scores=True)  # [B, S, D], [B, N, S, S]
            all_weights.append(weights)
        x = self._finish(x)
        if return_attention_scores:
            return x, tf.stack(all_weights, axis=1)  # [B, L, N, S, S]
        return x
