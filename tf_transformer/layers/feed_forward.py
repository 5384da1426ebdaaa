"""Position-wise feed-forward network (section 3.3): max(0, xW1 + b1)W2 + b2."""

import keras
import tensorflow as tf

from tf_transformer.layers.positionwise import positionwise


@keras.saving.register_keras_serializable(package="tf_transformer")
class FeedForward(keras.layers.Layer):
    """Two linear maps with a ReLU between them, applied to every position alike.

    Args:
        inner_dim: int. Inner width d_ff.
        dropout: float, default 0.0. Dropout after the ReLU.
        activation: str, default "relu".
        kernel_initializer: initializer, default "glorot_uniform".

    Call arguments:
        inputs: [B, T, D] tensor.
        training: bool.
        kernels: `step_kernels()` or None (the layer's weights, cast at this call).

    Returns:
        [B, T, D] tensor.

    References:
        Vaswani et al., 2017, section 3.3.
    """

    def __init__(self, inner_dim, dropout=0.0, activation="relu",
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if inner_dim <= 0:
            raise ValueError(f"`inner_dim` must be positive; received inner_dim={inner_dim}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); received dropout={dropout}.")
        self.inner_dim = inner_dim
        self.dropout = dropout
        self.activation = activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        init = self.kernel_initializer
        self.inner = keras.layers.Dense(
            self.inner_dim, activation=self.activation, dtype=self.dtype_policy, name="inner",
            kernel_initializer=init.__class__.from_config(init.get_config()))
        self.outer = keras.layers.Dense(
            inputs_shape[-1], dtype=self.dtype_policy, name="outer",
            kernel_initializer=init.__class__.from_config(init.get_config()))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.inner.build(inputs_shape)
        self.outer.build(tuple(inputs_shape[:-1]) + (self.inner_dim,))
        self.built = True

    def step_kernels(self, dtype=None):
        """The two maps' kernels and biases in `dtype` (default the compute dtype).

        Decoding takes them once per call (the decoder's cache holds them) rather than
        casting the weights at every step, a pass over each kernel in reduced precision.

        Returns:
            {"inner": {"kernel": [D, d_ff], "bias": [d_ff]},
             "outer": {"kernel": [d_ff, D], "bias": [D]}}.
        """
        dtype = dtype or self.compute_dtype
        return {name: {"kernel": tf.cast(dense.kernel, dtype), "bias": tf.cast(dense.bias, dtype)}
                for name, dense in (("inner", self.inner), ("outer", self.outer))}

    def call(self, inputs, training=None, kernels=None):
        # The Dense layers hold the weights; the products run as 2-D matmuls over the
        # flattened positions, which TensorFlow fuses with the bias and the ReLU into one
        # kernel (the Dense layers' tensordot on [B, T, D] splits them into separate passes
        # over the [B*T, d_ff] activations, each a cost at every decoding step).
        # `kernels`: `step_kernels()`, or None to read the layer's weights.
        if kernels is None:
            kernels = self.step_kernels(inputs.dtype)
        inner, outer = kernels["inner"], kernels["outer"]
        hidden = self.inner.activation(positionwise(
            inputs, inner["kernel"], inner["bias"], [self.inner_dim]))  # [B, T, d_ff]
        hidden = self.dropout_layer(hidden, training=training)
        return positionwise(hidden, outer["kernel"], outer["bias"],
                            [inputs.shape[-1]])  # [B, T, D]

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"inner_dim": self.inner_dim, "dropout": self.dropout,
                       "activation": self.activation,
                       "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)})
        return config
