"""Tests for serving/server/service.py: Classify and Regress without a tf.Example parser."""

import grpc
import pytest
from tensorflow.core.protobuf import meta_graph_pb2

from serving.server import errors
from serving.server.service import Limits, ServingCore


def _signature(inputs, outputs, method):
    signature = meta_graph_pb2.SignatureDef(method_name=method)
    for name in inputs:
        signature.inputs[name].name = f"{name}:0"
    for name in outputs:
        signature.outputs[name].name = f"{name}:0"
    return signature


class _Manager:
    """Resolves every address to one servable with the given SignatureDefs."""

    def __init__(self, signature_defs):
        self.servable = type("Servable", (), {"signature_defs": signature_defs})()

    def resolve(self, model, version=None, label=None):
        if model != "m":
            raise errors.not_found(f"Servable not found for request: Latest({model})")
        return self.servable


SIGNATURES = {
    "serving_default": _signature(["text"], ["translation", "score"],
                                  "tensorflow/serving/predict"),
    "classify": _signature(["inputs"], ["classes", "scores"], "tensorflow/serving/classify"),
    "regress": _signature(["inputs"], ["outputs"], "tensorflow/serving/regress"),
}


def _error(method, model="m", signature_name=""):
    core = ServingCore(_Manager(SIGNATURES), executor=None, limits=Limits())
    with pytest.raises(errors.ServingError) as raised:
        core.reject_examples(method, model, None, None, signature_name)
    return raised.value.code, raised.value.message


def test_predict_signatures_fail_tf_servings_checks():
    code, message = _error("classify")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("No classification inputs found in SignatureDef: inputs {")
    assert _error("regress") == (grpc.StatusCode.INVALID_ARGUMENT, "Expected one output Tensor.")


def test_unknown_model_and_signature_get_tf_servings_errors():
    assert _error("classify", model="x") == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(x)")
    assert _error("regress", signature_name="nope") == (
        grpc.StatusCode.INVALID_ARGUMENT, "No signature was found with the name: nope")


def test_example_signatures_are_not_run():
    assert _error("classify", signature_name="classify")[0] == grpc.StatusCode.UNIMPLEMENTED
    assert _error("regress", signature_name="regress")[0] == grpc.StatusCode.UNIMPLEMENTED
    # A classification signature is not a regression one, and the other way round.
    assert _error("regress", signature_name="classify") == (
        grpc.StatusCode.INVALID_ARGUMENT, "Expected one output Tensor.")
    assert _error("classify", signature_name="regress")[1].startswith(
        'Expected classification signature outputs to contain at least one of "classes" or '
        '"scores".')
