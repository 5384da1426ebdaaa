"""Keras layers of the Transformer."""

from tf_transformer.layers.attention import MultiHeadAttention
from tf_transformer.layers.decoder import Decoder, DecoderLayer
from tf_transformer.layers.embedding import TokenEmbedding
from tf_transformer.layers.encoder import Encoder, EncoderLayer
from tf_transformer.layers.feed_forward import FeedForward
from tf_transformer.layers.masks import causal_mask, merge_masks, padding_mask
from tf_transformer.layers.position import (
                                            LearnedPositionEmbedding,
                                            SinusoidalPositionEncoding,
                                            sinusoid_table,
)
from tf_transformer.layers.residual import ResidualNorm

__all__ = [
    "Decoder", "DecoderLayer", "Encoder", "EncoderLayer", "FeedForward",
    "LearnedPositionEmbedding", "MultiHeadAttention", "ResidualNorm",
    "SinusoidalPositionEncoding", "TokenEmbedding", "causal_mask", "merge_masks",
    "padding_mask", "sinusoid_table",
]
