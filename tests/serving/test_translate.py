"""`tft-translate` on the real tiny export (`exported_translator`), in process and over REST.

The expected translations come from the export's own signatures, called one sentence at a
time, so batching, length sorting and order restoring are what is under test.
"""

import io
import os
import shutil
import socket
import subprocess
import sys

import pytest
import tensorflow as tf

from serving import translate
from serving.server.process import ServerProcess
from tests.serving.conftest import fixture_translation, write_fixture_translator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Lengths from 1 to 12 words in mixed order, with empty and whitespace-only lines between.
SOURCES = [
    "Where is the train station?",
    "",
    "Tom is here.",
    "I like to read books because they take me to places I have never seen.",
    "   ",
    "Hello.",
    "My brother lives in a big city near the sea.",
    "It's very cold today.",
    "",
    "Can you help me, please?",
    "We ate.",
]
REFERENCES = [
    "¿Dónde está la estación de tren?",
    "",
    "Tom está aquí.",
    "Me gusta leer libros porque me llevan a lugares que nunca he visto.",
    "",
    "Hola.",
    "Mi hermano vive en una gran ciudad cerca del mar.",
    "Hoy hace mucho frío.",
    "",
    "¿Puedes ayudarme, por favor?",
    "Comimos.",
]
# Few words per batch: several batches, each of sentences of similar length.
BATCH_WORDS = "12"


@pytest.fixture(scope="module")
def export(exported_translator):
    """(version folder, its loaded signatures)."""
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    export_dir = exported_translator[0]
    return export_dir, tf.saved_model.load(export_dir).signatures


@pytest.fixture
def files(tmp_path):
    source = tmp_path / "source.en"
    source.write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    reference = tmp_path / "reference.es"
    reference.write_text("\n".join(REFERENCES) + "\n", encoding="utf-8")
    return {"source": str(source), "reference": str(reference),
            "output": str(tmp_path / "output.es")}


def run(argv, capsys):
    """tft-translate in process: (exit status, stdout, stderr)."""
    status = translate.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def nbest_rows(output):
    """tft-translate's n-best lines as (index, rank, score, translation) tuples."""
    rows = [line.split("\t") for line in output.splitlines()]
    return [(index, rank, float(score), text) for index, rank, score, text in rows]


def alone(signatures, sentence):
    """The greedy translation of one sentence sent alone, or "" for an empty line."""
    if not sentence.strip():
        return ""
    answer = signatures["serving_default"](text=tf.constant([sentence]))
    return answer["translation"].numpy()[0].decode("utf-8")


def beams(signatures, sentences, beam_size, top_beams, alpha=0.6):
    answer = signatures["translate_beams"](
        text=tf.constant(sentences), beam_size=tf.constant(beam_size),
        top_beams=tf.constant(top_beams), alpha=tf.constant(alpha))
    return ([[t.decode("utf-8") for t in row] for row in answer["translations"].numpy()],
            answer["scores"].numpy())


# Candidates whose scores differ by less than this are ties: which of them a batch ranks first
# depends on float rounding, which changes with the batch's shape (an untrained model ties often).
TIE = 1e-4


def assert_same_nbest(texts, scores, expected_texts, expected_scores):
    """The same n-best list (same scores, same texts) up to the choice among tied candidates.

    A text may differ only where its candidate ties a neighbour in the expected list, or at the
    last rank, which a candidate left out of the list may tie (the scores still agree).
    """
    assert scores == pytest.approx(list(expected_scores[:len(scores)]), abs=2e-5)
    for rank, text in enumerate(texts):
        if text == expected_texts[rank]:
            continue
        neighbours = list(expected_scores[max(rank - 1, 0):rank]) + list(
            expected_scores[rank + 1:rank + 2])
        assert rank == len(texts) - 1 or any(
            abs(score - scores[rank]) < TIE for score in neighbours), (
            rank, text, expected_texts, expected_scores)


