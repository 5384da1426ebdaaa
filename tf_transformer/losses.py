"""Masked, label-smoothed cross-entropy (section 5.4 of the paper).

Shape letters: B batch, T target length, V vocabulary.
"""

import keras
import tensorflow as tf

from tf_transformer.layers.masks import PAD_ID


@keras.saving.register_keras_serializable(package="tf_transformer")
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy over non-padding target tokens, with label smoothing.

    The smoothed target puts 1 - eps on the true token and eps / V on every token (as
    `keras.losses.CategoricalCrossentropy(label_smoothing=eps)` does). The result is the mean
    over tokens whose label is not `pad_id`, so short and long batches weigh each token alike.

    Args:
        label_smoothing: float, default 0.1 (the paper's eps_ls).
        pad_id: int, default 0. Labels equal to it are ignored.
        from_logits: bool, default True.
        name: str.

    Call arguments:
        y_true: [B, T] int labels.
        y_pred: [B, T, V] logits (or probabilities if `from_logits=False`).

    Returns:
        A float32 scalar (with the default reduction).

    References:
        Szegedy et al., "Rethinking the Inception Architecture", 2016; Vaswani et al., 2017,
        section 5.4.
    """

    def __init__(self, label_smoothing=0.1, pad_id=PAD_ID, from_logits=True,
                 name="masked_sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError("`label_smoothing` must be in [0, 1); received "
                             f"label_smoothing={label_smoothing}.")
        self.label_smoothing = label_smoothing
        self.pad_id = pad_id
        self.from_logits = from_logits

    def token_losses(self, y_true, y_pred):
        """Per-token smoothed cross-entropy, zero where the label is `pad_id`.

        Summing these and dividing by the number of real tokens gives the token mean; a trainer
        that spreads a batch over replicas or micro-batches divides the sum by the token count
        of the whole step instead (see `trainers.steps`).

        Returns:
            (losses [B, T] float32, mask [B, T] float32: 1.0 at real tokens, 0.0 at padding).
        """
        y_true = tf.cast(y_true, tf.int32)
        y_pred = tf.cast(y_pred, tf.float32)
        if self.from_logits:
            log_probs = tf.nn.log_softmax(y_pred, axis=-1)  # [B, T, V]
        else:
            log_probs = tf.math.log(tf.clip_by_value(y_pred, 1e-9, 1.0))  # [B, T, V]
        true_log_prob = tf.gather(log_probs, y_true, batch_dims=2)  # [B, T]
        vocab_size = tf.cast(tf.shape(log_probs)[-1], tf.float32)
        eps = self.label_smoothing
        token_loss = -(1.0 - eps) * true_log_prob - eps / vocab_size * tf.reduce_sum(
            log_probs, axis=-1)  # [B, T]
        mask = tf.cast(tf.not_equal(y_true, self.pad_id), tf.float32)  # [B, T]
        return token_loss * mask, mask

    def call(self, y_true, y_pred):
        token_loss, mask = self.token_losses(y_true, y_pred)  # [B, T]
        # Per-position losses weighted so that Keras's mean over all B*T positions is the mean
        # over real tokens. Returning [B, T] rather than a scalar also lets Keras divide the
        # loss by the number of replicas under tf.distribute, so gradients are averaged.
        positions = tf.cast(tf.size(mask), tf.float32)
        return token_loss * positions / tf.maximum(tf.reduce_sum(mask), 1.0)  # [B, T]

    def get_config(self):
        config = super().get_config()
        config.update({"label_smoothing": self.label_smoothing, "pad_id": self.pad_id,
                       "from_logits": self.from_logits})
        return config
