"""Attention masks. True means "may attend".

Shape letters: B batch, T query (target) length, S key (source) length.
"""

import tensorflow as tf

from tf_transformer.config import PAD_ID


def padding_mask(token_ids: tf.Tensor, pad_id: int = PAD_ID) -> tf.Tensor:
    """Returns a [B, S] bool mask that is False at padding tokens."""
    return tf.not_equal(token_ids, pad_id)  # [B, S]


def causal_mask(query_length, key_length=None, offset=0) -> tf.Tensor:
    """Returns a [T, S] bool mask letting query t see keys at positions <= t + offset.

    `offset` is the position of the first query, used when one decoding step (T=1) attends to
    a cache of earlier keys.
    """
    key_length = query_length if key_length is None else key_length
    rows = tf.range(query_length)[:, None] + offset  # [T, 1]
    cols = tf.range(key_length)[None, :]  # [1, S]
    return cols <= rows  # [T, S]


def merge_masks(padding_mask=None, attention_mask=None):
    """Merges a key padding mask [B, S] and an attention mask [B or 1, T, S] into [B, 1, T, S].

    The extra axis broadcasts over heads. Returns None when both are None.
    """
    mask = None
    if padding_mask is not None:
        mask = tf.cast(padding_mask, tf.bool)[:, None, None, :]  # [B, 1, 1, S]
    if attention_mask is not None:
        attention_mask = tf.cast(attention_mask, tf.bool)
        if attention_mask.shape.rank == 2:
            attention_mask = attention_mask[None]  # [1, T, S]
        attention_mask = attention_mask[:, None, :, :]  # [B, 1, T, S]
        mask = attention_mask if mask is None else tf.logical_and(mask, attention_mask)
    return mask
