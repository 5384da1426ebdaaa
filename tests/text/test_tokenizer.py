"""Tests of SubwordTokenizer: round trip, UNK, normalization, dense/ragged, SavedModel."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.text.corpus import anki_pairs
from tf_transformer.text import (
    END_ID,
    PAD_ID,
    START_ID,
    UNK_ID,
    SubwordTokenizer,
    normalize_text,
)


def _decode(tensor):
    return [value.decode("utf-8") for value in tensor.numpy()]


def test_reserved_ids_and_size(tokenizer):
    pieces = _decode(tokenizer.id_to_string(tf.constant([PAD_ID, UNK_ID, START_ID, END_ID])))
    assert pieces == ["<pad>", "<unk>", "<s>", "</s>"]
    assert tokenizer.vocab_size == 2000
    ids = tokenizer.tokenize(tf.constant(["Hola, ¿cómo estás?", "I am here."]))
    assert ids.dtype == tf.int32
    flat = ids.flat_values.numpy()
    assert flat.min() > END_ID  # No reserved id in ordinary text.
    assert flat.max() < tokenizer.vocab_size


def test_round_trip_on_held_out_sentences(tokenizer):
    held_out = [sentence for pair in anki_pairs("test") for sentence in pair]
    strings = tf.constant(held_out)
    restored = tokenizer.detokenize(tokenizer.tokenize(strings))
    equal = (restored == tokenizer.normalize(strings)).numpy()
    share = equal.mean()
    print(f"\nround trip: {equal.sum()} of {len(held_out)} held-out sentences "
          f"({100 * share:.2f}%) reproduce the normalized text")
    assert share >= 0.99


def test_unknown_characters_become_unk(tokenizer):
    ids = tokenizer.tokenize(tf.constant(["Hola 😀 世界", "Hola"])).to_list()
    assert ids[0][: len(ids[1])] == ids[1]
    assert ids[0].count(UNK_ID) == 2  # The emoji and the two CJK characters (one piece).
    assert UNK_ID not in ids[1]
    assert _decode(tokenizer.detokenize(tf.ragged.constant(ids)))[1] == "Hola"


def test_normalization_nfkc_and_whitespace(tokenizer):
    messy = tf.constant(["  ﬁne\u00a0\u00a0day\tＡ  ", "e\u0301"])
    assert _decode(normalize_text(messy)) == ["fine day A", "é"]
    assert _decode(normalize_text(tf.constant(["ÁRBOL Grande"]), lowercase=True)) == [
        "árbol grande"
    ]
    # Text that normalizes to the same string tokenizes to the same ids.
    ids = tokenizer.tokenize(tf.constant(["  fine\u00a0day ", "fine day"])).to_list()
    assert ids[0] == ids[1]


def test_lowercase_tokenizer(tmp_path):
    from tf_transformer.text import train_subword_tokenizer

    sentences = [english for english, _ in anki_pairs("train", 1000)]
    lower = train_subword_tokenizer(sentences, tmp_path, vocab_size=300, lowercase=True)
    ids = lower.tokenize(tf.constant(["HELLO Tom", "hello tom"])).to_list()
    assert ids[0] == ids[1]
    assert _decode(lower.detokenize(tf.ragged.constant(ids))) == ["hello tom"] * 2
    assert SubwordTokenizer.load(tmp_path).lowercase


def test_detokenize_dense_stops_at_end_and_skips_specials(tokenizer):
    ids = tokenizer.tokenize(tf.constant(["Tom is here."]))[0].numpy().tolist()
    other = tokenizer.tokenize(tf.constant(["No."]))[0].numpy().tolist()
    dense = tf.constant([[START_ID] + ids + [END_ID] + other + [PAD_ID, PAD_ID]])
    ragged = tf.ragged.constant([[START_ID] + ids + [END_ID] + other])
    assert _decode(tokenizer.detokenize(dense)) == ["Tom is here."]
    assert _decode(tokenizer.detokenize(ragged)) == ["Tom is here."]
    # Ids outside the vocabulary read as UNK instead of failing.
    outside = tokenizer.detokenize(tf.constant([[ids[0], tokenizer.vocab_size + 5, -1]]))
    assert _decode(outside)[0].count("⁇") == 2


def test_tokenize_padded(tokenizer):
    strings = tf.constant(["Tom is here.", "No.", ""])
    ragged = tokenizer.tokenize(strings)
    dense = tokenizer.tokenize_padded(strings)
    np.testing.assert_array_equal(dense.numpy(), ragged.to_tensor().numpy())
    assert dense.shape[1] == max(len(row) for row in ragged.to_list())
    assert dense.numpy()[2].tolist() == [PAD_ID] * dense.shape[1]
    capped = tokenizer.tokenize_padded(strings, max_length=2)
    np.testing.assert_array_equal(capped.numpy(), dense.numpy()[:, :2])


def test_works_inside_tf_function(tokenizer):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(strings):
        return tokenizer.detokenize(tokenizer.tokenize_padded(strings))

    assert _decode(round_trip(tf.constant(["¿Dónde está  Tom?"]))) == ["¿Dónde está Tom?"]


def test_save_and_load(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    loaded = SubwordTokenizer.load(tmp_path)
    strings = tf.constant(["Me gusta el café.", "I like tea."])
    assert loaded.tokenize(strings).to_list() == tokenizer.tokenize(strings).to_list()
    assert loaded.vocab_size == tokenizer.vocab_size
    with pytest.raises(ValueError, match="No tokenizer in"):
        SubwordTokenizer.load(tmp_path / "missing")


def test_exported_saved_model_reloads_in_fresh_process(tokenizer, tmp_path):
    module = tf.Module()
    module.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def encode(text):
        ids = module.tokenizer.tokenize_padded(text)
        return {"ids": ids, "text": module.tokenizer.detokenize(ids),
                "pieces": module.tokenizer.id_to_string(ids)}

    module.encode = encode
    export_dir = str(tmp_path / "saved_model")
    tf.saved_model.save(module, export_dir, signatures={"serving_default": encode})
    assert os.path.isfile(os.path.join(export_dir, "assets", "sentencepiece.model"))

    sentences = ["¿Dónde está Tom?", "I don't know 😀."]
    expected = encode(tf.constant(sentences))
    script = textwrap.dedent(
        """
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)
        loaded = tf.saved_model.load(sys.argv[1])
        out = loaded.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
        print(json.dumps({
            "ids": out["ids"].numpy().tolist(),
            "text": [t.decode() for t in out["text"].numpy()],
            "pieces": [[p.decode() for p in row] for row in out["pieces"].numpy()],
        }))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, export_dir, json.dumps(sentences)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reloaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert reloaded["ids"] == expected["ids"].numpy().tolist()
    assert reloaded["text"] == _decode(expected["text"])
    assert reloaded["text"][0] == "¿Dónde está Tom?"
    assert reloaded["pieces"] == [
        [piece.decode() for piece in row] for row in expected["pieces"].numpy()
    ]