def test_order_is_kept_under_length_sorting_with_empty_lines(export, files, capsys,
                                                             monkeypatch):
    export_dir, signatures = export
    batches = []
    greedy = translate.ExportModel.greedy

    def recording_greedy(self, texts):
        batches.append(list(texts))
        return greedy(self, texts)

    monkeypatch.setattr(translate.ExportModel, "greedy", recording_greedy)
    status, out, err = run(["--export-dir", export_dir, "--input", files["source"],
                            "--output", files["output"], "--batch-tokens", BATCH_WORDS],
                           capsys)
    assert status == 0, err
    # The model saw the non-empty lines longest first, in several batches within the budget.
    words = [len(text.split()) for batch in batches for text in batch]
    assert len(batches) > 2 and len(words) == 8
    assert words == sorted(words, reverse=True)
    for batch in batches:  # a sentence longer than the budget goes alone
        assert len(batch) == 1 or len(batch) * len(batch[0].split()) <= int(BATCH_WORDS)
    assert out == ""
    with open(files["output"], encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[-1] == ""  # every line ends with "\n"
    assert lines[:-1] == [alone(signatures, sentence) for sentence in SOURCES]
    assert [i for i, line in enumerate(lines[:-1]) if not line] == [1, 4, 8]


def test_stdin_to_stdout_with_python_m_and_the_newest_version(exported_translator, tmp_path):
    """`python -m serving.translate` on EXPORT_BASE/NAME uses the highest version (here a
    fixture model with a recognisable answer), reading stdin and writing stdout."""
    base = tmp_path / "translator"
    shutil.copytree(exported_translator[0], base / "2")
    write_fixture_translator(str(base / "10"))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-m", "serving.translate", "--export-dir", str(base)],
        input="\n".join(SOURCES) + "\n", capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    expected = [fixture_translation(s) if s.strip() else "" for s in SOURCES]
    assert result.stdout == "".join(line + "\n" for line in expected)
    assert "sentence/s" not in result.stderr  # stderr is not a terminal: no progress bar


def test_nbest_lines(export, files, capsys):
    export_dir, signatures = export
    status, out, err = run(["--export-dir", export_dir, "--input", files["source"],
                            "--beam-size", "4", "--top-beams", "3", "--alpha", "0.6",
                            "--batch-tokens", BATCH_WORDS], capsys)
    assert status == 0, err
    rows = [line.split("\t") for line in out.split("\n")[:-1]]
    assert all(len(row) == 4 for row in rows)
    assert len(rows) == 3 * len(SOURCES)
    assert [int(row[0]) for row in rows] == [i for i in range(len(SOURCES)) for _ in range(3)]
    assert [int(row[1]) for row in rows] == [1, 2, 3] * len(SOURCES)
    for index, sentence in enumerate(SOURCES):
        block = rows[3 * index:3 * index + 3]
        scores = [float(row[2]) for row in block]
        if not sentence.strip():
            assert [row[3] for row in block] == ["", "", ""] and scores == [0.0, 0.0, 0.0]
            continue
        assert scores == sorted(scores, reverse=True)
        expected, expected_scores = beams(signatures, [sentence], beam_size=4, top_beams=4)
        assert_same_nbest([row[3] for row in block], scores, expected[0],
                          expected_scores[0].tolist())


def test_progress_bar_shows_sentences_per_second(files, tmp_path, monkeypatch):
    """On a terminal only, and not with --quiet (a fixture model: the bar is under test)."""
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    write_fixture_translator(str(tmp_path / "fixture"))
    for quiet in (False, True):
        stderr = Terminal()
        monkeypatch.setattr(sys, "stderr", stderr)
        argv = ["--export-dir", str(tmp_path / "fixture"), "--input", files["source"],
                "--output", files["output"]] + (["--quiet"] if quiet else [])
        assert translate.main(argv) == 0
        monkeypatch.undo()
        if quiet:
            assert stderr.getvalue() == ""
        else:
            assert "sentence/s" in stderr.getvalue()
            assert "8/8" in stderr.getvalue()  # the non-empty lines


@pytest.mark.parametrize("count", [1, 2])
def test_reference_scores_equal_sacrebleu_s_own(export, files, tmp_path, capsys, count):
    references = [files["reference"]]
    if count == 2:  # a second reference set: the first with its words in reverse order
        second = tmp_path / "second.es"
        second.write_text("".join(" ".join(line.split()[::-1]) + "\n" for line in REFERENCES),
                          encoding="utf-8")
        references.append(str(second))
    status, out, err = run(["--export-dir", export[0], "--input", files["source"],
                            "--output", files["output"], "--reference", *references], capsys)
    assert status == 0, err
    printed = [line for line in err.split("\n") if line.startswith(("BLEU|", "chrF2|"))]
    assert len(printed) == 2, err
    sacrebleu = subprocess.run(
        [sys.executable, "-m", "sacrebleu", *references, "--input", files["output"],
         "--metrics", "bleu", "chrf", "--width", "2", "--format", "text"],
        capture_output=True, text=True, check=True, timeout=120)
    assert printed == sacrebleu.stdout.strip().split("\n")
    assert f"nrefs:{count}|case:mixed|eff:no|tok:13a|smooth:exp|version:" in printed[0]


@pytest.fixture(scope="module")
def served(exported_translator):
    process = ServerProcess(["--model-name", "translator", "--model-base-path",
                             os.path.dirname(exported_translator[0]), "--max-instances", "3"])
    yield process
    process.terminate()


@pytest.mark.parametrize("decoding", [[], ["--beam-size", "3", "--top-beams", "3"]],
                         ids=["greedy", "nbest"])
def test_server_mode_equals_export_mode(export, served, files, capsys, decoding):
    """The server takes at most 3 rows per request: --max-sentences 3 keeps within it."""
    common = ["--input", files["source"], *decoding]
    status, from_export, err = run(["--export-dir", export[0], *common], capsys)
    assert status == 0, err
    server = ["--server", served.rest_url, "--model-name", "translator", *common]
    status, from_server, err = run([*server, "--max-sentences", "3"], capsys)
    assert status == 0, err
    assert from_server.count("\n") == from_export.count("\n") == (
        len(SOURCES) * (3 if decoding else 1))
    if not decoding:
        assert from_server == from_export
    else:
        # Batches of 3 rows against one batch of all rows.
        server_rows, export_rows = nbest_rows(from_server), nbest_rows(from_export)
        assert [row[:2] for row in server_rows] == [row[:2] for row in export_rows]
        for start in range(0, len(export_rows), 3):
            block, expected = server_rows[start:start + 3], export_rows[start:start + 3]
            assert_same_nbest([row[3] for row in block], [row[2] for row in block],
                              [row[3] for row in expected], [row[2] for row in expected])
    status, _, err = run([*server, "--max-sentences", "4"], capsys)
    assert status == 1
    assert "400" in err and "lower --max-sentences" in err


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["missing input", "not utf-8", "reference length", "top beams",
                                  "unreachable server", "server without scheme",
                                  "no saved model", "no model"])
