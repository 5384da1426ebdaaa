"""Tests of the bundled corpus and its TFDS builder."""

import collections
import hashlib

import pytest
import tensorflow_datasets as tfds

import tf_transformer.data  # noqa: F401  (importing the package registers the builder)
from tf_transformer.data import anki_spa_eng_builder

TOTAL_PAIRS = 118_964


def test_bundled_file_ships_with_attribution():
    folder = anki_spa_eng_builder.source_path().parent
    assert (folder / "spa.txt.gz").is_file()
    assert "www.manythings.org/anki and tatoeba.org" in (folder / "_about.txt").read_text()


def _md5_percent(text):
    """The first 8 bytes of md5(text) as a big-endian integer, modulo 100 (via the hex digest)."""
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:16], 16) % 100


# (sentence, its md5 bucket, its split): buckets 0-89 train, 90-94 validation, 95-99 test.
# Written out so a changed hash, byte order or split boundary cannot go unnoticed.
KNOWN_SPLITS = [
    ("Go.", 21, "train"),
    ("sentence 36", 89, "train"),
    ("sentence 122", 90, "validation"),
    ("sentence 76", 94, "validation"),
    ("sentence 73", 95, "test"),
    ("sentence 13", 97, "test"),
]


@pytest.mark.parametrize("english, bucket, split", KNOWN_SPLITS)
def test_split_follows_the_md5_bucket_of_the_english_sentence(english, bucket, split):
    assert _md5_percent(english) == bucket
    assert anki_spa_eng_builder.split_of(english) == split


def test_split_is_a_function_of_the_english_sentence():
    counts = collections.Counter(
        anki_spa_eng_builder.split_of(f"sentence {i}") for i in range(20_000)
    )
    assert abs(counts["train"] / 20_000 - 0.90) < 0.01
    assert abs(counts["test"] / 20_000 - 0.05) < 0.01


def test_tfds_load_gives_disjoint_splits_by_english_sentence(anki_data_dir):
    english_by_split = {}
    sizes = {}
    for split in ("train", "validation", "test"):
        dataset = tfds.load("anki_spa_eng", split=split, data_dir=anki_data_dir)
        batches = dataset.map(lambda example: example["en"]).batch(8192)
        english = [sentence for batch in batches.as_numpy_iterator() for sentence in batch]
        sizes[split] = len(english)
        english_by_split[split] = set(english)
    print(f"\nanki_spa_eng pairs per split: {sizes}")
    assert sum(sizes.values()) == TOTAL_PAIRS
    assert abs(sizes["train"] / TOTAL_PAIRS - 0.90) < 0.01
    assert abs(sizes["validation"] / TOTAL_PAIRS - 0.05) < 0.01
    train, validation, test = (english_by_split[s] for s in ("train", "validation", "test"))
    assert not train & validation
    assert not train & test
    assert not validation & test


def test_features_and_known_pair(anki_data_dir):
    builder = tfds.builder("anki_spa_eng", data_dir=anki_data_dir)
    assert set(builder.info.features.keys()) == {"en", "es"}
    assert builder.info.supervised_keys == ("en", "es")
    _, english, spanish = next(
        pair for pair in anki_spa_eng_builder.read_pairs()
        if anki_spa_eng_builder.split_of(pair[1]) == "validation"
    )
    examples = tfds.load("anki_spa_eng", split="validation", data_dir=anki_data_dir)
    pairs = {(e["en"].decode(), e["es"].decode()) for e in examples.as_numpy_iterator()}
    assert (english, spanish) in pairs
