"""gRPC API tests with tensorflow-serving-api's stubs (serving/server/grpc_service.py)."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.serving.conftest import fixture_translation


@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(server.grpc_target)
    yield (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )
    channel.close()


def predict_request(model="translator", signature_name="", version=None, label=None, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def call_error(method, request):
    with pytest.raises(grpc.RpcError) as caught:
        method(request, timeout=30)
    return caught.value.code(), caught.value.details()


@pytest.mark.parametrize(
    "version, label, expected_version",
    [(None, None, 2), (1, None, 1), (None, "stable", 1), (None, "canary", 2)],
)
def test_predict_by_version_and_label(stubs, version, label, expected_version):
    prediction, _ = stubs
    sentences = ["hello big world", "a b"]
    response = prediction.Predict(
        predict_request(version=version, label=label, text=sentences), timeout=30
    )
    assert response.model_spec.name == "translator"
    assert response.model_spec.version.value == expected_version
    assert response.model_spec.signature_name == "serving_default"
    translation = tf.make_ndarray(response.outputs["translation"])
    assert [t.decode() for t in translation] == [fixture_translation(s) for s in sentences]
    bias = 0.5 if expected_version == 2 else 0.0
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["score"]), [3 + bias, 2 + bias])


def test_predict_scalars_and_output_filter(stubs):
    prediction, _ = stubs
    request = predict_request(
        signature_name="translate_beams",
        version=1,
        text=["x y"],
        beam_size=np.int32(4),
        top_beams=np.int32(2),
        alpha=np.float32(0.5),
    )
    request.output_filter.append("scores")
    response = prediction.Predict(request, timeout=30)
    assert list(response.outputs) == ["scores"]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["scores"]), [[2.0, 1.5]])


def test_metadata_and_status(stubs):
    prediction, models = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "translator"
    request.metadata_field.append("signature_def")
    response = prediction.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 2
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    default = signature_map.signature_def["serving_default"]
    assert default.inputs["text"].dtype == tf.string.as_datatype_enum
    assert set(default.outputs) == {"translation", "score"}

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "translator"
    status = models.GetModelStatus(status_request, timeout=30)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
    ]
    status_request.model_spec.version_label = "stable"
    assert [
        s.version for s in models.GetModelStatus(status_request, timeout=30).model_version_status
    ] == [1]


def test_classify_and_regress_answer_tf_servings_error_for_predict_signatures(stubs):
    prediction, _ = stubs
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "translator"
    classify.input.example_list.examples.add().features.feature["n"].int64_list.value.append(5)
    code, details = call_error(prediction.Classify, classify)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("No classification inputs found in SignatureDef: inputs {")
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "translator"
    assert call_error(prediction.Regress, regress) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Expected one output Tensor.")
    regress.model_spec.signature_name = "nope"
    assert call_error(prediction.Regress, regress) == (
        grpc.StatusCode.INVALID_ARGUMENT, "No signature was found with the name: nope")
    classify.model_spec.name = "nope"
    assert call_error(prediction.Classify, classify) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)")


def test_errors_have_tf_serving_codes_and_messages(stubs):
    prediction, models = stubs
    assert call_error(prediction.Predict, predict_request(model="nope", text=["a"])) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )
    assert call_error(prediction.Predict, predict_request(version=99, text=["a"])) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(translator, 99)",
    )
    assert call_error(prediction.Predict, predict_request(label="nope", text=["a"])) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: nope",
    )
    assert call_error(prediction.Predict, predict_request(signature_name="x", text=["a"])) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        'Serving signature name: "x" not found in signature def',
    )
    assert call_error(
        prediction.Predict, predict_request(signature_name="translate_beams", text=["a"])
    ) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 1!=4 len({text}) != "
        "len({alpha,beam_size,text,top_beams}). "
        "Sent extra: {}. Missing but required: {alpha,beam_size,top_beams}.",
    )
    assert call_error(prediction.Predict, predict_request(words=["a"])) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "input tensor alias not found in signature: words. "
        "Inputs expected to be in the set {text}.",
    )
    code, details = call_error(
        prediction.Predict, predict_request(text=np.array([1.0], np.float32))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "Expects arg 'text' to be string but float is provided"
    request = predict_request(text=["a"])
    request.output_filter.append("nope")
    assert call_error(prediction.Predict, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: nope "
        "Outputs expected to be in the set {score,translation}.",
    )
    metadata = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata.model_spec.name = "translator"
    assert call_error(prediction.GetModelMetadata, metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field",
    )
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "nope"
    assert call_error(models.GetModelStatus, status) == (
        grpc.StatusCode.NOT_FOUND,
        "Could not find any versions of model nope",
    )
    too_big = predict_request(text=["x" * (2 * 1024 * 1024)])
    code, _ = call_error(prediction.Predict, too_big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Still serving.
    response = prediction.Predict(predict_request(text=["still here"]), timeout=30)
    assert tf.make_ndarray(response.outputs["translation"]).tolist() == [b"HERE STILL"]
