"""Tests for `tft-inspect` (serving/inspect.py).

By default they run against a small SavedModel built here whose `attention` signature follows
API.md: words as tokens, the upper-cased words as the "translation", and softmaxed weights that
mask padding (and the future, for decoder self-attention). Set TFT_INSPECT_EXPORT_DIR to a real
export (a version folder or EXPORT_BASE/NAME) to run the same checks against it; the checks
that depend on the fake model's outputs are skipped then.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from serving import inspect

SENTENCES = ["a dog runs on the beach", "two men"]
NUM_LAYERS = 2
NUM_HEADS = 2
REAL_EXPORT = os.environ.get("TFT_INSPECT_EXPORT_DIR")


class FakeAttentionModel(tf.Module):
    """Mimics the exported `attention` signature with tf ops and no trained weights."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def attention(self, text):
        words = tf.strings.split(text)  # [B, (S)]
        translated = tf.strings.upper(words)  # [B, (S)]
        starts = tf.fill([tf.shape(text)[0], 1], "<s>")
        target = tf.concat([tf.RaggedTensor.from_tensor(starts), translated], axis=1)  # [B, (T)]
        source_length = tf.cast(words.row_lengths(), tf.int32)  # [B]
        target_length = tf.cast(target.row_lengths(), tf.int32)  # [B]
        source_tokens = words.to_tensor("")  # [B, S]
        target_tokens = target.to_tensor("")  # [B, T]
        source_size = tf.shape(source_tokens)[1]
        target_size = tf.shape(target_tokens)[1]

        def weights(num_queries, num_keys, key_length, causal):
            # Head h prefers keys h positions back; layer l sharpens by (l + 1).
            queries = tf.range(num_queries, dtype=tf.float32)[:, None]  # [Tq, 1]
            keys = tf.range(num_keys, dtype=tf.float32)[None, :]  # [1, Tk]
            heads = tf.range(NUM_HEADS, dtype=tf.float32)[:, None, None]  # [N, 1, 1]
            layers = tf.range(1, NUM_LAYERS + 1, dtype=tf.float32)
            layers = layers[:, None, None, None]  # [L, 1, 1, 1]
            scores = -layers * tf.abs(queries - heads - keys)  # [L, N, Tq, Tk]
            may_attend = keys[None] < tf.cast(key_length, tf.float32)[:, None, None]  # [B, 1, Tk]
            if causal:
                may_attend &= keys <= queries  # [B, Tq, Tk]
            scores = tf.where(may_attend[:, None, None], scores[None], -1e9)  # [B, L, N, Tq, Tk]
            return tf.nn.softmax(scores, axis=-1)

        return {
            "source_tokens": source_tokens,
            "target_tokens": target_tokens,
            "translation": tf.strings.reduce_join(translated, axis=1, separator=" "),
            "source_length": source_length,
            "target_length": target_length,
            "encoder_self_attention": weights(source_size, source_size, source_length, False),
            "decoder_self_attention": weights(target_size, target_size, target_length, True),
            "cross_attention": weights(target_size, source_size, source_length, False),
        }


@pytest.fixture(scope="module")
def export_base(tmp_path_factory):
    """EXPORT_BASE/NAME holding versions 1 and 2 of the fake model (or the real export)."""
    if REAL_EXPORT:
        return REAL_EXPORT
    base = tmp_path_factory.mktemp("exports") / "translator"
    model = FakeAttentionModel()
    for version in (1, 2):
        tf.saved_model.save(
            model, str(base / str(version)), signatures={"attention": model.attention}
        )
    return str(base)


@pytest.fixture(scope="module")
def inspected(export_base, tmp_path_factory):
    logdir = tmp_path_factory.mktemp("inspect_logdir") / "inspect"
    results = inspect.inspect(export_base, str(logdir), SENTENCES, step=5, images=False)
    accumulator = event_accumulator.EventAccumulator(
        str(logdir), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    return results, accumulator


def read(accumulator, tag):
    (event,) = accumulator.Tensors(tag)
    assert event.step == 5
    return tensor_util.make_ndarray(event.tensor_proto)


def test_writes_every_summary_for_each_sentence(inspected):
    results, accumulator = inspected
    assert len(results) == len(SENTENCES)
    expected = set()
    for index in range(len(SENTENCES)):
        probe = f"sentence_{index}"
        expected |= {f"attention/{probe}/{field}" for field in
                     ("source_tokens", "target_tokens", "encoder_self", "decoder_self", "cross")}
        expected.add(f"translation/{probe}")
    assert set(accumulator.Tags()["tensors"]) == expected


def test_weights_are_trimmed_to_tokens_and_rows_sum_to_one(inspected):
    _, accumulator = inspected
    for index in range(len(SENTENCES)):
        probe = f"attention/sentence_{index}"
        source = read(accumulator, f"{probe}/source_tokens")
        target = read(accumulator, f"{probe}/target_tokens")
        assert b"" not in source.tolist() and b"" not in target.tolist()
        assert target[0] == b"<s>"
        encoder = read(accumulator, f"{probe}/encoder_self")
        decoder = read(accumulator, f"{probe}/decoder_self")
        cross = read(accumulator, f"{probe}/cross")
        assert encoder.shape[2:] == (len(source), len(source))
        assert decoder.shape[2:] == (len(target), len(target))
        assert cross.shape[2:] == (len(target), len(source))
        for weights in (encoder, decoder, cross):
            np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-4)
        # Decoder self-attention never looks ahead.
        assert np.all(np.triu(decoder, k=1) < 1e-6)


@pytest.mark.skipif(bool(REAL_EXPORT), reason="depends on the fake model's outputs")
def test_fake_model_tokens_translation_and_weights(inspected, export_base):
    results, accumulator = inspected
    source = read(accumulator, "attention/sentence_1/source_tokens")
    target = read(accumulator, "attention/sentence_1/target_tokens")
    assert source.tolist() == [b"two", b"men"]
    assert target.tolist() == [b"<s>", b"TWO", b"MEN"]
    assert read(accumulator, "translation/sentence_1").item() == b"TWO MEN"
    # Sentence 1 is padded to sentence 0's 6 words in the batch; the padding got no weight, so
    # trimming lost nothing: layer 0, head 0 of query 0 is softmax(-|0 - k|) over keys 0..1.
    expected = np.exp([0.0, -1.0]) / np.exp([0.0, -1.0]).sum()
    encoder = read(accumulator, "attention/sentence_1/encoder_self")
    np.testing.assert_allclose(encoder[0, 0, 0], expected, rtol=1e-5)
    assert results[1]["attention"]["cross"].shape == (NUM_LAYERS, NUM_HEADS, 3, 2)


def test_cli_writes_summaries_and_prints_translations(export_base, tmp_path, capsys):
    logdir = tmp_path / "cli"
    assert inspect.main(
        ["--export-dir", export_base, "--logdir", str(logdir), "--no-images", "two men"]
    ) == 0
    output = capsys.readouterr().out
    assert output.startswith("sentence_0: 'two men' -> ")
    assert tf.io.gfile.glob(str(logdir / "events.out.tfevents.*"))


def test_export_without_attention_signature_is_rejected(tmp_path):
    module = tf.Module()
    module.identity = tf.function(lambda text: {"text": text},
                                  input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(
        module, str(tmp_path / "1"), signatures={"serving_default": module.identity}
    )
    with pytest.raises(ValueError, match="has no 'attention' signature"):
        inspect.run_attention(str(tmp_path), ["hello"])


def test_missing_export_dir_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="neither a SavedModel nor a folder"):
        inspect.run_attention(str(tmp_path / "nothing"), ["hello"])
