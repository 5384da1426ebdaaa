"""Slices of the bundled English-Spanish corpus for tests."""

import itertools

from tf_transformer.data import anki_spa_eng_builder


def anki_pairs(split, limit=None):
    """Returns (english, spanish) pairs of one split of the bundled corpus, in file order.

    Args:
        split: str, "train", "validation" or "test".
        limit: int, default None. At most this many pairs.
    """
    pairs = (
        (english, spanish)
        for _, english, spanish in anki_spa_eng_builder.read_pairs()
        if anki_spa_eng_builder.split_of(english) == split
    )
    return list(itertools.islice(pairs, limit))
