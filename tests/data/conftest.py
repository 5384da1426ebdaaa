"""Fixtures shared by the data tests: the prepared bundled corpus and a small tokenizer."""

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.text.corpus import anki_pairs
from tf_transformer.text import train_tokenizers


@pytest.fixture(scope="session")
def anki_data_dir(tmp_path_factory):
    """A TFDS data_dir with anki_spa_eng prepared in it (never ~/tensorflow_datasets)."""
    data_dir = tmp_path_factory.mktemp("tensorflow_datasets")
    tfds.builder("anki_spa_eng", data_dir=str(data_dir)).download_and_prepare()
    return str(data_dir)


@pytest.fixture(scope="session")
def small_pair(tmp_path_factory):
    """Shared vocabulary of 1000 pieces trained on 3000 English-Spanish training pairs."""
    directory = tmp_path_factory.mktemp("pipeline_tokenizer")
    return train_tokenizers(anki_pairs("train", 3000), directory, vocab_size=1000)


@pytest.fixture(scope="session")
def text_pairs():
    """2000 (english, spanish) validation pairs as a tf.data dataset."""
    pairs = anki_pairs("validation", 2000)
    return tf.data.Dataset.from_tensor_slices(
        ([english for english, _ in pairs], [spanish for _, spanish in pairs])
    )
