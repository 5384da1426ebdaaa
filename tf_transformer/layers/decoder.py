"""The decoder: masked self-attention, encoder-decoder attention and feed-forward (3.1).

Shape letters: B batch, T target length, S source length, D model width, N heads, H head size,
L layers, K hypotheses per sentence (the beam) in decoding.
"""

import keras
import tensorflow as tf

from tf_transformer.layers import masks as masks_lib
from tf_transformer.layers.block import TransformerBlock, TransformerStack


@keras.saving.register_keras_serializable(package="tf_transformer")
class DecoderLayer(TransformerBlock):
    """Masked self-attention, encoder-decoder attention, feed-forward; each residual + norm.

    Args:
        num_heads: int. Attention heads; must divide the input width.
        inner_dim: int. Feed-forward inner width d_ff.
        dropout: float, default 0.0. Residual dropout.
        attention_dropout: float or None, default None (same as `dropout`).
        norm_first: bool, default False. Pre-layer-norm blocks.
        layer_norm_epsilon: float, default 1e-6.

    Call arguments:
        inputs: [B, T, D] embedded target prefix.
        memory: [B, S, D] encoder output.
        padding_mask: [B, T] bool or None; False at target padding.
        memory_padding_mask: [B, S] bool or None; False at source padding.
        training: bool.
        return_attention_scores: bool, default False.

    Returns:
        [B, T, D] tensor, and if asked the weights (self [B, N, T, T], cross [B, N, T, S]).

    References:
        Vaswani et al., 2017, section 3.1.
    """

    def build(self, inputs_shape, memory_shape=None):
        memory_shape = inputs_shape if memory_shape is None else memory_shape
        width = inputs_shape[-1]
        self.self_attention = self._attention(width, "self_attention")
        self.self_attention_residual = self._residual("self_attention_residual")
        self.cross_attention = self._attention(width, "cross_attention")
        self.cross_attention_residual = self._residual("cross_attention_residual")
        self.feed_forward = self._feed_forward()
        self.feed_forward_residual = self._residual("feed_forward_residual")
        self.self_attention.build(inputs_shape)
        self.cross_attention.build(inputs_shape, memory_shape)
        for layer in (self.self_attention_residual, self.cross_attention_residual,
                      self.feed_forward, self.feed_forward_residual):
            layer.build(inputs_shape)
        self.built = True

    def call(self, inputs, memory, padding_mask=None, memory_padding_mask=None, training=None,
             return_attention_scores=False):
        length = tf.shape(inputs)[1]
        # Position t may see positions <= t only: training predicts every position at once and
        # must not peek at the tokens it is asked to predict.
        causal = masks_lib.causal_mask(length)  # [T, T]
        normed = self.self_attention_residual.normalize_input(inputs)
        attended, self_weights = self.self_attention(
            normed, normed, padding_mask=padding_mask, attention_mask=causal,
            return_attention_scores=True, training=training)  # [B, T, D], [B, N, T, T]
        x = self.self_attention_residual(inputs, attended, training=training)
        normed = self.cross_attention_residual.normalize_input(x)
        attended, cross_weights = self.cross_attention(
            normed, memory, padding_mask=memory_padding_mask, return_attention_scores=True,
            training=training)  # [B, T, D], [B, N, T, S]
        x = self.cross_attention_residual(x, attended, training=training)
        transformed = self.feed_forward(self.feed_forward_residual.normalize_input(x),
                                        training=training)
        outputs = self.feed_forward_residual(x, transformed, training=training)  # [B, T, D]
        if return_attention_scores:
            return outputs, (self_weights, cross_weights)
        return outputs

    def init_cache(self, memory, hypotheses_per_sentence=1):
        """Returns this layer's decoding cache for `memory` [B, S, D].

        "self" holds the self-attention keys/values of the positions decoded so far, one row
        per hypothesis [B*K, N, 0, H] (empty: it grows by one position per step); "cross"
        holds the encoder-decoder keys/values [B, N, S, H], computed once here instead of at
        every step and shared by the K hypotheses of a sentence; "kernels" the step's weights
        in the compute dtype, also taken once ("self_attention" with the fused Q/K/V
        projection, "cross_attention": `MultiHeadAttention.step_kernels`; "feed_forward":
        `FeedForward.step_kernels`).

        Args:
            memory: [B, S, D] encoder output.
            hypotheses_per_sentence: int or int32 scalar K, default 1 (beam search: the beam).
        """
        rows = tf.shape(memory)[0] * hypotheses_per_sentence
        empty = tf.zeros([rows, self.num_heads, 0, self.self_attention.key_dim],
                         self.compute_dtype)  # [B*K, N, 0, H]
        cross_key, cross_value = self.cross_attention.project_key_value(memory)  # [B, N, S, H]
        # The fused Q/K/V kernel is always taken here (a concat). The other weights only in
        # reduced precision, where a step would cast each of them; in float32 a step reads
        # them as they are, and the decoding loop carries fewer tensors.
        kernels = {"self_attention": {"input": self.self_attention.fused_projection()}}
        if self.compute_dtype != self.variable_dtype:
            kernels = {"self_attention": self.self_attention.step_kernels(fused=True),
                       "cross_attention": self.cross_attention.step_kernels(),
                       "feed_forward": self.feed_forward.step_kernels()}
        return {"self": {"key": empty, "value": empty},
                "cross": {"key": cross_key, "value": cross_value},
                "kernels": kernels}

    def decode_step(self, inputs, cache, memory_mask=None):
        """One incremental step: `inputs` [B*K, 1, D] -> ([B*K, 1, D], cache).

        Args:
            inputs: [B*K, 1, D] embedded tokens at the next position, K hypotheses per
                sentence (K=1 outside beam search), grouped by sentence.
            cache: from `init_cache` or the previous step.
            memory_mask: bool broadcastable to [B, N, 1, S]: the non-padding source positions.
        """
        normed = self.self_attention_residual.normalize_input(inputs)
        kernels = cache["kernels"]
        attended, self_cache = self.self_attention.call_cached(
            normed, cache["self"], kernels=kernels["self_attention"],
            append=True)  # [B*K, 1, D]
        x = self.self_attention_residual(inputs, attended, training=False)
        normed = self.cross_attention_residual.normalize_input(x)
        # The K hypotheses of a sentence attend to the same encoder keys/values: ask them as K
        # queries of one sentence rather than copying the keys/values K times.
        sentences = tf.shape(cache["cross"]["key"])[0]
        width = tf.shape(normed)[-1]
        queries = tf.reshape(normed, [sentences, -1, width])  # [B, K, D]
        attended, _ = self.cross_attention.call_cached(
            queries, cache["cross"], mask=memory_mask,
            kernels=kernels.get("cross_attention"))  # [B, K, D]
        attended = tf.reshape(attended, tf.shape(x))  # [B*K, 1, D]
        x = self.cross_attention_residual(x, attended, training=False)
        transformed = self.feed_forward(self.feed_forward_residual.normalize_input(x),
                                        kernels=kernels.get("feed_forward"))
        outputs = self.feed_forward_residual(x, transformed, training=False)  # [B*K, 1, D]
        return outputs, {"self": self_cache, "cross": cache["cross"],
                         "kernels": kernels}

    def compute_output_shape(self, inputs_shape, memory_shape=None):
        return inputs_shape


