"""Tests for tf_transformer.tensorboard.summaries, read back with TensorBoard's event readers."""

import json

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.backend.event_processing import (
    data_provider,
    event_accumulator,
    plugin_event_multiplexer,
)
from tensorboard.plugins import base_plugin, projector
from tensorboard.plugins.projector import projector_plugin
from tensorboard.plugins.text import metadata as text_metadata
from tensorboard.util import tensor_util
from werkzeug import test as werkzeug_test

from tests.tensorboard.attention_data import (
    NUM_HEADS,
    NUM_LAYERS,
    PROBES,
    RUN,
    STEPS,
    synthetic_attention,
)
from tf_transformer.tensorboard import summaries

# Viridis at 1.0, the colour of a weight of 1 in the heatmaps.
VIRIDIS_TOP = np.array([253, 231, 37])


def load(run_dir):
    accumulator = event_accumulator.EventAccumulator(
        str(run_dir), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    return accumulator


def values(accumulator, tag):
    """Returns {step: ndarray} of a tensor tag."""
    return {
        event.step: tensor_util.make_ndarray(event.tensor_proto)
        for event in accumulator.Tensors(tag)
    }


def test_tags_are_the_documented_ones(attention_logdir):
    logdir, _ = attention_logdir
    accumulator = load(logdir / RUN)

    expected = set()
    for probe in PROBES:
        expected |= {f"attention/{probe}/{field}" for field in
                     ("source_tokens", "target_tokens", "encoder_self", "decoder_self", "cross")}
        expected.add(f"translation/{probe}")
    assert set(accumulator.Tags()["tensors"]) == expected


def test_tensor_summaries_carry_plugin_name_and_content(attention_logdir):
    logdir, _ = attention_logdir
    accumulator = load(logdir / RUN)

    metadata = accumulator.SummaryMetadata("attention/probe_1/cross")
    assert metadata.plugin_data.plugin_name == "attention"
    assert json.loads(metadata.plugin_data.content) == {
        "version": 1, "probe": "probe_1", "field": "cross"
    }
    translation = accumulator.SummaryMetadata("translation/probe_1")
    assert translation.plugin_data.plugin_name == text_metadata.PLUGIN_NAME


def test_attention_shapes_values_and_rows_sum_to_one(attention_logdir):
    logdir, written = attention_logdir
    accumulator = load(logdir / RUN)

    for probe, (source, target) in PROBES.items():
        expected_shapes = {
            "encoder_self": (NUM_LAYERS, NUM_HEADS, len(source), len(source)),
            "decoder_self": (NUM_LAYERS, NUM_HEADS, len(target), len(target)),
            "cross": (NUM_LAYERS, NUM_HEADS, len(target), len(source)),
        }
        for kind, shape in expected_shapes.items():
            by_step = values(accumulator, f"attention/{probe}/{kind}")
            assert sorted(by_step) == list(STEPS)
            for step, weights in by_step.items():
                assert weights.shape == shape
                np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
                np.testing.assert_array_equal(weights, written[probe, step][kind])


def test_tokens_and_translation_round_trip(attention_logdir):
    logdir, _ = attention_logdir
    accumulator = load(logdir / RUN)

    source, target = PROBES["probe_0"]
    for step in STEPS:
        source_read = values(accumulator, "attention/probe_0/source_tokens")[step]
        target_read = values(accumulator, "attention/probe_0/target_tokens")[step]
        assert [token.decode() for token in source_read] == source
        assert [token.decode() for token in target_read] == target
        translation = values(accumulator, "translation/probe_0")[step]
        assert translation.item().decode() == f"translation of probe_0 at {step}"


def test_heatmap_images_one_grid_per_kind_and_layer(tmp_path):
    source, target = PROBES["probe_0"]
    attention = synthetic_attention(len(source), len(target), seed=0)
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        summaries.write_attention(3, "probe_0", source, target, attention, images=True)
    accumulator = load(tmp_path)

    tags = accumulator.Tags()["tensors"]
    image_tags = {tag for tag in tags if tag.startswith("attention_heatmaps/")}
    assert image_tags == {
        f"attention_heatmaps/probe_0/{kind}/layer_{layer}"
        for kind in summaries.KINDS
        for layer in range(NUM_LAYERS)
    }
    # An image summary is [width, height, png...]: one PNG per (kind, layer), heads in a grid.
    encoded = values(accumulator, "attention_heatmaps/probe_0/cross/layer_1")[3]
    assert encoded.shape == (3,)
    png = tf.io.decode_png(encoded[2]).numpy()
    assert png.shape == (int(encoded[1]), int(encoded[0]), 3)


def test_heatmap_colour_follows_weights():
    tokens = ["a", "b", "c"]
    one_hot = np.broadcast_to(np.eye(3, dtype=np.float32), (2, 3, 3))  # [N, Tq, Tk]
    uniform = np.full((2, 3, 3), 1 / 3, dtype=np.float32)

    # The colourbar shows the top colour too, so count pixels: weight-1 cells add many.
    def top_pixels(image):
        return int(np.sum(np.all(np.abs(image.astype(int) - VIRIDIS_TOP) <= 2, axis=-1)))

    one_hot_image = summaries.attention_heatmap(one_hot, tokens, tokens)
    uniform_image = summaries.attention_heatmap(uniform, tokens, tokens)
    assert top_pixels(one_hot_image) > 5 * max(top_pixels(uniform_image), 1)


def test_position_encoding_heatmap(tmp_path):
    positions = np.arange(50)[:, np.newaxis]
    matrix = np.sin(positions / 10000 ** (np.arange(16)[np.newaxis, :] / 16))  # [P, D]
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        assert summaries.write_position_encoding(matrix)
    accumulator = load(tmp_path)

    assert accumulator.Tags()["tensors"] == ["position_encoding"]
    (event,) = accumulator.Tensors("position_encoding")
    assert event.step == 0
    assert accumulator.SummaryMetadata("position_encoding").plugin_data.plugin_name == "images"


def test_embeddings_for_projector(tmp_path):
    vocabulary = ["<pad>", "<unk>", "<s>", "</s>", "▁dog", "tab\there"]
    matrix = np.random.default_rng(0).normal(size=(len(vocabulary), 4)).astype(np.float32)

    config_path = summaries.write_embeddings(str(tmp_path), matrix, vocabulary)

    config = text_format.Parse(open(config_path).read(), projector.ProjectorConfig())
    (embedding,) = config.embeddings
    checkpoint = tf.train.load_checkpoint(str(tmp_path))
    np.testing.assert_array_equal(checkpoint.get_tensor(embedding.tensor_name), matrix)
    lines = (tmp_path / embedding.metadata_path).read_text(encoding="utf-8").splitlines()
    assert lines == ["<pad>", "<unk>", "<s>", "</s>", "▁dog", "tab\\there"]


def test_embeddings_served_by_projector_plugin(tmp_path):
    # Unshared vocabularies: two embeddings in one folder below the logdir.
    source = np.arange(6, dtype=np.float32).reshape(3, 2)
    target = -np.arange(8, dtype=np.float32).reshape(4, 2)
    run_dir = str(tmp_path / "embeddings")
    summaries.write_embeddings(run_dir, source, ["a", "b", "c"], name="source_embedding")
    summaries.write_embeddings(run_dir, target, ["w", "x", "y", "z"], name="target_embedding")

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path))
    plugin = projector_plugin.ProjectorPlugin(
        base_plugin.TBContext(logdir=str(tmp_path), data_provider=provider)
    )
    runs = werkzeug_test.Client(plugin.get_plugin_apps()["/runs"]).get("/runs").get_json()
    assert "embeddings" in runs
    client = werkzeug_test.Client(plugin.get_plugin_apps()["/tensor"])
    for name, matrix, tokens in (("source_embedding", source, "a\nb\nc\n"),
                                 ("target_embedding", target, "w\nx\ny\nz\n")):
        tensor_name = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
        query = {"run": "embeddings", "name": tensor_name}
        response = client.get("/tensor", query_string=query)
        assert response.status_code == 200, response.get_data(as_text=True)
        served = np.frombuffer(response.get_data(), dtype=np.float32).reshape(matrix.shape)
        np.testing.assert_array_equal(served, matrix)
        metadata = werkzeug_test.Client(plugin.get_plugin_apps()["/metadata"]).get(
            "/metadata", query_string=query
        )
        assert metadata.get_data(as_text=True) == tokens


