"""Multi-head scaled dot-product attention (section 3.2 of the paper).

Shape letters: B batch, T query length, S key/value length, N heads, H head size,
D model width, L cache length (the longest decodable target).

Projections use the kernel layout of `keras.layers.MultiHeadAttention`; keys, values and
caches are kept head-major [B, N, S, H] so the attention matmuls never transpose them.
"""

import math

import keras
import tensorflow as tf

from tf_transformer.layers import masks as masks_lib

# Added to the logits of masked positions. Softmax runs in float32, where exp(-1e9 - max)
# underflows to exactly 0, so masked keys get exactly zero weight.
_MASK_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="tf_transformer")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention: Q/K/V projections, scaled dot-product, W^O over the heads.

    The kernels use the layout of `keras.layers.MultiHeadAttention` (query/key/value kernels
    [D, N, H], output kernel [N, H, D]), so weights can be copied between the two.

    Args:
        num_heads: int. Number of heads N.
        key_dim: int. Size H of each head for queries and keys.
        value_dim: int or None, default None. Size of each head for values; `key_dim` if None.
        dropout: float, default 0.0. Dropout rate on the attention weights.
        use_bias: bool, default True. Whether the projections have biases.
        kernel_initializer: initializer, default "glorot_uniform".
        bias_initializer: initializer, default "zeros".

    Call arguments:
        query: [B, T, D] tensor.
        value: [B, S, D] tensor attended to (the query itself for self-attention).
        key: [B, S, D] tensor or None (then `value` is used).
        padding_mask: [B, S] bool or None; False at padded keys.
        attention_mask: [B, T, S] or [T, S] bool or None; True where query t may see key s.
        return_attention_scores: bool, default False. Also return the weights [B, N, T, S].
        training: bool. Applies dropout on the attention weights when True.

    Returns:
        [B, T, D] tensor, and the attention weights [B, N, T, S] (float32) if asked.

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.2.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if num_heads <= 0:
            raise ValueError(f"`num_heads` must be positive; received num_heads={num_heads}.")
        if key_dim <= 0:
            raise ValueError(f"`key_dim` must be positive; received key_dim={key_dim}.")
        if value_dim is not None and value_dim <= 0:
            raise ValueError(f"`value_dim` must be positive; received value_dim={value_dim}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); received dropout={dropout}.")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _dense(self, equation, output_shape, bias_axes, name):
        # Each projection gets its own initializer instance so that seeded initializers do not
        # give all four kernels the same values.
        return keras.layers.EinsumDense(
            equation, output_shape=output_shape, bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=_clone_initializer(self.kernel_initializer),
            bias_initializer=_clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy, name=name)

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        width = query_shape[-1]
        value_dim = self.value_dim or self.key_dim
        self.query_dense = self._dense("btd,dnh->btnh", (None, self.num_heads, self.key_dim),
                                       "nh", "query")
        self.key_dense = self._dense("bsd,dnh->bsnh", (None, self.num_heads, self.key_dim),
                                     "nh", "key")
        self.value_dense = self._dense("bsd,dnh->bsnh", (None, self.num_heads, value_dim),
                                       "nh", "value")
        self.output_dense = self._dense("btnh,nhd->btd", (None, width), "d", "attention_output")
        self.query_dense.build(query_shape)
        self.key_dense.build(key_shape)
        self.value_dense.build(value_shape)
        self.output_dense.build((query_shape[0], query_shape[1], self.num_heads, value_dim))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def project_key_value(self, value, key=None):
        """Projects keys and values once, e.g. the encoder output for cached decoding.

        Returns:
            (key [B, N, S, H], value [B, N, S, H]): head-major, the layout the attention
            matmuls read without transposing, so a cache kept in it is never transposed.
        """
        key = value if key is None else key
        return (_heads_first(self.key_dense(key)),  # [B, N, S, H]
                _heads_first(self.value_dense(value)))  # [B, N, S, H]

    def call(self, query, value, key=None, padding_mask=None, attention_mask=None,
             return_attention_scores=False, training=None):
        projected_key, projected_value = self.project_key_value(value, key)  # [B, N, S, H] x2
        output, weights = self._attend(self.query_dense(query), projected_key, projected_value,
                                       masks_lib.merge_masks(padding_mask, attention_mask),
                                       training)
        if return_attention_scores:
            return output, weights
        return output

    def call_cached(self, query, cache, step=None, mask=None):
        """Attention of decoding steps against a key/value cache (inference only).

        Args:
            query: [B, T, D] tensor, usually T=1.
            cache: dict with "key" and "value", each [B, N, L, H].
            step: int32 scalar or None. For self-attention: the position of `query`; its
                keys/values are written into the cache at `step`..`step+T-1` first. None for
                a static cache such as the encoder-decoder keys/values.
            mask: bool tensor broadcastable to [B, N, T, L] (see `masks.merge_masks`) or None.
                Built once per step by the caller rather than once per layer.

        Returns:
            (output [B, T, D], updated cache).
        """
        if step is not None:
            new_key, new_value = self.project_key_value(query)  # [B, N, T, H] x2
            cache = {
                "key": _write_at(cache["key"], new_key, step),  # [B, N, L, H]
                "value": _write_at(cache["value"], new_value, step),  # [B, N, L, H]
            }
        output, _ = self._attend(self.query_dense(query), cache["key"], cache["value"], mask,
                                 training=False)
        return output, cache

    def _attend(self, query, key, value, mask, training):
        # Scaling by 1/sqrt(H) keeps the logits' variance near 1 whatever the head size, so
        # the softmax does not saturate into vanishing gradients (section 3.2.1).
        query = _heads_first(query * tf.cast(1.0 / math.sqrt(self.key_dim), query.dtype))
        scores = tf.einsum("bnth,bnsh->bnts", query, key)  # [B, N, T, S]
        # Softmax in float32: half-precision logits overflow and lose the mask.
        scores = tf.cast(scores, tf.float32)  # [B, N, T, S]
        if mask is not None:
            scores = tf.where(mask, scores, _MASK_LOGIT)  # [B, N, T, S]
        weights = tf.nn.softmax(scores, axis=-1)  # [B, N, T, S]
        dropped = self.dropout_layer(tf.cast(weights, value.dtype), training=training)
        context = tf.einsum("bnts,bnsh->bnth", dropped, value)  # [B, N, T, H]
        context = tf.transpose(context, [0, 2, 1, 3])  # [B, T, N, H]
        return self.output_dense(context), weights  # [B, T, D], [B, N, T, S]

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return query_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        })
        return config


