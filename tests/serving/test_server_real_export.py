"""The server on a real export: the tiny trained translator of `exported_translator`.

Answers over REST and gRPC equal the SavedModel's own signatures called in this
process, for all three signatures of the export contract.
"""

import os

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.server.process import ServerProcess

SENTENCES = ["I like to read books.", "Where is the train station?", "Tom is here."]


@pytest.fixture(scope="module")
def real_server(exported_translator):
    export_dir, _, _ = exported_translator
    base = os.path.dirname(export_dir)
    process = ServerProcess(
        ["--model-name", "translator", "--model-base-path", base, "--enable-batching"]
    )
    yield process, export_dir
    process.terminate()


@pytest.fixture(scope="module")
def loaded(real_server):
    import tensorflow_text  # noqa: F401 -- registers the tokenizer ops

    return tf.saved_model.load(real_server[1])


def test_rest_translations_equal_the_saved_model(real_server, loaded):
    server, _ = real_server
    expected = loaded.signatures["serving_default"](text=tf.constant(SENTENCES))
    answer = requests.post(
        server.url("/v1/models/translator:predict"), json={"instances": SENTENCES}, timeout=120
    )
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["translation"] for p in predictions] == [
        t.decode() for t in expected["translation"].numpy()
    ]
    np.testing.assert_allclose(
        [p["score"] for p in predictions], expected["score"].numpy(), rtol=1e-5
    )


def test_rest_beams_and_attention(real_server, loaded):
    server, _ = real_server
    beams = requests.post(
        server.url("/v1/models/translator/versions/1:predict"),
        json={
            "signature_name": "translate_beams",
            "inputs": {"text": SENTENCES[:2], "beam_size": 3, "top_beams": 2, "alpha": 0.6},
        },
        timeout=120,
    )
    assert beams.status_code == 200, beams.text
    expected = loaded.signatures["translate_beams"](
        text=tf.constant(SENTENCES[:2]),
        beam_size=tf.constant(3),
        top_beams=tf.constant(2),
        alpha=tf.constant(0.6),
    )
    outputs = beams.json()["outputs"]
    assert outputs["translations"] == [
        [t.decode() for t in row] for row in expected["translations"].numpy()
    ]
    attention = requests.post(
        server.url("/v1/models/translator:predict"),
        json={"signature_name": "attention", "instances": SENTENCES[:1]},
        timeout=120,
    )
    assert attention.status_code == 200, attention.text
    (row,) = attention.json()["predictions"]
    expected = loaded.signatures["attention"](text=tf.constant(SENTENCES[:1]))
    np.testing.assert_allclose(
        row["cross_attention"], expected["cross_attention"].numpy()[0], atol=1e-6
    )
    assert row["source_tokens"] == [t.decode() for t in expected["source_tokens"].numpy()[0]]


def test_grpc_predict_equals_the_saved_model(real_server, loaded):
    server, _ = real_server
    channel = grpc.insecure_channel(server.grpc_target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "translator"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(SENTENCES))
    response = stub.Predict(request, timeout=120)
    channel.close()
    expected = loaded.signatures["serving_default"](text=tf.constant(SENTENCES))
    assert (
        tf.make_ndarray(response.outputs["translation"]).tolist()
        == expected["translation"].numpy().tolist()
    )


def _beams_inputs(beam_size, top_beams):
    return {"text": SENTENCES[:1], "beam_size": beam_size, "top_beams": top_beams, "alpha": 0.6}


def _grpc_error(server, inputs):
    channel = grpc.insecure_channel(server.grpc_target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "translator"
    request.model_spec.signature_name = "translate_beams"
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    try:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=120)
    finally:
        channel.close()
    return caught.value.code(), caught.value.details()


def test_export_errors_are_400_and_invalid_argument_with_the_exports_message(real_server,
                                                                            loaded):
    server, _ = real_server
    url = server.url("/v1/models/translator:predict")
    # The export's own message for top_beams > beam_size, from its signature in this process
    # (without the "Graph execution error" preamble and the in-process op name).
    with pytest.raises(tf.errors.InvalidArgumentError) as in_process:
        loaded.signatures["translate_beams"](
            text=tf.constant(SENTENCES[:1]), beam_size=tf.constant(2), top_beams=tf.constant(3),
            alpha=tf.constant(0.6))
    message = in_process.value.message
    message = message[message.index("assertion failed:"):message.rindex(" [Op:")]
    assert message.startswith("assertion failed: [top_beams must not exceed beam_size]")
    rest = requests.post(url, json={"signature_name": "translate_beams",
                                    "inputs": _beams_inputs(2, 3)}, timeout=120)
    assert (rest.status_code, rest.json()) == (400, {"error": message})
    assert _grpc_error(server, {**_beams_inputs(np.int32(2), np.int32(3)),
                                "alpha": np.float32(0.6)}) == (
        grpc.StatusCode.INVALID_ARGUMENT, message)

    # A value of the wrong dtype: the message names the dtype of the export's signature.
    beam_size_spec = loaded.signatures["translate_beams"].structured_input_signature[1][
        "beam_size"]
    assert beam_size_spec.dtype == tf.int32
    rest = requests.post(url, json={"signature_name": "translate_beams",
                                    "inputs": _beams_inputs(2.5, 1)}, timeout=120)
    assert (rest.status_code, rest.json()) == (
        400, {"error": "JSON Value: 2.5 Type: Number is not of expected type: int32"})
    assert _grpc_error(server, {**_beams_inputs(np.float32(2.5), np.int32(1)),
                                "alpha": np.float32(0.6)}) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expects arg 'beam_size' to be int32 but float is provided")
    # The server still translates afterwards.
    assert requests.post(url, json={"instances": SENTENCES[:1]}, timeout=120).status_code == 200
