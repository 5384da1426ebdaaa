"""What encoder and decoder layers, and their stacks, have in common.

`TransformerBlock` holds the hyperparameters of one layer (validated once, one `get_config`)
and makes its sublayers; `TransformerStack` holds N layers of one kind plus, in pre-norm mode,
the final layer normalization.
"""

import keras

from tf_transformer.layers.attention import MultiHeadAttention
from tf_transformer.layers.feed_forward import FeedForward
from tf_transformer.layers.residual import ResidualNorm, layer_norm


def _check_positive(name, value):
    if value <= 0:
        raise ValueError(f"`{name}` must be positive; received {name}={value}.")


def _check_rate(name, value):
    if value is not None and not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1); received {name}={value}.")


class TransformerBlock(keras.layers.Layer):
    """Base of `EncoderLayer` and `DecoderLayer`: hyperparameters and sublayer factories.

    Args:
        num_heads: int. Attention heads; must divide the input width.
        inner_dim: int. Feed-forward inner width d_ff.
        dropout: float, default 0.0. Residual dropout.
        attention_dropout: float or None, default None (same as `dropout`).
        norm_first: bool, default False. Pre-layer-norm blocks.
        layer_norm_epsilon: float, default 1e-6.
    """

    def __init__(self, num_heads, inner_dim, dropout=0.0, attention_dropout=None,
                 norm_first=False, layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        _check_positive("num_heads", num_heads)
        _check_positive("inner_dim", inner_dim)
        _check_rate("dropout", dropout)
        _check_rate("attention_dropout", attention_dropout)
        self.num_heads = num_heads
        self.inner_dim = inner_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon

    def _attention(self, width, name):
        if width % self.num_heads:
            raise ValueError(f"The input width {width} is not divisible by "
                             f"num_heads={self.num_heads}.")
        rate = self.dropout if self.attention_dropout is None else self.attention_dropout
        return MultiHeadAttention(self.num_heads, width // self.num_heads, dropout=rate,
                                  dtype=self.dtype_policy, name=name)

    def _residual(self, name):
        return ResidualNorm(self.norm_first, self.dropout, self.layer_norm_epsilon,
                            dtype=self.dtype_policy, name=name)

    def _feed_forward(self):
        return FeedForward(self.inner_dim, dtype=self.dtype_policy, name="feed_forward")

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "inner_dim": self.inner_dim,
                       "dropout": self.dropout, "attention_dropout": self.attention_dropout,
                       "norm_first": self.norm_first,
                       "layer_norm_epsilon": self.layer_norm_epsilon})
        return config


class TransformerStack(keras.layers.Layer):
    """Base of `Encoder` and `Decoder`: `num_layers` blocks of `block_class`.

    Args:
        num_layers: int. Number of layers L.
        num_heads, inner_dim, dropout, attention_dropout, norm_first, layer_norm_epsilon:
            as in `TransformerBlock`.
    """

    block_class = None  # set by subclasses

    def __init__(self, num_layers, num_heads, inner_dim, dropout=0.0, attention_dropout=None,
                 norm_first=False, layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        _check_positive("num_layers", num_layers)
        self.num_layers = num_layers
        self.block_args = dict(num_heads=num_heads, inner_dim=inner_dim, dropout=dropout,
                               attention_dropout=attention_dropout, norm_first=norm_first,
                               layer_norm_epsilon=layer_norm_epsilon)
        self.norm_first = norm_first
        # Fail at construction, not at build, on bad block arguments.
        self.block_class(**self.block_args)

    def build(self, inputs_shape, *other_shapes):
        # One attribute per layer rather than a list: TensorFlow checkpoints and SavedModels
        # track attributes, not Keras's tracked lists.
        for i in range(self.num_layers):
            block = self.block_class(**self.block_args, dtype=self.dtype_policy,
                                     name=f"layer_{i}")
            setattr(self, f"layer_{i}", block)
            block.build(inputs_shape, *other_shapes)
        self.final_norm = None
        if self.norm_first:
            self.final_norm = keras.layers.LayerNormalization(
                epsilon=self.block_args["layer_norm_epsilon"], dtype=self.dtype_policy,
                name="final_norm")
            self.final_norm.build(inputs_shape)
        self.built = True

    @property
    def blocks(self):
        """The layers of the stack, bottom first."""
        return [getattr(self, f"layer_{i}") for i in range(self.num_layers)]

    def _finish(self, x):
        return x if self.final_norm is None else layer_norm(self.final_norm, x)

    def compute_output_shape(self, inputs_shape, *other_shapes):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_layers": self.num_layers, **self.block_args})
        return config
