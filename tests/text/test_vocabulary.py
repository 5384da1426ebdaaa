"""Tests of vocabulary training and TokenizerPair."""

import numpy as np
import pytest
import tensorflow as tf

from tests.text.corpus import anki_pairs
from tf_transformer.text import (
    TokenizerPair,
    load_or_train_tokenizers,
    reservoir_sample,
    train_subword_tokenizer,
    train_tokenizers,
)


def test_shared_pair_is_one_object(shared_pair, tmp_path):
    assert shared_pair.shared
    assert shared_pair.source is shared_pair.target
    shared_pair.save(tmp_path)
    loaded = TokenizerPair.load(tmp_path)
    assert loaded.shared
    strings = tf.constant(["Hola.", "Hello."])
    assert loaded.target.tokenize(strings).to_list() == (
        shared_pair.target.tokenize(strings).to_list()
    )


def test_separate_vocabularies_from_dataset(tmp_path):
    pairs = anki_pairs("train", 2000)
    dataset = tf.data.Dataset.from_tensor_slices(
        ([english for english, _ in pairs], [spanish for _, spanish in pairs])
    )
    pair = train_tokenizers(
        dataset, tmp_path, vocab_size=500, shared=False, target_vocab_size=700
    )
    assert not pair.shared
    assert (pair.source.vocab_size, pair.target.vocab_size) == (500, 700)
    # Each vocabulary saw only its own language: "ñ" is unknown to the English one.
    unk_in_english = pair.source.tokenize(tf.constant(["mañana"])).to_list()[0]
    unk_in_spanish = pair.target.tokenize(tf.constant(["mañana"])).to_list()[0]
    assert 1 in unk_in_english and 1 not in unk_in_spanish
    loaded = TokenizerPair.load(tmp_path)
    assert not loaded.shared and loaded.target.vocab_size == 700


def test_load_or_train_reuses_saved_vocabulary(tmp_path):
    pairs = anki_pairs("train", 500)
    first = load_or_train_tokenizers(tmp_path, pairs, vocab_size=200)
    second = load_or_train_tokenizers(tmp_path, None)  # Nothing to train on: must load.
    strings = tf.constant(["Tom is here."])
    assert second.source.tokenize(strings).to_list() == first.source.tokenize(strings).to_list()


def test_bad_arguments(tmp_path):
    sentences = ["a b c", "d e f"]
    with pytest.raises(ValueError, match="vocab_size=5000"):
        train_subword_tokenizer(sentences, tmp_path, vocab_size=5000)
    with pytest.raises(ValueError, match="'wordpiece'"):
        train_subword_tokenizer(sentences, tmp_path, model_type="wordpiece")
    with pytest.raises(ValueError, match="vocab_size must be"):
        train_subword_tokenizer(sentences, tmp_path, vocab_size=3)
    with pytest.raises(ValueError, match="No non-empty sentences"):
        train_subword_tokenizer(["", "  "], tmp_path, vocab_size=10)
    with pytest.raises(ValueError, match="target_vocab_size=300 needs shared=False"):
        train_tokenizers([("a", "b")], tmp_path, vocab_size=200, target_vocab_size=300)


def test_reservoir_sample_draws_uniformly_from_the_whole_corpus():
    pairs = tf.data.Dataset.from_tensor_slices(
        ([f"s{i}" for i in range(20_000)], [f"t{i}" for i in range(20_000)]))
    sources, targets = reservoir_sample(pairs, 2000, seed=1)
    assert len(sources) == len(set(sources)) == 2000
    assert [t[1:] for t in targets] == [s[1:] for s in sources]  # pairs stay pairs
    positions = np.array([int(s[1:]) for s in sources])
    # Uniform over 0..19999: mean 10000, each quarter about a quarter of the sample
    # (4 standard deviations of slack).
    assert abs(positions.mean() - 10_000) < 4 * 5774 / np.sqrt(2000)
    quarters = np.bincount(positions // 5000, minlength=4)
    assert np.all(np.abs(quarters - 500) < 4 * np.sqrt(2000 * 0.25 * 0.75)), quarters
    # Seeded; a corpus smaller than the sample is taken whole, in order.
    assert reservoir_sample(pairs, 2000, seed=1) == (sources, targets)
    assert reservoir_sample(pairs, 2000, seed=2) != (sources, targets)
    small = [("a", "x"), ("b", "y")]
    assert reservoir_sample(small, 5) == (["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="size must be a positive integer, got 0"):
        reservoir_sample(small, 0)


def test_vocabulary_sample_covers_the_second_half_of_the_corpus(tmp_path):
    # The second half of the corpus uses words the first half never does.
    first = [f"alpha bravo charlie delta {i % 7}" for i in range(3000)]
    second = [f"zulu yankee xray whiskey {i % 7}" for i in range(3000)]
    pairs = tf.data.Dataset.from_tensor_slices((first + second, first + second))
    pair = train_tokenizers(pairs, tmp_path, vocab_size=36, sample_size=600, seed=0)
    # No UNK (id 1): the letters w, h, i, s, k, e, y of the second half were all sampled.
    for word_pieces in pair.source.tokenize(tf.constant(["whiskey", "charlie"])).to_list():
        assert word_pieces and 1 not in word_pieces
