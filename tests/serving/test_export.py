"""The exported SavedModel: signatures, fresh-process equivalence, odd inputs, op set."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from serving.export import export
from tf_transformer import decoding
from tf_transformer.translator import Translator, split_attention, translate_texts
from tf_transformer.versions import next_version_dir

SENTENCES = ["I like to read books.", "Where is the train station?", "Tom is here."]
ODD_INPUTS = ["", "   \t ", "word " * 400, "東京は大きい都市です。", "Привет, мир!", "🙂🙂🙂",
              "Ça va très bien, merci."]


def _fresh_process(export_dir, code):
    """Runs `code` in a Python that imports only TensorFlow and TensorFlow Text."""
    program = (
        "import json, sys\nimport tensorflow as tf\nimport tensorflow_text\n"
        f"loaded = tf.saved_model.load({export_dir!r})\n"
        "assert not any(m.startswith(('tf_transformer', 'trainers', 'serving')) "
        "for m in sys.modules)\n" + code)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                            cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_saved_model_cli_lists_the_three_signatures(exported_translator):
    export_dir, _, _ = exported_translator
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--all", "--dir", export_dir], capture_output=True,
                           text=True, timeout=120).stdout
    signatures = {}
    for block in shown.split("signature_def['")[1:]:
        name = block.split("'", 1)[0]
        signatures[name] = block
    assert {"serving_default", "translate_beams", "attention"} <= set(signatures)

    def io(block, kind):
        part = block.split(f"contains the following {kind}(s):")[1]
        if kind == "input":
            part = part.split("contains the following output(s):")[0]
        entries = {}
        for chunk in part.split(f"{kind}s['")[1:]:
            name = chunk.split("'", 1)[0]
            dtype = chunk.split("dtype: ")[1].split()[0]
            shape = chunk.split("shape: ")[1].split("\n")[0]
            entries[name] = (dtype, shape)
        return entries

    assert io(signatures["serving_default"], "input") == {"text": ("DT_STRING", "(-1)")}
    assert io(signatures["serving_default"], "output") == {
        "translation": ("DT_STRING", "(-1)"), "score": ("DT_FLOAT", "(-1)")}
    assert io(signatures["translate_beams"], "input") == {
        "text": ("DT_STRING", "(-1)"), "beam_size": ("DT_INT32", "()"),
        "top_beams": ("DT_INT32", "()"), "alpha": ("DT_FLOAT", "()")}
    assert io(signatures["translate_beams"], "output") == {
        "translations": ("DT_STRING", "(-1, -1)"), "scores": ("DT_FLOAT", "(-1, -1)")}
    attention = io(signatures["attention"], "output")
    assert attention["source_tokens"] == ("DT_STRING", "(-1, -1)")
    assert attention["cross_attention"][0] == "DT_FLOAT"
    assert attention["cross_attention"][1].startswith("(-1, 2, 4,")  # tiny: 2 layers, 4 heads
    for name in ("translation", "target_tokens", "source_length", "target_length",
                 "encoder_self_attention", "decoder_self_attention"):
        assert name in attention
    for block in signatures.values():
        assert "shape: unknown_rank" not in block or "__saved_model_init_op" in block


def _in_process(model, tokenizers, sentences, beam_size=None):
    source_ids = tokenizers.source.tokenize_padded(tf.constant(sentences),
                                                   model.transformer_config.max_length)
    if beam_size is None:
        result = decoding.greedy_decode(model, source_ids)
        return [t.decode() for t in tokenizers.target.detokenize(result.ids).numpy()], \
            result.scores.numpy()
    result = decoding.beam_search(model, source_ids, beam_size=beam_size, top_beams=2,
                                  alpha=0.6)
    texts = [[t.decode() for t in tokenizers.target.detokenize(result.ids[:, k]).numpy()]
             for k in range(2)]
    return [list(pair) for pair in zip(*texts)], result.scores.numpy()


def test_fresh_process_gives_the_in_process_translations(exported_translator):
    export_dir, model, tokenizers = exported_translator
    answers = _fresh_process(export_dir, f"""