def test_without_default_writer_nothing_is_written():
    source, target = PROBES["probe_0"]
    attention = synthetic_attention(len(source), len(target), seed=0)
    assert summaries.write_attention(0, "probe_0", source, target, attention) is False


@pytest.mark.parametrize(
    "change, message",
    [
        ({"probe": "a probe"}, "Probe identifiers"),
        ({"attention": {"self": np.ones((1, 1, 4, 4))}}, "Unknown attention kind 'self'"),
        ({"attention": {"cross": np.ones((1, 1, 4, 5))}}, r"\[L, N, 5, 4\].*got \(1, 1, 4, 5\)"),
        ({"attention": {"encoder_self": np.ones((4, 4))}}, r"got \(4, 4\)"),
        ({"source_tokens": []}, "source_tokens must be a non-empty"),
    ],
)
def test_bad_input_raises(tmp_path, change, message):
    source, target = PROBES["probe_0"]
    arguments = {
        "step": 0,
        "probe": "probe_0",
        "source_tokens": source,
        "target_tokens": target,
        "attention": synthetic_attention(len(source), len(target), seed=0),
    }
    arguments.update(change)
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        with pytest.raises(ValueError, match=message):
            summaries.write_attention(**arguments)


def test_embedding_rows_must_match_vocabulary(tmp_path):
    with pytest.raises(ValueError, match="3 rows but the vocabulary has 2 tokens"):
        summaries.write_embeddings(str(tmp_path), np.zeros((3, 2)), ["a", "b"])
