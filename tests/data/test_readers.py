"""Tests of reading parallel text from folders, including every kind of bad input."""

import gzip
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tf_transformer.data import readers, sample_parallel
from tf_transformer.data.readers import (
    data_error_message,
    read_parallel_dir,
    resolve_split,
    sample_parallel_dir,
    stream_parallel_dir,
)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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
    # An encoded surrogate (U+D800) is not UTF-8 either.
    _write(tmp_path / "train.en", b"fine\nalso fine\nsurrogate \xed\xa0\x80\n")
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


def _reference_pairs(sources, targets):
    """What reading the whole files used to give: Python's white space rule, empties out."""
    pairs = [(" ".join(s.split()), " ".join(t.split())) for s, t in zip(sources, targets)]
    return [(s.encode(), t.encode()) for s, t in pairs if s and t]


def test_stream_gives_the_pairs_of_a_whole_read(tmp_path):
    # Every white space Python's str.split() knows, in odd places, and lines of many batches.
    spaces = " \t\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2003\u2028\u2029\u202f\u205f\u3000"
    sources = [f"{spaces[i % len(spaces)]}word{i}{spaces[(i * 7) % len(spaces)]}x "
               for i in range(2500)]
    targets = [f"Wort{i}" if i % 97 else spaces for i in range(2500)]
    _write(tmp_path / "train.en", "\n".join(sources) + "\n", gz=True)
    _write(tmp_path / "train.de", "\r\n".join(targets) + "\r\n")
    expected = _reference_pairs(sources, targets)
    streamed = list(stream_parallel_dir(tmp_path, "train", "en", "de").as_numpy_iterator())
    assert streamed == expected and len(expected) == 2500 - 26
    # Tabs separate the columns of a TSV file: inside a sentence they are spaces there.
    _write(tmp_path / "dev.de-en.tsv", "".join(
        f"{t.replace(chr(9), ' ')}\t{s.replace(chr(9), ' ')}\tattribution\n"
        for s, t in zip(sources, targets)))
    assert list(stream_parallel_dir(tmp_path, "dev", "en", "de").as_numpy_iterator()) == expected


def _big_corpus_lines(count):
    """`count` distinct lines of about 80 bytes each."""
    return [f"line {i:07d} of a corpus too big to be worth loading into memory at once"
            for i in range(count)]


def test_stream_errors_on_big_files_name_file_and_line(tmp_path):
    # About 32 MB per file: the errors come from the end of the stream, the first pairs long
    # before, so nothing is read ahead of use.
    lines = _big_corpus_lines(400_000)
    _write(tmp_path / "train.en", ("\n".join(lines) + "\n").encode() + b"bad \xff byte\n")
    _write(tmp_path / "train.de", "\n".join(lines + ["last"]) + "\n")
    stream = stream_parallel_dir(tmp_path, "train", "en", "de")
    first = next(iter(stream))
    assert first[0].numpy() == lines[0].encode()
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        for _ in stream.batch(50_000):
            pass
    assert data_error_message(error.value) == (
        f"{tmp_path / 'train.en'}, line 400001: invalid UTF-8")

    _write(tmp_path / "valid.en-de.tsv", "".join(f"{line}\t{line}\n" for line in lines)
           + "a line without a tab\n")
    with pytest.raises(ValueError, match=r"valid.en-de.tsv, line 400001: expected two tab-sep"
                                         r"arated columns, got 1: a line without a tab"):
        read_parallel_dir(tmp_path, "validation", "en", "de")


