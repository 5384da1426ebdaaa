"""Tests for serving/server/json_tensor.py: TF Serving's JSON <-> tensor rules and messages."""

import json

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from serving.server import errors, json_tensor


def _infos(**dtypes):
    return {name: meta_graph_pb2.TensorInfo(dtype=dtype) for name, dtype in dtypes.items()}


TEXT = _infos(text=types_pb2.DT_STRING)
BEAMS = _infos(text=types_pb2.DT_STRING, beam_size=types_pb2.DT_INT32, alpha=types_pb2.DT_FLOAT)


def parse(body, infos=TEXT):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return json_tensor.parse_predict_request(body, lambda signature_name: infos)


def error_of(body, infos=TEXT):
    with pytest.raises(errors.ServingError) as caught:
        parse(body, infos)
    return caught.value


def test_row_format_single_input_stacks_instances():
    request = parse({"instances": ["a b", "c"]})
    assert request.format == json_tensor.ROW
    assert request.signature_name == ""
    assert request.inputs["text"].tolist() == [b"a b", b"c"]


def test_row_format_named_inputs_and_column_format_scalars():
    request = parse({"instances": [{"text": "x", "beam_size": 4, "alpha": 0.5}] * 2}, BEAMS)
    assert request.inputs["beam_size"].dtype == np.int32
    assert request.inputs["beam_size"].tolist() == [4, 4]
    column = parse(
        {"signature_name": "beams", "inputs": {"text": ["x", "y"], "beam_size": 4, "alpha": 1}},
        BEAMS,
    )
    assert column.format == json_tensor.COLUMN
    assert column.signature_name == "beams"
    assert column.inputs["beam_size"].shape == ()
    assert column.inputs["alpha"].dtype == np.float32 and float(column.inputs["alpha"]) == 1.0
    assert column.inputs["text"].tolist() == [b"x", b"y"]


def test_b64_and_invalid_utf8_survive_as_bytes():
    request = parse(b'{"instances": [{"b64": "/w=="}, "caf\xc3\xa9", "\xff\xfe"]}')
    assert request.inputs["text"].tolist() == [b"\xff", "café".encode(), b"\xff\xfe"]


def test_nested_lists_build_rank_two_tensors():
    request = parse({"inputs": [[1.5, 2], [3, 4]]}, _infos(x=types_pb2.DT_FLOAT))
    np.testing.assert_array_equal(request.inputs["x"], np.array([[1.5, 2], [3, 4]], np.float32))


@pytest.mark.parametrize(
    "body, infos, message",
    [
        (b"", TEXT, "JSON Parse error: The document is empty"),
        (b"not json", TEXT, "JSON Parse error: Invalid value. at offset: 0"),
        (
            b'{"instances": ["a"] "x"}',
            TEXT,
            "JSON Parse error: Missing a comma or '}' after an object member. " "at offset: 20",
        ),
        (
            b'{"instances": ["a" "b"]}',
            TEXT,
            "JSON Parse error: Missing a comma or ']' after an array element. " "at offset: 19",
        ),
        (b'["a"]', TEXT, 'JSON Value: [\n    "a"\n] Is not object'),
        (
            {"signature_name": 3, "instances": ["a"]},
            TEXT,
            "not formatted correctly. 'signature_name' key must be a string value.",
        ),
        ({"x": 1}, TEXT, "Missing 'inputs' or 'instances' key"),
        (
            {"instances": []},
            TEXT,
            "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array",
        ),
        ({"instances": "a"}, TEXT, "Excepting 'instances' to be an list/array"),
        (
            {"instances": ["a"], "inputs": ["a"]},
            TEXT,
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
        ),
        (
            {"instances": [1]},
            TEXT,
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
            "JSON Value: 1 Type: Number is not of expected type: string",
        ),
        (
            {"inputs": {"text": ["a"], "beam_size": 1.0, "alpha": 1}},
            BEAMS,
            "JSON Value: 1.0 Type: Number is not of expected type: int32",
        ),
        (
            {"inputs": {"text": ["a"], "beam_size": 2**40, "alpha": 1}},
            BEAMS,
            "JSON Value: 1099511627776 Type: Number is not of expected type: int32",
        ),
        (
            {"inputs": {"text": ["a"], "beam_size": 1, "alpha": 16777217}},
            BEAMS,
            "Cannot convert JSON value: 16777217 to float without loss of precision.",
        ),
        (
            {"inputs": {"text": ["a"], "beam_size": 1, "alpha": True}},
            BEAMS,
            "JSON Value: true Type: True is not of expected type: float",
        ),
        (
            {"inputs": {"text": ["a"], "alpha": 1}},
            BEAMS,
            "Missing named input: beam_size in 'inputs' object.",
        ),
        (
            {"inputs": ["a"]},
            BEAMS,
            "inputs is a plain value/list, but expecting an object as multiple input "
            "tensors required as per tensorinfo_map",
        ),
        (
            {"instances": ["a"]},
            BEAMS,
            "instances is a plain list, but expecting list of objects as multiple "
            "input tensors required as per tensorinfo_map",
        ),
        (
            {"instances": [{"text": "a", "beam_size": 1}]},
            BEAMS,
            "Failed to process element: 0 of 'instances' list. "
            'JSON object: {\n    "text": "a",\n    '
            '"beam_size": 1\n} must only have keys: alpha,beam_size,text',
        ),
        (
            {"instances": [{"text": "a", "beam_size": 1, "alpha": 1, "bogus": 1}]},
            BEAMS,
            "Failed to process element: 0 key: bogus of 'instances' list. Error: INVALID_ARGUMENT: "
            "JSON object: does not have named input: bogus",
        ),
        (
            {"instances": [{"b64": "%%%"}]},
            TEXT,
            "Failed to process element: 0 of 'instances' list. "
            "Error: INVALID_ARGUMENT: Unable to base64 decode",
        ),
        (
            {"instances": ["a", {"b64": "AA==", "x": 1}]},
            TEXT,
            "Expecting value/list but got object at item 1",
        ),
        (
            {"inputs": [{"b64": "AA==", "x": 1}]},
            TEXT,
            'JSON Value: {\n    "b64": "AA==",\n    "x": 1\n} '
            "not formatted correctly for base64 data",
        ),
        (
            {"instances": ["a", ["b"]]},
            TEXT,
            "Failed to process element: 1 of 'instances' list. Error: "
            "INVALID_ARGUMENT: Expecting shape [] but got: [1]",
        ),
        (
            {"instances": [["a"], ["b", "c"]]},
            TEXT,
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting tensor size: 1 but got: 2",
        ),
        (
            {"inputs": [["a"], "b"]},
            TEXT,
            'JSON Value: "b" found at incorrect level: 2 in the JSON DOM. Expected at level: 2',
        ),
        (
            {"inputs": [["a"], ["b", "c"]]},
            TEXT,
            "Encountered list at unexpected size: 2 at level: 1 expected size: 1",
        ),
    ],
)
def test_errors_carry_tf_serving_messages(body, infos, message):
    error = error_of(body, infos)
    assert error.code.name == "INVALID_ARGUMENT"
    assert error.http_status == 400
    assert message in error.message


