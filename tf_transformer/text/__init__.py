"""Subword vocabularies and the in-graph tokenizer."""

from tf_transformer.text.normalization import normalize_text
from tf_transformer.text.tokenizer import END_ID, PAD_ID, START_ID, UNK_ID, SubwordTokenizer
from tf_transformer.text.vocabulary import (
    TokenizerPair,
    load_or_train_tokenizers,
    reservoir_sample,
    train_subword_tokenizer,
    train_tokenizers,
)

__all__ = [
    "END_ID",
    "PAD_ID",
    "START_ID",
    "UNK_ID",
    "SubwordTokenizer",
    "TokenizerPair",
    "load_or_train_tokenizers",
    "normalize_text",
    "reservoir_sample",
    "train_subword_tokenizer",
    "train_tokenizers",
]