text = tf.constant({SENTENCES!r})
greedy = loaded.signatures["serving_default"](text=text)
beams = loaded.signatures["translate_beams"](text=text, beam_size=tf.constant(4),
                                             top_beams=tf.constant(2), alpha=tf.constant(0.6))
att = loaded.signatures["attention"](text=text)
print(json.dumps({{
    "translation": [t.decode() for t in greedy["translation"].numpy()],
    "score": greedy["score"].numpy().tolist(),
    "beams": [[t.decode() for t in row] for row in beams["translations"].numpy()],
    "beam_scores": beams["scores"].numpy().tolist(),
    "attention_translation": [t.decode() for t in att["translation"].numpy()],
    "source_tokens": [[t.decode() for t in row] for row in att["source_tokens"].numpy()],
    "target_tokens": [[t.decode() for t in row] for row in att["target_tokens"].numpy()],
    "cross": att["cross_attention"].numpy().tolist(),
}}))""")
    translations, scores = _in_process(model, tokenizers, SENTENCES)
    assert answers["translation"] == translations
    np.testing.assert_allclose(answers["score"], scores, rtol=1e-4)
    beams, beam_scores = _in_process(model, tokenizers, SENTENCES, beam_size=4)
    assert answers["beams"] == beams
    np.testing.assert_allclose(answers["beam_scores"], beam_scores, rtol=1e-4)
    assert answers["attention_translation"] == translations

    # The attention signature's weights are the model's, for its own tokens.
    source_ids = tokenizers.source.tokenize_padded(tf.constant(SENTENCES), 32)
    pieces = tokenizers.source.id_to_string(source_ids).numpy()
    assert answers["source_tokens"] == [[p.decode() if i else "" for p, i in zip(row, ids)]
                                        for row, ids in zip(pieces, source_ids.numpy())]
    target_ids = [[2] + [tokenizers.target._sentencepiece.string_to_id(p).numpy()
                         for p in row[1:] if p] for row in answers["target_tokens"]]
    width = max(map(len, target_ids))
    target_ids = np.array([row + [0] * (width - len(row)) for row in target_ids], np.int32)
    maps = model.attention_maps(source_ids, target_ids)
    cross = np.array(answers["cross"])[:, :, :, :width]
    np.testing.assert_allclose(cross, maps["cross"].numpy(), atol=1e-5)
    assert all(row[0] == "<s>" for row in answers["target_tokens"])


def test_odd_inputs_get_an_answer(exported_translator):
    export_dir, model, _ = exported_translator
    loaded = tf.saved_model.load(export_dir)
    greedy = loaded.signatures["serving_default"](text=tf.constant(ODD_INPUTS))
    assert greedy["translation"].shape == (len(ODD_INPUTS),)
    assert np.all(np.isfinite(greedy["score"].numpy()))
    beams = loaded.signatures["translate_beams"](
        text=tf.constant(ODD_INPUTS), beam_size=tf.constant(3), top_beams=tf.constant(3),
        alpha=tf.constant(0.6))
    assert beams["translations"].shape == (len(ODD_INPUTS), 3)
    att = loaded.signatures["attention"](text=tf.constant(ODD_INPUTS))
    max_length = model.transformer_config.max_length
    lengths = att["source_length"].numpy()
    assert lengths[2] == max_length  # 400 words are cut to max_length tokens
    assert lengths[0] == 0 and lengths[1] == 0
    assert lengths[3] > 0 and lengths[4] > 0  # unknown scripts become UNK tokens
    # Blank strings have no source token: an empty translation, score 0, in every signature.
    assert greedy["translation"].numpy()[:2].tolist() == [b"", b""]
    assert greedy["score"].numpy()[:2].tolist() == [0.0, 0.0]
    assert beams["translations"].numpy()[:2].tolist() == [[b""] * 3] * 2
    assert beams["scores"].numpy()[:2].tolist() == [[0.0] * 3] * 2
    assert att["translation"].numpy()[:2].tolist() == [b"", b""]
    assert all(greedy["translation"].numpy()[2:])
    # Each sentence on its own gives the same answer.
    for index in (0, 3, 6):
        alone = loaded.signatures["serving_default"](text=tf.constant([ODD_INPUTS[index]]))
        assert alone["translation"].numpy()[0] == greedy["translation"].numpy()[index]


def test_invalid_beam_arguments_are_invalid_argument_errors(exported_translator):
    loaded = tf.saved_model.load(exported_translator[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="top_beams must not exceed"):
        loaded.signatures["translate_beams"](text=tf.constant(["a"]), beam_size=tf.constant(2),
                                             top_beams=tf.constant(3), alpha=tf.constant(0.6))
    with pytest.raises(tf.errors.InvalidArgumentError, match="beam_size must be at least 1"):
        loaded.signatures["translate_beams"](text=tf.constant(["a"]), beam_size=tf.constant(0),
                                             top_beams=tf.constant(1), alpha=tf.constant(0.6))


def test_only_tensorflow_and_tensorflow_text_ops(exported_translator):
    # TF Serving 2.20 links TensorFlow's ops and TensorFlow Text's; nothing else may appear.
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(exported_translator[0], "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    ops -= {function.signature.name for function in graph.library.function}
    # Which ops a process with TensorFlow alone (no TF Text, no project code) does not know.
    check = subprocess.run(
        [sys.executable, "-c", "import json\nimport tensorflow as tf\n"
         "from tensorflow.python.framework import op_def_registry\n"
         f"print(json.dumps([op for op in {sorted(ops)!r} if op_def_registry.get(op) is None]))"],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    not_core = set(json.loads(check.stdout.strip().splitlines()[-1]))
    assert not_core, "expected the SentencePiece ops of TensorFlow Text"
    assert all(op.startswith(("Sentencepiece", "NormalizeUTF8")) for op in not_core), not_core
    assert not any("Addons" in op or "Xla" in op for op in ops)


def test_export_refuses_to_overwrite_and_picks_next_version(exported_translator, tmp_path):
    export_dir, model, tokenizers = exported_translator
    with pytest.raises(ValueError, match="already exists"):
        export(model, tokenizers, export_dir)
    base = os.path.dirname(export_dir)
    assert next_version_dir(base) == os.path.join(base, "2")
    assert not [e for e in os.listdir(base) if e.startswith(".export-")]


def test_cli_exports_a_model_dir(trained_model_dir, tmp_path):
    base = os.path.join(str(tmp_path), "translator")
    result = subprocess.run(
        [sys.executable, "-m", "serving.export", "--model-dir", trained_model_dir,
         "--export-dir", base, "--smoke-test", "Hello."],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(os.path.join(base, "1", "saved_model.pb"))
    assert "'Hello.' -> " in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "serving.export", "--model-dir", str(tmp_path / "nothing"),
         "--export-dir", base], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert missing.returncode == 2
    assert "not a model directory" in missing.stderr


def test_translator_functions_take_the_saved_model_as_the_in_process_translator(
        exported_translator):
    export_dir, model, tokenizers = exported_translator
    loaded, translator = tf.saved_model.load(export_dir), Translator(model, tokenizers)
    greedy = translate_texts(translator, SENTENCES)
    assert translate_texts(loaded, SENTENCES, batch_tokens=4) == greedy
    assert translate_texts(loaded, SENTENCES, beam_size=4) == translate_texts(
        translator, SENTENCES, beam_size=4)
    text = tf.constant(SENTENCES)
    for exported, own in zip(split_attention(loaded.attention(text)),
                             split_attention(translator.attention(text))):
        assert exported["source_tokens"] == own["source_tokens"]
        assert exported["target_tokens"] == own["target_tokens"]
        assert exported["translation"] == own["translation"]
        for kind, weights in own["attention"].items():
            np.testing.assert_allclose(exported["attention"][kind], weights, atol=1e-5)
