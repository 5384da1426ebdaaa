"""Token accuracy over non-padding positions, and corpus BLEU of translations."""

import keras
import sacrebleu
import tensorflow as tf

from tf_transformer.layers.masks import PAD_ID


@keras.saving.register_keras_serializable(package="tf_transformer")
class MaskedAccuracy(keras.metrics.Metric):
    """Share of non-padding target tokens whose argmax prediction is right.

    Counts are summed (not averaged per batch), so the result is exact across batches of
    different sizes and across replicas.

    Args:
        pad_id: int, default 0. Labels equal to it are ignored.
        name: str, default "masked_accuracy".

    Call arguments (`update_state`):
        y_true: [B, T] int labels.
        y_pred: [B, T, V] logits or probabilities.
    """

    def __init__(self, pad_id=PAD_ID, name="masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_id = pad_id
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct",
                                         dtype="float32")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total",
                                       dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, tf.int32)
        predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int32)  # [B, T]
        mask = tf.cast(tf.not_equal(y_true, self.pad_id), tf.float32)  # [B, T]
        if sample_weight is not None:
            mask = mask * tf.cast(sample_weight, tf.float32)
        hits = tf.cast(tf.equal(predicted, y_true), tf.float32) * mask
        self.correct.assign_add(tf.reduce_sum(hits))
        self.total.assign_add(tf.reduce_sum(mask))

    def result(self):
        return tf.math.divide_no_nan(self.correct, self.total)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update({"pad_id": self.pad_id})
        return config


def corpus_bleu(hypotheses, references, lowercase=False):
    """Corpus sacreBLEU (13a tokenization, detokenized text) against one reference each.

    Args:
        hypotheses: list of str, the translations.
        references: list of str, one reference per translation.
        lowercase: bool, default False. Case-insensitive BLEU.

    Returns:
        float, BLEU in [0, 100].
    """
    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)],
                                 lowercase=lowercase).score
