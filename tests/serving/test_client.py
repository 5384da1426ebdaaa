"""Tests for serving/client.py against the shared test server."""

import grpc
import numpy as np
import pytest

from serving.client import GrpcClient, RestClient, ServingClientError, b64


def test_rest_client(server):
    client = RestClient(server.rest_url, "translator")
    assert client.translate(["a b"]) == [{"translation": "B A", "score": 2.5}]
    assert client.translate_beams(["a b"], beam_size=2, top_beams=2, alpha=1.0) == {
        "translations": [["B A #0", "B A #1"]],
        "scores": [[2.5, 1.5]],
    }
    assert client.predict([b64(b"\x01\x02")], signature_name="echo_bytes") == [{"b64": "AgE="}]
    assert [s["version"] for s in client.status()] == ["2", "1"]
    assert "serving_default" in client.metadata()["metadata"]["signature_def"]["signature_def"]
    stable = RestClient(server.rest_url, "translator", label="stable")
    assert stable.translate(["a b"]) == [{"translation": "B A", "score": 2.0}]
    with pytest.raises(ServingClientError) as caught:
        RestClient(server.rest_url, "nope").translate(["a"])
    assert caught.value.status == 404
    assert caught.value.message == "Servable not found for request: Latest(nope)"
    with pytest.raises(ValueError, match="not both"):
        RestClient(server.rest_url, "translator", version=1, label="stable")


def test_grpc_client(server):
    client = GrpcClient(server.grpc_target, "translator", version=1)
    outputs, spec = client.predict({"text": ["a b c"]})
    assert spec.version.value == 1
    assert outputs["translation"].tolist() == [b"C B A"]
    np.testing.assert_allclose(outputs["score"], [3.0])
    assert [s.version for s in client.status().model_version_status] == [1]
    assert "translate_beams" in str(client.metadata())
    with pytest.raises(ServingClientError) as caught:
        client.predict({"words": ["a"]})
    assert caught.value.status == grpc.StatusCode.INVALID_ARGUMENT
    client.close()
