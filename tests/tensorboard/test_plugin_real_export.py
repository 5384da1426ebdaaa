"""The Attention tab's sentence box against the real exported translator (trained tiny model)."""

import os

import numpy as np
import pytest

from serving import inspect
from tests.tensorboard.attention_data import PLUGIN_ROOT, tensorboard_client
from tf_transformer.tensorboard import summaries

# Not among the probes of the training run, nor the sentences of the other inspect tests.
SENTENCE = "My sister reads a long book every night."


@pytest.fixture(scope="module")
def client(exported_translator, tmp_path_factory):
    export_dir, _, _ = exported_translator
    # The model's base folder, as a user would give it: the newest version is used.
    return tensorboard_client(tmp_path_factory.mktemp("empty_logdir"),
                              attention_export_dir=os.path.dirname(export_dir))


@pytest.fixture(scope="module")
def inspected(exported_translator):
    """What tft-inspect's `run_attention` gives for the sentence."""
    export_dir, _, _ = exported_translator
    (result,) = inspect.run_attention(os.path.dirname(export_dir), [SENTENCE])
    return result


@pytest.mark.parametrize("kind", summaries.KINDS)
def test_typed_sentence_gives_the_weights_of_tft_inspect(client, inspected, exported_translator,
                                                         kind):
    _, model, _ = exported_translator
    expected = inspected

    response = client.get(PLUGIN_ROOT + "/inspect", query_string={"text": SENTENCE, "kind": kind})
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()

    assert data["text"] == SENTENCE
    assert data["translation"] == expected["translation"]
    assert data["source_tokens"] == expected["source_tokens"]
    assert data["target_tokens"] == expected["target_tokens"]
    weights = np.array(data["weights"])  # [L, N, Tq, Tk]
    config = model.transformer_config
    layers = config.num_encoder_layers if kind == "encoder_self" else config.num_decoder_layers
    assert weights.shape[:2] == (layers, config.num_heads)
    np.testing.assert_allclose(weights, expected["attention"][kind], atol=1e-4)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-3)
