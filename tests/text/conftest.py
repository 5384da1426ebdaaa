"""Tokenizers trained once per test session on a slice of the bundled corpus."""

import itertools

import pytest

from tf_transformer.data import anki_spa_eng_builder
from tf_transformer.text import train_tokenizers

TRAIN_PAIRS = 8000


def anki_pairs(split, limit=None):
    """(english, spanish) pairs of one split of the bundled corpus, in file order."""
    pairs = (
        (english, spanish)
        for _, english, spanish in anki_spa_eng_builder.read_pairs()
        if anki_spa_eng_builder.split_of(english) == split
    )
    return list(itertools.islice(pairs, limit))


@pytest.fixture(scope="session")
def shared_pair(tmp_path_factory):
    """A shared English-Spanish vocabulary of 2000 pieces trained on 8000 training pairs."""
    directory = tmp_path_factory.mktemp("shared_tokenizer")
    return train_tokenizers(anki_pairs("train", TRAIN_PAIRS), directory, vocab_size=2000)


@pytest.fixture(scope="session")
def tokenizer(shared_pair):
    return shared_pair.source
