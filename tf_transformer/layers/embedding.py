"""Token embeddings scaled by sqrt(D), reusable as the output projection (weight tying).

Shape letters: B batch, T sequence length, D model width, V vocabulary.
"""

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_transformer")
class TokenEmbedding(keras.layers.Layer):
    """Looks up token vectors and multiplies them by sqrt(D) (section 3.4).

    The same matrix can serve the source, the target and, through `logits`, the pre-softmax
    linear transformation, as in the paper.

    Args:
        vocab_size: int. Vocabulary size V.
        width: int. Embedding width D.
        initializer: initializer or None, default None: normal with stddev D^-0.5, so that the
            scaled embeddings start with unit variance.

    Call arguments:
        token_ids: [B, T] int tensor.

    Returns:
        [B, T, D] tensor.

    References:
        Vaswani et al., 2017, section 3.4; Press & Wolf, "Using the Output Embedding to
        Improve Language Models", 2017.
    """

    def __init__(self, vocab_size, width, initializer=None, **kwargs):
        super().__init__(**kwargs)
        if vocab_size <= 0:
            raise ValueError(f"`vocab_size` must be positive; received vocab_size={vocab_size}.")
        if width <= 0:
            raise ValueError(f"`width` must be positive; received width={width}.")
        self.vocab_size = vocab_size
        self.width = width
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.RandomNormal(stddev=width ** -0.5))

    def build(self, input_shape=None):
        # Not cast on reading (autocast=False): `call` casts only the rows it gathers, and
        # `logits` the table; an autocast read would cast the whole [V, D] table at every
        # call in reduced precision, once per decoding step.
        self.embeddings = self.add_weight(name="embeddings", shape=(self.vocab_size, self.width),
                                          initializer=self.initializer, autocast=False)
        self.built = True

    def call(self, token_ids):
        vectors = tf.cast(tf.gather(self.embeddings, token_ids), self.compute_dtype)  # [B, T, D]
        return vectors * tf.cast(math.sqrt(self.width), self.compute_dtype)

    def logits(self, hidden):
        """Projects hidden states [B, T, D] to vocabulary logits [B, T, V] with the same matrix."""
        table = tf.cast(tf.convert_to_tensor(self.embeddings), hidden.dtype)
        # A 2-D matmul, not an einsum: the same product, but TensorFlow's CPU einsum kernel is
        # several times slower on a decoding step's small inputs.
        shape = tf.shape(hidden)
        flat = tf.matmul(tf.reshape(hidden, [-1, self.width]), table,
                         transpose_b=True)  # [B*T, V]
        return tf.reshape(flat, [shape[0], shape[1], self.vocab_size])  # [B, T, V]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.width,)

    def get_config(self):
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size, "width": self.width,
                       "initializer": keras.initializers.serialize(self.initializer)})
        return config