def _clone_initializer(initializer):
    return initializer.__class__.from_config(initializer.get_config())


def _heads_first(x):
    return tf.transpose(x, [0, 2, 1, 3])  # [B, T, N, H] <-> [B, N, T, H]


def _write_at(cache, update, step):
    """Writes `update` [B, N, T, H] into `cache` [B, N, L, H] at positions step..step+T-1.

    A scatter keeps the cache's static shape (which `tf.while_loop` and XLA need) and costs
    O(B*N*T*H), not O(B*N*L*H) as a one-hot blend would; TensorScatterUpdate is a core op that
    every TensorFlow Serving build has.
    """
    shape = tf.shape(update)
    batch, heads, length = shape[0], shape[1], shape[2]
    grid = [batch, heads, length]
    rows = tf.broadcast_to(tf.range(batch)[:, None, None], grid)  # [B, N, T]
    head_ids = tf.broadcast_to(tf.range(heads)[None, :, None], grid)  # [B, N, T]
    positions = tf.broadcast_to(tf.range(length)[None, None, :] + step, grid)  # [B, N, T]
    indices = tf.stack([rows, head_ids, positions], axis=-1)  # [B, N, T, 3]
    return tf.tensor_scatter_nd_update(cache, indices, update)  # [B, N, L, H]