def test_bad_input_fails_cleanly(export, files, tmp_path, capsys, case):
    short_reference = tmp_path / "short.es"
    short_reference.write_text("Hola.\nAdiós.\n", encoding="utf-8")
    latin1 = tmp_path / "latin1.en"
    latin1.write_bytes("Hello.\nGood morning.\nCafé au lait.\n".encode("latin-1"))
    url = f"http://127.0.0.1:{free_port()}"
    empty = tmp_path / "empty"
    empty.mkdir()
    source, output, model = files["source"], files["output"], ["--export-dir", export[0]]
    argv, expected = {
        "missing input": (
            [*model, "--input", str(tmp_path / "nope.en")], ["nope.en", "no such file"]),
        "not utf-8": (
            [*model, "--input", str(latin1)], ["latin1.en, line 3, is not UTF-8", "iconv"]),
        "reference length": (
            [*model, "--input", source, "--reference", files["reference"],
             str(short_reference)],
            ["short.es has 2 lines", f"has {len(SOURCES)}"]),
        "top beams": (
            [*model, "--input", source, "--beam-size", "2", "--top-beams", "3"],
            ["--top-beams 3", "--beam-size (2)"]),
        "unreachable server": (
            ["--server", url, "--input", source], [url, "tft-serve --model-name translator"]),
        "server without scheme": (
            ["--server", "localhost:8501", "--input", source], ["http://127.0.0.1:8501"]),
        "no saved model": (
            ["--export-dir", str(empty), "--input", source], [str(empty), "tft-export"]),
        "no model": (["--input", source], ["--export-dir", "--server"]),
    }[case]
    status, out, err = run([*argv, "--output", output], capsys)
    assert status == 2
    assert err.startswith("tft-translate: error: ")
    for text in expected:
        assert text in err
    assert out == ""
    assert not os.path.exists(output)
    assert not [name for name in os.listdir(tmp_path) if "tft-translate" in name]
