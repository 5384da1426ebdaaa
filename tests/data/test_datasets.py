"""Tests of dataset naming and loading: anki_spa_eng, dir:PATH, tfds:NAME."""

import pytest
import tensorflow_datasets as tfds

from tf_transformer.data import languages, load_parallel, load_splits, parse_dataset_name


def test_parse_dataset_name():
    assert parse_dataset_name("anki_spa_eng") == ("tfds", "anki_spa_eng")
    assert parse_dataset_name("dir:/data/m30k") == ("dir", "/data/m30k")
    assert parse_dataset_name("tfds:wmt14_translate/de-en") == ("tfds", "wmt14_translate/de-en")
    for bad in ("multi30k", "dir:", "hf:opus"):
        with pytest.raises(ValueError, match=repr(bad)):
            parse_dataset_name(bad)


def test_bundled_corpus_splits(anki_data_dir):
    splits = load_splits("anki_spa_eng", data_dir=anki_data_dir)
    assert (splits.source_lang, splits.target_lang) == ("en", "es")
    english, spanish = next(iter(splits.test))
    assert english.dtype.name == "string" and english.shape == ()
    reverse = load_parallel("anki_spa_eng", "test", "es", "en", data_dir=anki_data_dir)
    assert next(iter(reverse))[0].numpy() == spanish.numpy()


def test_folder_dataset(tmp_path):
    (tmp_path / "train.en").write_text("A dog.\nA cat.\n")
    (tmp_path / "train.de").write_text("Ein Hund.\nEine Katze.\n")
    (tmp_path / "val.en").write_text("A bird.\n")
    (tmp_path / "val.de").write_text("Ein Vogel.\n")
    dataset = load_parallel(f"dir:{tmp_path}", "train", "de", "en")
    assert list(dataset.as_numpy_iterator()) == [(b"Ein Hund.", b"A dog."),
                                                  (b"Eine Katze.", b"A cat.")]
    validation = load_parallel(f"dir:{tmp_path}", "validation", "en", "de")
    assert list(validation.as_numpy_iterator()) == [(b"A bird.", b"Ein Vogel.")]
    with pytest.raises(ValueError, match="needs source_lang and target_lang"):
        load_parallel(f"dir:{tmp_path}", "train")


@pytest.mark.parametrize(
    "name, expected_langs",
    [("tfds:ted_hrlr_translate/pt_to_en", ("pt", "en")),
     ("tfds:wmt14_translate/de-en", ("de", "en"))],
)
def test_tfds_catalog_translation_datasets(name, expected_langs):
    with tfds.testing.mock_data(num_examples=6):
        assert languages(name) == expected_langs
        pairs = list(load_parallel(name, "train").as_numpy_iterator())
        assert len(pairs) == 6
        assert all(isinstance(s, bytes) and isinstance(t, bytes) for s, t in pairs)
        reversed_pairs = list(
            load_parallel(name, "train", expected_langs[1], expected_langs[0])
            .as_numpy_iterator()
        )
        assert reversed_pairs == [(t, s) for s, t in pairs]
        with pytest.raises(ValueError, match=r"'fr' is not a feature.*available: \["):
            load_parallel(name, "train", "fr", "en")