def test_mismatched_big_files_name_both_counts_and_memory_stays_below_their_size(tmp_path):
    lines = _big_corpus_lines(600_000)
    _write(tmp_path / "train.en", "\n".join(lines) + "\n")
    _write(tmp_path / "train.de", "\n".join(lines + ["one more"]) + "\n", gz=True)
    file_bytes = os.path.getsize(tmp_path / "train.en")
    assert file_bytes > 40e6
    _write(tmp_path / "warmup.en", "a\nb\n")
    _write(tmp_path / "warmup.de", "c\nd\n", gz=True)
    # A fresh interpreter, so that its peak memory belongs to this read alone (after a small
    # read of the same shape has set up TensorFlow's machinery).
    code = f"""
import json, resource
import tensorflow as tf
from tf_transformer.data import data_error_message, stream_parallel_dir
list(stream_parallel_dir({str(tmp_path)!r}, "warmup", "en", "de"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    for _ in stream_parallel_dir({str(tmp_path)!r}, "train", "en", "de").batch(10_000):
        pass
    message = None
except tf.errors.InvalidArgumentError as error:
    message = data_error_message(error)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({{"message": message, "grown_bytes": grown * 1024}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=PROJECT_ROOT,
                            env=dict(os.environ, PYTHONPATH=PROJECT_ROOT,
                                     TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["message"] == (
        f"{tmp_path / 'train.en'} has 600000 lines but {tmp_path / 'train.de.gz'} has 600001: "
        "line i of one must translate line i of the other.")
    # Reading both files through grew the peak by far less than one file's size.
    assert report["grown_bytes"] < file_bytes / 2, report


def _numbered_corpus(directory, count, crlf=False, final_newline=True, edit=None):
    """train.en/train.de whose line i says "s i" / "t i" (`edit` may change source lines)."""
    end = "\r\n" if crlf else "\n"
    for lang, prefix in (("en", "s"), ("de", "t")):
        lines = [f"{prefix} {i}" for i in range(count)]
        if edit and lang == "en":
            edit(lines)
        _write(directory / f"train.{lang}", end.join(lines) + (end if final_newline else ""))


def test_sample_draws_aligned_pairs_uniformly_from_the_whole_file(tmp_path):
    _numbered_corpus(tmp_path, 20_000)
    sources, targets = sample_parallel_dir(tmp_path, "train", "en", "de", 2_000, seed=1)
    assert len(sources) == len(targets) == 2_000
    numbers = [int(source.split()[1]) for source in sources]
    assert targets == [f"t {i}" for i in numbers]  # line i of one side with line i of the other
    assert len(set(numbers)) == 2_000  # without replacement
    # Uniform over the whole file: each quarter holds about a quarter of the sample
    # (binomial standard deviation ~19; a head-only sample would put all 2,000 in the first).
    quarters = [sum(1 for i in numbers if q * 5_000 <= i < (q + 1) * 5_000) for q in range(4)]
    assert all(abs(count - 500) < 100 for count in quarters), quarters
    assert sample_parallel_dir(tmp_path, "train", "en", "de", 2_000, seed=1) == (sources, targets)
    assert sample_parallel_dir(tmp_path, "train", "en", "de", 2_000, seed=2) != (sources, targets)


@pytest.mark.parametrize("chunk_bytes", [5, 64, 1 << 24])
@pytest.mark.parametrize("crlf,final_newline", [(False, True), (True, False)])
def test_sample_of_a_small_split_is_the_whole_stream(tmp_path, monkeypatch, chunk_bytes, crlf,
                                                     final_newline):
    # Tiny read chunks put line ends on every chunk boundary and lines across several chunks.
    monkeypatch.setattr(readers, "_SAMPLE_CHUNK_BYTES", chunk_bytes)
    def edit(lines):
        lines[7] = "  s\u00a0 7 "  # white space to normalize
        lines[9] = " "  # an empty side: the pair is left out

    _numbered_corpus(tmp_path, 300, crlf=crlf, final_newline=final_newline, edit=edit)
    sample = sample_parallel_dir(tmp_path, "train", "en", "de", 300)
    stream = [(s.decode(), t.decode())
              for s, t in stream_parallel_dir(tmp_path, "train", "en", "de").as_numpy_iterator()]
    assert list(zip(*sample)) == stream
    assert len(stream) == 299 and ("s 7", "t 7") in stream and ("s 8", "t 8") in stream


def test_sample_reads_tab_separated_files_by_column(tmp_path):
    _write(tmp_path / "train.en-es.tsv", "Go.\tVe.\nHi.\tHola.\tCC-BY 2.0\n")
    assert sample_parallel_dir(tmp_path, "train", "es", "en", 10) == (["Ve.", "Hola."],
                                                                     ["Go.", "Hi."])
    _write(tmp_path / "dev.en-es.tsv", "Go.\tVe.\nno tab here\n")
    with pytest.raises(ValueError, match=r"dev.en-es.tsv, line 2: expected two tab"):
        sample_parallel_dir(tmp_path, "dev", "en", "es", 10)


def test_sample_errors_name_files_lines_and_counts(tmp_path):
    _write(tmp_path / "train.en", "one\ntwo\nthree\n")
    _write(tmp_path / "train.de", "eins\nzwei\n")
    with pytest.raises(ValueError) as error:
        sample_parallel_dir(tmp_path, "train", "en", "de", 10)
    assert (f"{tmp_path / 'train.en'} has 3 lines but {tmp_path / 'train.de'} has 2"
            in str(error.value))
    _write(tmp_path / "train.de", b"eins\nzwei\ndrei \xff\n")
    with pytest.raises(ValueError, match=r"train.de, line 3: invalid UTF-8"):
        sample_parallel_dir(tmp_path, "train", "en", "de", 10)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        sample_parallel_dir(tmp_path, "train", "en", "de", 0)


def test_gzipped_files_are_sampled_by_streaming(tmp_path):
    _write(tmp_path / "train.en", "a\nb\nc\n", gz=True)
    _write(tmp_path / "train.de", "x\ny\nz\n")
    assert sample_parallel_dir(tmp_path, "train", "en", "de", 2) is None
    sources, targets = sample_parallel(f"dir:{tmp_path}", "train", 2, source_lang="en",
                                       target_lang="de")
    pairs = {(s.decode(), t.decode()) for s, t in zip(sources, targets)}
    assert len(pairs) == 2 and pairs <= {("a", "x"), ("b", "y"), ("c", "z")}
