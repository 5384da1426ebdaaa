"""Tests for tf_transformer/translator.py and tf_transformer/model_dir.py (reading)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tf_transformer
from tf_transformer import decoding
from tf_transformer.model_dir import load_model
from tf_transformer.text import END_ID, START_ID, train_tokenizers
from tf_transformer.translator import (
    Translator,
    split_attention,
    translate_in_batches,
    translate_texts,
)

WORDS = ["apple", "river", "stone", "cloud", "green", "house", "light", "night"]
# No empty sentence: with every source position masked, what the decoder reads from the memory
# depends on how many padding columns the batch has.
SENTENCES = ["apple river stone", "cloud", "green house light night apple river",
             "night night", "stone cloud green house"]


def _echo_batches(sentences, batch_tokens, **options):
    """translate_in_batches with an upper-casing 'translator' that records its batches."""
    batches = []

    def translate_batch(batch):
        batches.append(list(batch))
        return [sentence.upper() for sentence in batch]

    results = translate_in_batches(sentences, translate_batch, batch_tokens=batch_tokens,
                                   **options)
    return results, batches


def test_batches_are_sorted_within_budget_and_results_in_input_order():
    sentences = ["a", "b b b b b", "c c", "d d d d d", "e e e", "f"]
    results, batches = _echo_batches(sentences, batch_tokens=10)
    assert results == [sentence.upper() for sentence in sentences]
    # Longest first, equal lengths in input order; 2 x 5 fits in 10, then 3 x 3 (4 x 3 does not).
    assert batches == [["b b b b b", "d d d d d"], ["e e e", "c c", "a"], ["f"]]


def test_a_sentence_longer_than_the_budget_goes_alone():
    sentences = ["one two three four five six", "one", "one two"]
    results, batches = _echo_batches(sentences, batch_tokens=4)
    assert batches == [["one two three four five six"], ["one two", "one"]]
    assert results == [sentence.upper() for sentence in sentences]


def test_length_function_sets_the_order_and_the_budget():
    sentences = ["aaaa", "b", "cc"]
    _, batches = _echo_batches(sentences, batch_tokens=4, length=len)
    assert batches == [["aaaa"], ["cc", "b"]]


def test_progress_callback_and_tqdm_bar(capsys):
    calls = []
    _echo_batches(["a", "b b b b b", "c c", "d d d d d", "e e e", "f"], batch_tokens=10,
                  progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 6), (5, 6), (6, 6)]
    _echo_batches(["a", "b b"], batch_tokens=2, progress=True)
    captured = capsys.readouterr()
    assert "2/2" in captured.err and captured.out == ""


def test_bad_budget_and_wrong_result_count_are_rejected():
    with pytest.raises(ValueError, match="batch_tokens"):
        translate_in_batches(["a"], lambda batch: batch, batch_tokens=0)
    with pytest.raises(ValueError, match="returned 0 results for a batch of 2"):
        translate_in_batches(["a", "b"], lambda batch: [], batch_tokens=10)
    assert translate_in_batches([], lambda batch: batch) == []


def _without_end(model):
    """Makes `model` say only words (never PAD, UNK, START or END), so that an untrained
    model's translations are not empty: they fill the decoding budget and differ with the
    source through the cross-attention."""
    decode_step = model.decode_step

    def step(token_ids, position, cache):
        logits, cache = decode_step(token_ids, position, cache)  # [B, V]
        reserved = tf.range(tf.shape(logits)[-1]) <= END_ID  # [V]: ids 0-3
        return tf.where(reserved, -1e9, logits), cache

    model.decode_step = step
    return model


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    """An untrained tiny model with a 28-piece vocabulary that never says END."""
    tf.keras.utils.set_random_seed(3)  # before any tokenizer exists: it resets eager resources
    root = tmp_path_factory.mktemp("translator")
    pairs = [(" ".join(WORDS[i:] + WORDS[:i]), " ".join(reversed(WORDS[i:] + WORDS[:i])))
             for i in range(len(WORDS))] * 30
    tokenizers = train_tokenizers(pairs, str(root / "tokenizer"), vocab_size=28)
    config = tf_transformer.TransformerConfig.preset(
        "tiny", vocab_size=tokenizers.source.vocab_size, max_length=16)
    return Translator(_without_end(tf_transformer.Transformer(config)), tokenizers)


def test_batched_translation_equals_one_sentence_at_a_time(translator):
    def scores(batch):
        return translator.translate(tf.constant(batch))["score"].numpy().tolist()

    alone = [scores([sentence])[0] for sentence in SENTENCES]
    assert len(set(alone)) == len(SENTENCES)  # the check below tells the sentences apart
    # A budget of 8 words makes 3 batches of mixed lengths, padded differently.
    batched = translate_in_batches(SENTENCES, scores, batch_tokens=8)
    np.testing.assert_allclose(batched, alone, rtol=1e-5)
    assert translate_texts(translator, SENTENCES, batch_tokens=8) == [
        translate_texts(translator, [sentence])[0] for sentence in SENTENCES]


def test_beam_of_one_without_length_penalty_is_greedy(translator):
    greedy = translate_texts(translator, SENTENCES)
    assert translate_texts(translator, SENTENCES, beam_size=1, alpha=0.0) == greedy


def test_attention_is_the_models_on_start_plus_translation(translator):
    sentences = ["apple river stone", "cloud"]
    results = split_attention(translator.attention(tf.constant(sentences)))
    assert [result["translation"] for result in results] == translate_texts(translator, sentences)
    model, source_tokenizer = translator.model, translator.source_tokenizer
    for sentence, result in zip(sentences, results):
        source_ids = source_tokenizer.tokenize(tf.constant([sentence])).to_tensor()  # [1, S]
        output_ids = decoding.greedy_decode(model, source_ids).ids[0].numpy()  # [C]
        ended = np.flatnonzero(output_ids == END_ID)
        tokens = output_ids[:ended[0] if ended.size else len(output_ids)]
        target_ids = tf.constant([[START_ID, *tokens][:16]], tf.int32)  # [1, T]
        real_source = source_ids.shape[1]
        assert result["source_tokens"] == [
            piece.decode() for piece in source_tokenizer.id_to_string(source_ids[0]).numpy()]
        assert result["target_tokens"] == [
            piece.decode() for piece in translator.target_tokenizer.id_to_string(
                target_ids[0]).numpy()]
        maps = model.attention_maps(source_ids, target_ids)
        for kind, weights in result["attention"].items():
            queries, keys = weights.shape[2:]
            # Trimmed to the real tokens, and equal to the model's own maps there.
            assert queries == (real_source if kind == "encoder_self" else target_ids.shape[1])
            assert keys == (target_ids.shape[1] if kind == "decoder_self" else real_source)
            np.testing.assert_allclose(weights, maps[kind][0, :, :, :queries, :keys],
                                       atol=1e-5)


def test_split_attention_names_missing_outputs():
    with pytest.raises(ValueError, match="cross_attention"):
        split_attention({"source_tokens": [], "target_tokens": [], "translation": [],
                         "source_length": [], "target_length": [],
                         "encoder_self_attention": [], "decoder_self_attention": []})


def test_from_model_dir_translates_like_the_model_it_was_saved_from(translator, tmp_path):
    model_dir = tmp_path / "model"
    (model_dir / "checkpoints").mkdir(parents=True)
    document = {"model": translator.model.transformer_config.to_dict(), "training": {},
                "data": {}}
    (model_dir / "config.json").write_text(json.dumps(document))
    source = translator.source_tokenizer
    tf_transformer.text.TokenizerPair(source, source).save(str(model_dir / "tokenizer"))
    translator.model.save_weights(str(model_dir / "checkpoints" / "last.weights.h5"))

    loaded = Translator.from_model_dir(str(model_dir), checkpoint="last")
    assert loaded.model.transformer_config == translator.model.transformer_config
    _without_end(loaded.model)
    assert translate_texts(loaded, SENTENCES) == translate_texts(translator, SENTENCES)
    with pytest.raises(ValueError, match="best.weights.h5 not found"):
        load_model(str(model_dir))
    with pytest.raises(ValueError, match="not a model directory"):
        load_model(str(tmp_path / "nothing"))
    os.remove(model_dir / "config.json")
    (model_dir / "config.json").write_text(json.dumps({"model": document["model"]}))
    with pytest.raises(ValueError, match=r"lacks the sections \['data', 'training'\]"):
        load_model(str(model_dir), checkpoint="last")


def test_max_length_beyond_the_model_is_rejected(translator):
    with pytest.raises(ValueError, match="max_length=17"):
        Translator(translator.model, tf_transformer.text.TokenizerPair(
            translator.source_tokenizer, translator.target_tokenizer), max_length=17)
