"""Tests of reading parallel text from folders, including every kind of bad input."""

import gzip
import os

import pytest

from tf_transformer.data.readers import read_parallel_dir, resolve_split

# Multi30k is not part of the project (research use only); read it where the workspace keeps it.
MULTI30K = os.environ.get("MULTI30K_DIR", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "multi30k"))


def _write(path, text, gz=False):
    data = text.encode("utf-8") if isinstance(text, str) else text
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def test_aligned_files_plain_and_gz_with_whitespace_normalized(tmp_path):
    _write(tmp_path / "train.en", "A dog.\n  Two\u00a0 cats \r\nA\tbird.\n")
    _write(tmp_path / "train.de", "Ein Hund.\nZwei Katzen.\nEin Vogel.\n", gz=True)
    sources, targets = read_parallel_dir(tmp_path, "train", "en", "de")
    assert sources == ["A dog.", "Two cats", "A bird."]
    assert targets == ["Ein Hund.", "Zwei Katzen.", "Ein Vogel."]
    # The same files read the other way round.
    assert read_parallel_dir(tmp_path, "train", "de", "en") == (targets, sources)


def test_tab_separated_pairs_pick_columns_by_file_name(tmp_path):
    _write(tmp_path / "train.en-es.tsv", "Go.\tVe.\nHi.\tHola.\tCC-BY 2.0 attribution\n")
    assert read_parallel_dir(tmp_path, "train", "es", "en") == (["Ve.", "Hola."], ["Go.", "Hi."])
    _write(tmp_path / "dev.en-es.tsv", "Go.\tVe.\nno tab here\n", gz=True)
    with pytest.raises(ValueError, match=r"dev.en-es.tsv.gz, line 2: expected two tab"):
        read_parallel_dir(tmp_path, "dev", "en", "es")


def test_missing_files_are_named(tmp_path):
    _write(tmp_path / "train.en", "A dog.\n")
    with pytest.raises(FileNotFoundError, match=r"Found .*train.en but not .*train.de"):
        read_parallel_dir(tmp_path, "train", "en", "de")
    with pytest.raises(FileNotFoundError) as error:
        read_parallel_dir(tmp_path, "test", "en", "de")
    message = str(error.value)
    assert "test.en and test.de" in message and "test.en-de.tsv" in message
    assert "['train.en']" in message
    with pytest.raises(FileNotFoundError, match="Data folder not found"):
        read_parallel_dir(tmp_path / "nowhere", "train", "en", "de")


def test_different_line_counts_name_both_files_and_counts(tmp_path):
    _write(tmp_path / "train.en", "one\ntwo\nthree\n")
    _write(tmp_path / "train.de", "eins\nzwei\n", gz=True)
    with pytest.raises(ValueError) as error:
        read_parallel_dir(tmp_path, "train", "en", "de")
    message = str(error.value)
    assert f"{tmp_path / 'train.en'} has 3 lines" in message
    assert f"{tmp_path / 'train.de.gz'} has 2" in message


def test_invalid_utf8_names_file_and_line(tmp_path):
    _write(tmp_path / "train.en", b"fine\nalso fine\nbad \xff\xfe byte\n")
    _write(tmp_path / "train.de", "gut\nauch gut\nschlecht\n")
    with pytest.raises(ValueError, match=r"train.en, line 3: invalid UTF-8"):
        read_parallel_dir(tmp_path, "train", "en", "de")


def test_empty_lines_are_skipped_counted_and_keep_alignment(tmp_path):
    _write(tmp_path / "train.en", "one\n\nthree\nfour\n \n")
    _write(tmp_path / "train.de", "eins\nzwei\n\nvier\nfünf\n")
    expected = r"skipped 3 of 5 pairs with an empty side \(lines 2, 3, 5\)"
    with pytest.warns(UserWarning, match=expected):
        sources, targets = read_parallel_dir(tmp_path, "train", "en", "de")
    assert list(zip(sources, targets)) == [("one", "eins"), ("four", "vier")]


def test_only_newline_ends_a_line(tmp_path):
    # U+2028 and U+0085 are white space inside a sentence, never line ends.
    _write(tmp_path / "x.en", "a\u2028b\x85c\nd\r\n")
    _write(tmp_path / "x.de", "1\n2\n")
    assert read_parallel_dir(tmp_path, "x", "en", "de") == (["a b c", "d"], ["1", "2"])


def test_both_plain_and_gz_is_ambiguous(tmp_path):
    for gz in (False, True):
        _write(tmp_path / "train.en", "a\n", gz=gz)
    _write(tmp_path / "train.de", "b\n")
    with pytest.raises(ValueError, match="keep only one"):
        read_parallel_dir(tmp_path, "train", "en", "de")


def test_split_names_resolve_to_folder_names(tmp_path):
    for name in ("train.en", "val.en", "test_2016_flickr.en", "test_2017_flickr.en"):
        _write(tmp_path / name, "x\n")
    assert resolve_split(str(tmp_path), "validation") == "val"
    assert resolve_split(str(tmp_path), "test") == "test_2016_flickr"
    assert resolve_split(str(tmp_path), "test_2017_flickr") == "test_2017_flickr"


@pytest.mark.skipif(not os.path.isdir(MULTI30K), reason="Multi30k not available")
def test_multi30k_layout():
    sources, targets = read_parallel_dir(MULTI30K, "train", "de", "en")
    assert len(sources) == len(targets) == 29_000
    for sentence in sources + targets:
        assert sentence == sentence.strip() and "\t" not in sentence
        assert "\u00a0" not in sentence and "  " not in sentence
    validation, _ = read_parallel_dir(MULTI30K, "validation", "de", "en")
    assert len(validation) == 1014
