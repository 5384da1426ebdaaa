"""The model converted for CTranslate2 (`tft-export --format ctranslate2`) and
`tft-translate --ctranslate2`: the same network, so the same greedy translations."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

import tf_transformer as tft
from serving import export as export_cli
from serving import translate
from serving.ctranslate2_model import CTranslate2Translator, convert
from tests.serving.test_translate import SOURCES, nbest_rows, run
from tf_transformer import decoding
from tf_transformer.data import load_parallel
from tf_transformer.translator import Translator

pytest.importorskip("ctranslate2")


@pytest.fixture(scope="module")
def test_sentences():
    return [source.decode("utf-8") for source, _ in
            load_parallel("anki_spa_eng", "test").take(48).as_numpy_iterator()]


@pytest.fixture(scope="module")
def converted(exported_translator, tmp_path_factory):
    """(CTranslate2 folder of the trained tiny model, its SavedModel's signatures)."""
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    export_dir, model, tokenizers = exported_translator
    folder = convert(model, tokenizers, str(tmp_path_factory.mktemp("ct2") / "translator" / "1"))
    return folder, tf.saved_model.load(export_dir).signatures


def test_the_trained_model_translates_as_its_saved_model(converted, test_sentences):
    folder, signatures = converted
    # Blank sentences among them: no source token, so an empty translation in both.
    sentences = ["", *test_sentences[:24], " \t ", *test_sentences[24:]]
    expected = signatures["serving_default"](text=tf.constant(sentences))
    translations, scores = CTranslate2Translator(folder, compute_type="float32").greedy(
        sentences)
    assert translations == [t.decode("utf-8") for t in expected["translation"].numpy()]
    assert translations[0] == translations[25] == "" and all(translations[1:25])
    # Greedy scores are sums of log-probabilities in both.
    np.testing.assert_allclose(scores, expected["score"].numpy(), rtol=5e-4, atol=1e-3)


@pytest.mark.parametrize("options", [
    dict(norm_first=False, position_encoding="interleaved"),
    dict(norm_first=True, position_encoding="concatenated"),
    dict(norm_first=True, position_encoding="learned", share_embeddings=False,
         tie_output=False),
])
def test_every_architecture_option_converts_exactly(exported_translator, test_sentences,
                                                    tmp_path, options):
    # Random weights: an untrained model rarely ends, so most sentences run to their length
    # budget, which CTranslate2 must apply per sentence as the SavedModel does. Random biases
    # and norms, so that a weight put in the wrong place shows.
    _, trained, tokenizers = exported_translator
    config = tft.TransformerConfig.preset(
        "tiny", vocab_size=trained.transformer_config.source_vocab_size, dropout=0.0,
        max_length=trained.transformer_config.max_length, **options)
    model = tft.Transformer(config)
    rng = np.random.default_rng(0)
    for variable in model.weights:  # norms' scales about 1, everything else about 0
        centre = 1.0 if variable.name == "gamma" else 0.0
        variable.assign(rng.normal(centre, 0.1, variable.shape).astype(np.float32))
    reference = Translator(model, tokenizers)
    expected = reference.translate(tf.constant(test_sentences))
    source_ids = tokenizers.source.tokenize_padded(tf.constant(test_sentences),
                                                   config.max_length)
    ids = decoding.greedy_decode(model, source_ids, max_length=config.max_length).ids.numpy()
    unended = np.count_nonzero(np.all(ids != config.end_id, axis=1))
    assert unended >= len(test_sentences) // 4  # so the length budget is under test
    folder = convert(model, tokenizers, str(tmp_path / "ct2"))
    translations, scores = CTranslate2Translator(folder, compute_type="float32").greedy(
        test_sentences)
    assert translations == [t.decode("utf-8") for t in expected["translation"].numpy()]
    np.testing.assert_allclose(scores, expected["score"].numpy(), rtol=5e-4, atol=1e-3)


def test_int8_weights_are_stored_smaller_and_translate(exported_translator, test_sentences,
                                                       tmp_path):
    _, model, tokenizers = exported_translator
    full = convert(model, tokenizers, str(tmp_path / "float32"))
    small = convert(model, tokenizers, str(tmp_path / "int8"), quantization="int8")
    sizes = [os.path.getsize(os.path.join(folder, "model.bin")) for folder in (full, small)]
    assert sizes[1] < 0.5 * sizes[0]
    float32, _ = CTranslate2Translator(full).greedy(test_sentences)
    int8, _ = CTranslate2Translator(small).greedy(test_sentences)
    assert all(int8) and len(int8) == len(test_sentences)
    # Quantization moves the logits a little: most translations stay the same.
    assert sum(a == b for a, b in zip(float32, int8)) >= len(test_sentences) // 2


def test_tft_translate_ctranslate2_equals_export_dir(converted, exported_translator, tmp_path,
                                                     capsys):
    source = tmp_path / "source.en"
    source.write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    common = ["--input", str(source), "--batch-tokens", "12", "--quiet"]
    status, from_export, _ = run(["--export-dir", exported_translator[0], *common], capsys)
    assert status == 0
    base = os.path.dirname(converted[0])  # the newest numbered version is used
    status, from_ct2, _ = run(["--ctranslate2", base, "--compute-type", "float32", *common],
                              capsys)
    assert status == 0
    assert from_ct2 == from_export
    assert [line == "" for line in from_ct2.splitlines()] == [
        not s.strip() for s in SOURCES]


def test_tft_translate_ctranslate2_nbest(converted, tmp_path, capsys):
    source = tmp_path / "source.en"
    source.write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    status, out, _ = run(["--ctranslate2", converted[0], "--input", str(source), "--quiet",
                          "--beam-size", "4", "--top-beams", "3"], capsys)
    assert status == 0
    rows = nbest_rows(out)
    assert [(int(index), int(rank)) for index, rank, _, _ in rows] == [
        (i, r) for i in range(len(SOURCES)) for r in (1, 2, 3)]
    for i, sentence in enumerate(SOURCES):
        scores = [score for index, _, score, _ in rows if int(index) == i]
        assert scores == sorted(scores, reverse=True)
        texts = [text for index, _, _, text in rows if int(index) == i]
        assert (texts == ["", "", ""]) == (not sentence.strip())


def test_bad_ctranslate2_options_fail_cleanly(exported_translator, trained_model_dir, tmp_path,
                                              capsys):
    source = tmp_path / "source.en"
    source.write_text("Hello.\n", encoding="utf-8")
    status, _, err = run(["--ctranslate2", exported_translator[0], "--input", str(source)],
                         capsys)
    assert status == 2 and "tft-export --format ctranslate2" in err
    status, _, err = run(["--export-dir", exported_translator[0], "--compute-type", "int8",
                          "--input", str(source)], capsys)
    assert status == 2 and "--compute-type and --threads are for --ctranslate2" in err
    status = export_cli.main(["--model-dir", trained_model_dir, "--export-dir",
                              str(tmp_path / "out"), "--format", "ctranslate2",
                              "--dtype", "bfloat16"])
    assert status == 2 and "--dtype bfloat16 is for SavedModels" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    status = export_cli.main(["--model-dir", trained_model_dir, "--export-dir",
                              str(tmp_path / "out"), "--quantization", "int8"])
    assert status == 2 and "--quantization is for --format ctranslate2" in (
        capsys.readouterr().err)


def test_what_ctranslate2_cannot_express_is_refused(tmp_path):
    config = tft.TransformerConfig.preset("tiny", vocab_size=50, layer_norm_epsilon=1e-5)
    with pytest.raises(ValueError, match="epsilon 1e-6"):
        from serving.ctranslate2_model import build_spec
        build_spec(tft.Transformer(config), ["t"] * 50, ["t"] * 50)


def test_tft_export_format_ctranslate2(trained_model_dir, tmp_path, capsys):
    base = tmp_path / "exports" / "ct2"
    status = export_cli.main(["--model-dir", trained_model_dir, "--export-dir", str(base),
                              "--format", "ctranslate2", "--smoke-test", "Tom is here."])
    out = capsys.readouterr().out
    assert status == 0
    assert f"for CTranslate2 to {base / '1'}" in out
    assert "'Tom is here.' -> '" in out
    assert sorted(os.listdir(base / "1")) == [
        "config.json", "model.bin", "shared_vocabulary.json", "tf_transformer.json",
        "tokenizer"]
    assert translate.main(["--ctranslate2", str(base), "--input", os.devnull]) == 0


def test_without_ctranslate2_installed_the_error_says_how_to_install_it(
        converted, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import ctranslate2 fails
    source = tmp_path / "source.en"
    source.write_text("Hello.\n", encoding="utf-8")
    status, out, err = run(["--ctranslate2", converted[0], "--input", str(source)], capsys)
    assert status == 2 and out == ""
    assert "pip install 'tf-transformer[ctranslate2]'" in err
