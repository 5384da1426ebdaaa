"""Tests for the Attention plugin's HTTP routes, served by TensorBoard's own WSGI application."""

import numpy as np
import pytest

from tests.tensorboard.attention_data import (
    NUM_HEADS,
    NUM_LAYERS,
    PLUGIN_ROOT,
    PROBES,
    RUN,
    STEPS,
    tensorboard_client,
)


@pytest.fixture(scope="module")
def client(attention_logdir):
    logdir, _ = attention_logdir
    return tensorboard_client(logdir)


def get_json(client, route, **query):
    response = client.get(PLUGIN_ROOT + route, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_plugins_listing_shows_attention_tab_as_es_module(client):
    listing = client.get("/data/plugins_listing").get_json()

    entry = listing["attention"]
    assert entry["enabled"] is True
    assert entry["tab_name"] == "Attention"
    assert entry["loading_mechanism"] == {
        "type": "IFRAME", "module_path": "/data/plugin/attention/index.js"
    }


def test_plugin_entry_imports_frontend_module(client):
    entry = client.get("/data/plugin_entry.html", query_string={"name": "attention"})
    assert entry.status_code == 200
    assert 'import("./index.js")' in entry.get_data(as_text=True)

    module = client.get(PLUGIN_ROOT + "/index.js")
    assert module.status_code == 200
    assert module.mimetype == "application/javascript"
    assert "export async function render()" in module.get_data(as_text=True)
    assert client.get(PLUGIN_ROOT + "/style.css").mimetype == "text/css"


def test_runs_and_tags(client):
    assert get_json(client, "/runs") == [RUN]

    tags = get_json(client, "/tags")
    assert tags[RUN]["attention/probe_1/cross"] == {"probe": "probe_1", "field": "cross"}
    assert len(tags[RUN]) == len(PROBES) * 5


def test_probes_and_steps(client):
    probes = get_json(client, "/probes", run=RUN)
    assert [probe["probe"] for probe in probes] == sorted(PROBES)
    assert probes[0]["source_tokens"] == PROBES["probe_0"][0]
    assert probes[0]["kinds"] == ["encoder_self", "decoder_self", "cross"]

    assert get_json(client, "/steps", run=RUN, probe="probe_1") == list(STEPS)


@pytest.mark.parametrize("kind", ["encoder_self", "decoder_self", "cross"])
def test_attention_data(client, attention_logdir, kind):
    _, written = attention_logdir
    source, target = PROBES["probe_1"]

    data = get_json(client, "/attention", run=RUN, probe="probe_1", step=2, kind=kind)

    tokens = {"source_tokens": source, "target_tokens": target}
    assert data["source_tokens"] == source
    assert data["target_tokens"] == target
    assert data["query_tokens"] == tokens[data["query_field"]]
    assert data["key_tokens"] == tokens[data["key_field"]]
    assert (data["num_layers"], data["num_heads"]) == (NUM_LAYERS, NUM_HEADS)
    weights = np.array(data["weights"])
    expected = written["probe_1", 2][kind]
    assert weights.shape == expected.shape
    np.testing.assert_allclose(weights, expected, atol=1e-4)


def test_cross_attention_rows_are_target_columns_source(client):
    data = get_json(client, "/attention", run=RUN, probe="probe_0", step=1, kind="cross")
    assert (data["query_field"], data["key_field"]) == ("target_tokens", "source_tokens")


@pytest.mark.parametrize(
    "route, query, status",
    [
        ("/probes", {"run": "nope"}, 404),
        ("/steps", {"run": RUN, "probe": "probe_9"}, 404),
        ("/attention", {"run": RUN, "probe": "probe_0", "step": 7, "kind": "cross"}, 404),
        ("/attention", {"run": RUN, "probe": "probe_0", "step": 1, "kind": "self"}, 400),
        ("/attention", {"run": RUN, "probe": "probe_0", "step": "x", "kind": "cross"}, 400),
        ("/attention", {"run": RUN, "probe": "probe_0", "kind": "cross"}, 400),
    ],
)
def test_bad_queries(client, route, query, status):
    response = client.get(PLUGIN_ROOT + route, query_string=query)
    assert response.status_code == status


def test_predicted_tokens_are_the_next_target_tokens(client):
    data = get_json(client, "/attention", run=RUN, probe="probe_0", step=1, kind="cross")
    assert data["predicted_tokens"] == ["▁Un", "▁perro", "▁corre", ".", "</s>"]


def test_without_export_there_is_no_sentence_box(client, monkeypatch):
    assert get_json(client, "/config") == {"export_dir": None}
    response = client.get(PLUGIN_ROOT + "/inspect", query_string={"text": "hi", "kind": "cross"})
    assert response.status_code == 404
    assert "TFT_ATTENTION_EXPORT=EXPORT_DIR" in response.get_data(as_text=True)


def test_export_from_environment_variable(attention_logdir, monkeypatch, tmp_path):
    monkeypatch.setenv("TFT_ATTENTION_EXPORT", str(tmp_path / "exports"))
    client = tensorboard_client(attention_logdir[0])
    assert get_json(client, "/config") == {"export_dir": str(tmp_path / "exports")}
    # Not an export: the error names the folder and says what is expected.
    response = client.get(PLUGIN_ROOT + "/inspect", query_string={"text": "hi", "kind": "cross"})
    assert response.status_code == 404
    assert "is neither a SavedModel nor a folder of numbered" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "query, message",
    [({"text": "  ", "kind": "cross"}, "text is empty"),
     ({"text": "x" * 1001, "kind": "cross"}, "at most 1000"),
     ({"text": "hi", "kind": "self"}, "Unknown kind"),
     ({"kind": "cross"}, "Missing query parameter 'text'")],
)
def test_bad_typed_sentences(attention_logdir, tmp_path, query, message):
    client = tensorboard_client(attention_logdir[0], attention_export_dir=str(tmp_path))
    response = client.get(PLUGIN_ROOT + "/inspect", query_string=query)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