@keras.saving.register_keras_serializable(package="tf_transformer")
class Decoder(TransformerStack):
    """A stack of `DecoderLayer`s over the embedded target (plus a final norm in pre-norm mode).

    Args:
        num_layers: int. Number of layers L.
        num_heads, inner_dim, dropout, attention_dropout, norm_first, layer_norm_epsilon:
            as in `DecoderLayer`.

    Call arguments:
        inputs: [B, T, D] embedded target prefix.
        memory: [B, S, D] encoder output.
        padding_mask: [B, T] bool or None.
        memory_padding_mask: [B, S] bool or None.
        training: bool.
        return_attention_scores: bool, default False.

    Returns:
        [B, T, D] tensor, and if asked (self [B, L, N, T, T], cross [B, L, N, T, S]).
    """

    block_class = DecoderLayer

    def call(self, inputs, memory, padding_mask=None, memory_padding_mask=None, training=None,
             return_attention_scores=False):
        x = inputs
        self_weights, cross_weights = [], []
        for layer in self.blocks:
            x, (self_w, cross_w) = layer(
                x, memory, padding_mask=padding_mask, memory_padding_mask=memory_padding_mask,
                training=training, return_attention_scores=True)
            self_weights.append(self_w)
            cross_weights.append(cross_w)
        x = self._finish(x)
        if return_attention_scores:
            return x, (tf.stack(self_weights, axis=1),  # [B, L, N, T, T]
                       tf.stack(cross_weights, axis=1))  # [B, L, N, T, S]
        return x

    def init_cache(self, memory, hypotheses_per_sentence=1):
        """Returns the decoding cache: a list with one `DecoderLayer.init_cache` per layer."""
        return [layer.init_cache(memory, hypotheses_per_sentence) for layer in self.blocks]

    def decode_step(self, inputs, cache, memory_padding_mask=None):
        """One incremental step over all layers: [B*K, 1, D] -> ([B*K, 1, D], cache).

        Args:
            inputs: [B*K, 1, D] embedded tokens at the next position (K hypotheses per
                sentence, grouped by sentence; K=1 outside beam search).
            cache: from `init_cache` or the previous step.
            memory_padding_mask: [B, S] bool, or a mask already merged to [B, 1, 1, S].
        """
        if memory_padding_mask is not None and len(memory_padding_mask.shape) == 2:
            memory_padding_mask = masks_lib.merge_masks(memory_padding_mask)  # [B, 1, 1, S]
        x = inputs
        new_cache = []
        for layer, layer_cache in zip(self.blocks, cache):
            x, layer_cache = layer.decode_step(x, layer_cache, memory_padding_mask)
            new_cache.append(layer_cache)
        x = self._finish(x)
        return x, new_cache
