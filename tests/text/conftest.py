"""Tokenizers trained once per test session on a slice of the bundled corpus."""

import pytest

from tests.text.corpus import anki_pairs
from tf_transformer.text import train_tokenizers

TRAIN_PAIRS = 8000


@pytest.fixture(scope="session")
def shared_pair(tmp_path_factory):
    """A shared English-Spanish vocabulary of 2000 pieces trained on 8000 training pairs."""
    directory = tmp_path_factory.mktemp("shared_tokenizer")
    return train_tokenizers(anki_pairs("train", TRAIN_PAIRS), directory, vocab_size=2000)


@pytest.fixture(scope="session")
def tokenizer(shared_pair):
    return shared_pair.source
