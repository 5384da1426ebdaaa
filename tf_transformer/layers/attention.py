"""Multi-head scaled dot-product attention (section 3.2 of the paper).

Shape letters: B batch, T query length, S key/value length, N heads, H head size,
D model width, L cache length (the positions decoded so far).

Projections use the kernel layout of `keras.layers.MultiHeadAttention`; keys, values and
caches are kept head-major [B, N, S, H] so the attention matmuls never transpose them.
"""

import math

import keras
import tensorflow as tf

from tf_transformer.layers import masks as masks_lib
from tf_transformer.layers.positionwise import positionwise, shape_with_leading

# Added to the logits of masked positions. Softmax runs in float32, where exp(-1e9 - max)
# underflows to exactly 0, so masked keys get exactly zero weight.
_MASK_LOGIT = -1e9
# Up to this many query rows (batch x queries), or this many query-key pairs (query rows x
# cached positions), a cached decoding step attends with broadcast products instead of
# matmul/softmax kernels (see `MultiHeadAttention._attend_step`). Measured at 4 heads of 64:
# 32 rows x 12 positions take 0.6x the kernels' time, 32 x 16 or 32 x 20 1.3x.
_STEP_ROWS = 16
_STEP_PAIRS = 400


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
        # EinsumDense layers hold the weights in Keras's layout (checkpoints and weight copies
        # with keras.layers.MultiHeadAttention); the products run as 2-D matmuls in
        # `_project_in` / `_project_out`, not through these layers' einsums.
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
        return (_heads_first(self._project_in(self.key_dense, key)),  # [B, N, S, H]
                _heads_first(self._project_in(self.value_dense, value)))  # [B, N, S, H]

    def _project_in(self, dense, inputs):
        """[B, T, D] -> [B, T, N, H] through a query/key/value projection layer's weights.

        A plain 2-D matmul over the flattened positions rather than the layer's einsum: the
        same product, but TensorFlow's CPU einsum kernel costs several times a matmul on the
        small tensors of a decoding step (it dominated a batch-1 step's profile).
        """
        projection = _input_kernel(dense, inputs.dtype)
        return positionwise(inputs, projection["kernel"], projection.get("bias"),
                            dense.kernel.shape[1:])  # [B, T, N, H]

    def _project_out(self, context, output=None):
        """[B, T, N, H] -> [B, T, D] through W^O, as a 2-D matmul (see `_project_in`).

        `output`: W^O as `step_kernels()["output"]`, or None to read the layer's weights.
        """
        if output is None:
            output = self._output_kernel(context.dtype)
        heads, size = context.shape[2:]
        flat = tf.reshape(context, shape_with_leading(context, [heads * size]))  # [B, T, NH]
        return positionwise(flat, output["kernel"], output.get("bias"),
                            [output["kernel"].shape[1]])  # [B, T, D]

    def _output_kernel(self, dtype):
        """W^O as {"kernel": [NH, D], "bias": [D]} (no "bias" without biases) in `dtype`."""
        kernel = tf.cast(self.output_dense.kernel, dtype)  # [N, H, D]
        heads, size, width = kernel.shape
        output = {"kernel": tf.reshape(kernel, [heads * size, width])}  # [NH, D]
        if self.output_dense.bias is not None:
            output["bias"] = tf.cast(self.output_dense.bias, dtype)  # [D]
        return output

    def call(self, query, value, key=None, padding_mask=None, attention_mask=None,
             return_attention_scores=False, training=None):
        projected_key, projected_value = self.project_key_value(value, key)  # [B, N, S, H] x2
        projected_query = self._project_in(self.query_dense, query)  # [B, T, N, H]
        output, weights = self._attend(projected_query, projected_key, projected_value,
                                       masks_lib.merge_masks(padding_mask, attention_mask),
                                       training)
        if return_attention_scores:
            return output, weights
        return output

    def fused_projection(self, dtype=None):
        """The query, key and value kernels (and biases) side by side (`step_kernels`).

        One [D, 3NH] product per decoding step instead of three [D, NH] ones: fewer, larger
        ops. The layer keeps the three Keras-layout kernels; decoding concatenates them once
        per call with this, not at every step.

        Args:
            dtype: the compute dtype, default the layer's.

        Returns:
            {"kernel": [D, 3NH], "bias": [3NH] (zeros without biases)}: query, key and value
            side by side, each head-major as `_project_in` flattens them.
        """
        dtype = dtype or self.compute_dtype
        if (self.value_dim or self.key_dim) != self.key_dim:
            raise ValueError("A fused projection needs value_dim == key_dim; received "
                             f"key_dim={self.key_dim}, value_dim={self.value_dim}.")
        layers = (self.query_dense, self.key_dense, self.value_dense)
        width = self.query_dense.kernel.shape[0]
        kernel = tf.concat([tf.reshape(tf.cast(layer.kernel, dtype), [width, -1])
                            for layer in layers], axis=1)  # [D, 3NH]
        if self.use_bias:
            bias = tf.concat([tf.reshape(tf.cast(layer.bias, dtype), [-1]) for layer in layers],
                             axis=0)  # [3NH]
        else:
            bias = tf.zeros([3 * self.num_heads * self.key_dim], dtype)
        return {"kernel": kernel, "bias": bias}  # [D, 3NH], [3NH]

    def step_kernels(self, fused=False, dtype=None):
        """A decoding step's kernels and biases, cast and laid out for 2-D matmuls.

        Decoding takes them once per call (the decoder's cache holds them) rather than
        casting and reshaping the layer's weights at every step: in reduced precision each
        cast is a pass over a kernel, at every step of every layer.

        Args:
            fused: bool, default False. True: "input" is the fused Q/K/V projection
                (`fused_projection`, for self-attention); False: the query projection.
            dtype: the compute dtype, default the layer's.

        Returns:
            {"input": {"kernel": [D, NH] (fused [D, 3NH]), "bias": [NH] ([3NH])},
             "output": {"kernel": [NH, D], "bias": [D]}}; without biases, the query and W^O
            have no "bias" (the fused projection has zeros).
        """
        dtype = dtype or self.compute_dtype
        projection = (self.fused_projection(dtype) if fused
                      else _input_kernel(self.query_dense, dtype))
        return {"input": projection, "output": self._output_kernel(dtype)}

    def call_cached(self, query, cache, mask=None, kernels=None, append=False):
        """Attention of decoding steps against a key/value cache (inference only).

        Args:
            query: [B, T, D] tensor, usually T=1 (or T=K beams of one sentence against its
                encoder keys/values).
            cache: dict with "key" and "value", each [B, N, L, H].
            mask: bool tensor broadcastable to [B, N, T, L] (see `masks.merge_masks`) or None.
                Built once per step by the caller rather than once per layer.
            kernels: `step_kernels(fused=append)`, or None to read the layer's weights.
            append: bool, default False (a static cache such as the encoder-decoder
                keys/values). True for self-attention: the query's own keys and values are
                appended to the cache first, so that the cache holds exactly the positions
                decoded so far and needs no mask (every one is at or before the query).

        Returns:
            (output [B, T, D], cache: [B, N, L + T, H] each when appending, else as given).
        """
        if kernels is None:
            kernels = self.step_kernels(fused=append, dtype=query.dtype)
        projection, heads = kernels["input"], self.num_heads
        if not append:
            projected_query = positionwise(query, projection["kernel"], projection.get("bias"),
                                           [heads, self.key_dim])  # [B, T, N, H]
        else:
            projected = positionwise(query, projection["kernel"], projection["bias"],
                                     [3 * heads, self.key_dim])  # [B, T, 3N, H]
            # One split op rather than three slices: each is a copy.
            projected_query, new_key, new_value = tf.split(projected, 3, axis=2)  # [B, T, N, H]
            cache = {"key": tf.concat([cache["key"], _heads_first(new_key)],
                                      axis=2),  # [B, N, L+T, H]
                     "value": tf.concat([cache["value"], _heads_first(new_value)],
                                        axis=2)}  # [B, N, L+T, H]
        key, value = cache["key"], cache["value"]
        # Little work (batch 1, a single sentence's beams, or a batch's first positions):
        # broadcast products; more: the matmul and softmax kernels, which win once their fixed
        # cost is spread over enough rows and positions.
        rows = tf.shape(query)[0] * tf.shape(query)[1]
        pairs = rows * tf.shape(key)[2]
        output = tf.cond((rows <= _STEP_ROWS) | (pairs <= _STEP_PAIRS),
                         lambda: self._attend_step(projected_query, key, value, mask,
                                                   kernels.get("output")),
                         lambda: self._attend(projected_query, key, value, mask, False,
                                              kernels.get("output"))[0])
        return output, cache

    def _attend_step(self, query, key, value, mask, output=None):
        """`_attend` for a decoding step's few queries, without matmul or softmax kernels.

        The same scaled dot-product and softmax as `_attend`, written as broadcast products
        and sums: for a handful of queries against up to a few hundred cached positions these
        small elementwise ops cost a fraction of TensorFlow's CPU batch-matmul and softmax
        kernels (oneDNN's), whose fixed cost per call dominated a batch-1 decoding step.

        Args:
            query: [B, T, N, H], T small (1, or the K beams of a sentence).
            key, value: [B, N, L, H].
            mask: bool broadcastable to [B, N, T, L], or None.
            output: W^O as in `_project_out`.

        Returns:
            [B, T, D].
        """
        query = _heads_first(query * tf.cast(1.0 / math.sqrt(self.key_dim), query.dtype))
        scores = tf.reduce_sum(query[:, :, :, None, :] * key[:, :, None, :, :],
                               axis=-1)  # [B, N, T, L]
        scores = tf.cast(scores, tf.float32)  # float32 softmax, as in `_attend`
        if mask is not None:
            scores = tf.where(mask, scores, _MASK_LOGIT)  # [B, N, T, L]
        exponentials = tf.exp(scores - tf.reduce_max(scores, axis=-1, keepdims=True))
        weights = exponentials / tf.reduce_sum(exponentials, axis=-1,
                                               keepdims=True)  # [B, N, T, L]
        context = tf.reduce_sum(tf.cast(weights, value.dtype)[:, :, :, :, None]
                                * value[:, :, None, :, :], axis=3)  # [B, N, T, H]
        return self._project_out(tf.transpose(context, [0, 2, 1, 3]), output)  # [B, T, D]

    def _attend(self, query, key, value, mask, training, output=None):
        # Scaling by 1/sqrt(H) keeps the logits' variance near 1 whatever the head size, so
        # the softmax does not saturate into vanishing gradients (section 3.2.1).
        query = _heads_first(query * tf.cast(1.0 / math.sqrt(self.key_dim), query.dtype))
        scores = tf.matmul(query, key, transpose_b=True)  # [B, N, T, S]
        # Softmax in float32: half-precision logits overflow and lose the mask.
        scores = tf.cast(scores, tf.float32)  # [B, N, T, S]
        if mask is not None:
            scores = tf.where(mask, scores, _MASK_LOGIT)  # [B, N, T, S]
        weights = tf.nn.softmax(scores, axis=-1)  # [B, N, T, S]
        dropped = self.dropout_layer(tf.cast(weights, value.dtype), training=training)
        context = tf.matmul(dropped, value)  # [B, N, T, H]
        context = tf.transpose(context, [0, 2, 1, 3])  # [B, T, N, H]
        return self._project_out(context, output), weights  # [B, T, D], [B, N, T, S]

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


def _input_kernel(dense, dtype):
    """A query/key/value projection layer's weights as {"kernel": [D, NH], "bias": [NH]} (no
    "bias" without biases) in `dtype`, for a 2-D matmul."""
    kernel = tf.cast(dense.kernel, dtype)  # [D, N, H]
    projection = {"kernel": tf.reshape(kernel, [kernel.shape[0], -1])}  # [D, NH]
    if dense.bias is not None:
        projection["bias"] = tf.reshape(tf.cast(dense.bias, dtype), [-1])  # [NH]
    return projection


def _clone_initializer(initializer):
    return initializer.__class__.from_config(initializer.get_config())


def _heads_first(x):
    return tf.transpose(x, [0, 2, 1, 3])  # [B, T, N, H] <-> [B, N, T, H]