def test_signature_lookup_happens_after_parsing():
    looked_up = []

    def infos_for(name):
        looked_up.append(name)
        raise errors.not_found("Servable not found for request: Latest(m)")

    with pytest.raises(errors.ServingError, match="JSON Parse error"):
        json_tensor.parse_predict_request(b"{", infos_for)
    assert looked_up == []
    with pytest.raises(errors.ServingError, match="Servable not found") as caught:
        json_tensor.parse_predict_request(b'{"signature_name": "s", "instances": [1]}', infos_for)
    assert caught.value.http_status == 404
    assert looked_up == ["s"]


def test_row_answer_single_and_multiple_outputs():
    one = json_tensor.predict_response_to_json(
        {"y": np.array([1.5, 2.0], np.float32)}, json_tensor.ROW
    )
    assert json.loads(one) == {"predictions": [1.5, 2.0]}
    several = json_tensor.predict_response_to_json(
        {"translation": np.array([b"A", b"B"], object), "score": np.array([0.1, 3], np.float32)},
        json_tensor.ROW,
    )
    assert json.loads(several) == {
        "predictions": [{"translation": "A", "score": 0.1}, {"translation": "B", "score": 3.0}]
    }
    # float32 0.1 is written as TF Serving writes it: the shortest text that round-trips.
    assert b'"score": 0.1,' in several and b"3.0" in several


def test_column_answer_and_bytes_outputs():
    body = json_tensor.predict_response_to_json(
        {"reversed_bytes": np.array([b"\xff\x00"], object), "n": np.array(3, np.int64)},
        json_tensor.COLUMN,
    )
    assert json.loads(body) == {"outputs": {"reversed_bytes": [{"b64": "/wA="}], "n": 3}}
    raw = json_tensor.predict_response_to_json(
        {"text": np.array([b"\xff"], object)}, json_tensor.COLUMN
    )
    assert (
        raw == b'{"outputs": ["\xff"]}'
    )  # Not UTF-8 in, not UTF-8 out: byte for byte, like TF Serving.


def test_row_answer_rejects_scalars_and_uneven_batches():
    with pytest.raises(errors.ServingError, match="Tensor name: s has no shape information"):
        json_tensor.predict_response_to_json({"s": np.array(1.0)}, json_tensor.ROW)
    with pytest.raises(errors.ServingError, match="has inconsistent batch size: 3 expecting: 2"):
        json_tensor.predict_response_to_json({"a": np.zeros(2), "b": np.zeros(3)}, json_tensor.ROW)


def test_float_formatting_matches_write_decimal():
    assert json_tensor._format_float32(np.float32(0.1)) == "0.1"
    assert json_tensor._format_float32(np.float32(1e-5)) == "1e-05"
    assert json_tensor._format_float32(np.float32(2)) == "2.0"
    assert json_tensor._format_float32(np.float32(1 / 3)) == "0.333333343"
    assert json_tensor._format_float32(np.float32("nan")) == "NaN"
    assert json_tensor._format_float32(np.float32("-inf")) == "-Infinity"
