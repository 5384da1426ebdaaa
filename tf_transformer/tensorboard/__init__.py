"""Attention summaries for TensorBoard and the Attention dashboard plugin that reads them."""

from tf_transformer.tensorboard.summaries import (
    KINDS,
    PLUGIN_NAME,
    attention_heatmap,
    write_attention,
    write_embeddings,
    write_position_encoding,
)

__all__ = [
    "KINDS",
    "PLUGIN_NAME",
    "attention_heatmap",
    "write_attention",
    "write_embeddings",
    "write_position_encoding",
]
