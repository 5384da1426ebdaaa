"""Shared fixtures of the serving tests: a fixture SavedModel and a server process.

`write_fixture_translator` writes a small SavedModel whose signatures have the
shapes of the real translation export (see the export contract): the server
tests run against it while they must not depend on training a model. A fixture
pointing at a real exported translation model can sit beside
`fixture_export_base` and be handed to the same helpers.
"""

import os
import shutil
import textwrap

import pytest

from serving.server.process import ServerProcess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_NAME = "translator"
# score = number of words + bias; the versions differ only there.
VERSION_BIAS = {1: 0.0, 2: 0.5}


def fixture_translation(text):
    """What the fixture's serving_default answers for one sentence (pure Python)."""
    words = text.upper().split()
    return " ".join(reversed(words))


def write_fixture_translator(export_dir, score_bias=0.0):
    """Writes the fixture translator SavedModel to `export_dir`.

    Signatures:
        serving_default: text [None] string -> translation [None] string
            (upper-cased words in reverse order), score [None] float32
            (number of words + score_bias).
        translate_beams: text [None] string, beam_size [] int32, top_beams []
            int32, alpha [] float32 -> translations [None, None] string
            ("<translation> #k" for k < top_beams), scores [None, None] float32
            (score - alpha * k). Fails with INVALID_ARGUMENT if top_beams > beam_size.
        echo_bytes: raw [None] string -> reversed_bytes [None] string (bytes reversed).
        spin: seconds [] float64 -> elapsed [] float64, busy for `seconds`.

    Args:
        export_dir: str, the version folder to create.
        score_bias: float, added to every score.
    """
    import tensorflow as tf

    class FixtureTranslator(tf.Module):
        def __init__(self):
            super().__init__()
            self.bias = tf.Variable(score_bias, dtype=tf.float32, trainable=False)

        def _translate(self, text):
            words = tf.strings.split(tf.strings.upper(text))  # ragged [B, (W)]
            translation = tf.strings.reduce_join(tf.reverse(words, axis=[1]), axis=1, separator=" ")
            score = tf.cast(words.row_lengths(), tf.float32) + self.bias  # [B]
            return translation, score

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            translation, score = self._translate(text)
            return {"translation": translation, "score": score}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.string, name="text"),
                tf.TensorSpec([], tf.int32, name="beam_size"),
                tf.TensorSpec([], tf.int32, name="top_beams"),
                tf.TensorSpec([], tf.float32, name="alpha"),
            ]
        )
        def translate_beams(self, text, beam_size, top_beams, alpha):
            tf.debugging.assert_less_equal(
                top_beams, beam_size, message="top_beams must be <= beam_size"
            )
            translation, score = self._translate(text)
            batch = tf.shape(text)[0]
            ranks = tf.range(top_beams)  # [K]
            suffix = tf.strings.join([" #", tf.strings.as_string(ranks)])  # [K]
            translations = tf.strings.join(
                [
                    tf.tile(translation[:, None], [1, top_beams]),
                    tf.tile(suffix[None, :], [batch, 1]),
                ]
            )  # [B, K]
            scores = score[:, None] - alpha * tf.cast(ranks, tf.float32)[None, :]  # [B, K]
            return {"translations": translations, "scores": scores}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="raw")])
        def echo_bytes(self, raw):
            reversed_bytes = tf.strings.reduce_join(
                tf.reverse(tf.strings.bytes_split(raw), axis=[1]), axis=1
            )
            return {"reversed_bytes": reversed_bytes}

        @tf.function(input_signature=[tf.TensorSpec([], tf.float64, name="seconds")])
        def spin(self, seconds):
            start = tf.timestamp()
            elapsed = tf.while_loop(
                lambda elapsed: elapsed < seconds,
                lambda elapsed: [tf.timestamp() - start],
                [tf.constant(0.0, tf.float64)],
            )[0]
            return {"elapsed": elapsed}

    module = FixtureTranslator()
    signatures = {
        "serving_default": module.serve,
        "translate_beams": module.translate_beams,
        "echo_bytes": module.echo_bytes,
        "spin": module.spin,
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)


@pytest.fixture(scope="session")
def fixture_export_base(tmp_path_factory):
    """EXPORT_BASE with translator/1 and translator/2 (fixture models, scores differ by 0.5)."""
    base = tmp_path_factory.mktemp("exports")
    for version, bias in VERSION_BIAS.items():
        write_fixture_translator(str(base / MODEL_NAME / str(version)), score_bias=bias)
    return base


def copy_version(source_dir, target_dir):
    """Copies a version folder so it appears at once: copy beside it, then rename."""
    staging = f"{target_dir}.staging"
    shutil.copytree(source_dir, staging)
    os.rename(staging, target_dir)


def write_model_config(path, entries):
    """Writes a ModelServerConfig text file.

    Args:
        path: output file.
        entries: list of dicts with name, base_path and optional policy
            (text inside model_version_policy) and labels (dict).
    """
    blocks = []
    for entry in entries:
        lines = [
            f'name: "{entry["name"]}"',
            f'base_path: "{entry["base_path"]}"',
            'model_platform: "tensorflow"',
        ]
        if entry.get("policy"):
            lines.append(f"model_version_policy {{ {entry['policy']} }}")
        for label, version in entry.get("labels", {}).items():
            lines.append(f'version_labels {{ key: "{label}" value: {version} }}')
        blocks.append("  config {\n" + textwrap.indent("\n".join(lines), "    ") + "\n  }")
    with open(path, "w", encoding="utf-8") as f:
        f.write("model_config_list {\n" + "\n".join(blocks) + "\n}\n")


@pytest.fixture(scope="session")
def serving_layout(fixture_export_base, tmp_path_factory):
    """Model folders and config file of the shared test server.

    Models:
        translator: versions 1 and 2, policy all, labels stable -> 1, canary -> 2.
        latest: version 1 only at start (policy latest); tests add versions.
        broken: version 1; a test adds a broken version 2.
    """
    root = tmp_path_factory.mktemp("served")
    source = fixture_export_base / MODEL_NAME
    for model in ("latest", "broken"):
        os.makedirs(root / model)
        copy_version(str(source / "1"), str(root / model / "1"))
    config_path = root / "models.config"
    write_model_config(
        config_path,
        [
            {
                "name": MODEL_NAME,
                "base_path": str(source),
                "policy": "all {}",
                "labels": {"stable": 1, "canary": 2},
            },
            {"name": "latest", "base_path": str(root / "latest")},
            {"name": "broken", "base_path": str(root / "broken")},
        ],
    )
    return {"root": root, "config": str(config_path), "source": source}


@pytest.fixture(scope="session")
def server(serving_layout):
    """The shared test server: batching on, fast polling, small body limit (1 MiB)."""
    process = ServerProcess(
        [
            "--model-config-file",
            serving_layout["config"],
            "--enable-batching",
            "--max-batch-size",
            "16",
            "--batch-timeout-micros",
            "2000",
            "--file-system-poll-wait-seconds",
            "0.2",
            "--max-body-bytes",
            str(1024 * 1024),
            "--max-instances",
            "64",
        ]
    )
    yield process
    process.terminate()
