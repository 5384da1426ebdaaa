"""REST API tests against a server process on loopback (serving/server/rest.py).

Every route, both request formats, b64, versions and labels, and each error of
TF Serving's REST API with its HTTP status and message; after every bad request
a good one still succeeds.
"""

import base64

import pytest
import requests

from tests.serving.conftest import fixture_translation

SENTENCES = ["hello big world", "a b", "ein kleiner test"]


def post(server, path, body=None, data=None):
    return requests.post(server.url(path), json=body, data=data, timeout=30)


def assert_serving(server):
    """A valid request still succeeds."""
    answer = post(server, "/v1/models/translator:predict", {"instances": ["still serving"]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [{"translation": "SERVING STILL", "score": 2.5}]}


def test_status_routes(server):
    answer = requests.get(server.url("/v1/models/translator"), timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    ok = {"error_code": "OK", "error_message": ""}
    assert answer.json() == {
        "model_version_status": [
            {"version": "2", "state": "AVAILABLE", "status": ok},
            {"version": "1", "state": "AVAILABLE", "status": ok},
        ]
    }
    for path in ("/v1/models/translator/versions/1", "/V1/Models/translator/Labels/stable"):
        answer = requests.get(server.url(path), timeout=30)
        assert answer.json() == {
            "model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]
        }


def test_metadata_route(server):
    answer = requests.get(
        server.url("/v1/models/translator/labels/canary/metadata"), timeout=30
    ).json()
    assert answer["model_spec"] == {"name": "translator", "signature_name": "", "version": "2"}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "translate_beams", "echo_bytes"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["text"]["dtype"] == "DT_STRING"
    assert default["inputs"]["text"]["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}],
        "unknown_rank": False,
    }
    assert default["inputs"]["text"]["name"] == "serving_default_text:0"
    assert set(default["outputs"]) == {"translation", "score"}
    assert default["outputs"]["score"]["dtype"] == "DT_FLOAT"
    beams = signatures["translate_beams"]
    assert beams["inputs"]["beam_size"]["tensor_shape"] == {"dim": [], "unknown_rank": False}
    assert [d["size"] for d in beams["outputs"]["translations"]["tensor_shape"]["dim"]] == [
        "-1",
        "-1",
    ]
    one = requests.get(server.url("/v1/models/translator/versions/1/metadata"), timeout=30).json()
    assert one["model_spec"]["version"] == "1"


@pytest.mark.parametrize(
    "path, bias",
    [
        ("/v1/models/translator:predict", 0.5),
        ("/v1/models/translator/versions/1:predict", 0.0),
        ("/v1/models/translator/versions/2:predict", 0.5),
        ("/v1/models/translator/labels/stable:predict", 0.0),
        ("/V1/MODELS/translator/LABELS/canary:predict", 0.5),
    ],
)
def test_predict_row_format_by_version_and_label(server, path, bias):
    answer = post(server, path, {"instances": SENTENCES})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "predictions": [
            {"translation": fixture_translation(s), "score": len(s.split()) + bias}
            for s in SENTENCES
        ]
    }


def test_predict_named_instances_and_column_format(server):
    named = post(
        server,
        "/v1/models/translator:predict",
        {"signature_name": "serving_default", "instances": [{"text": "x y"}]},
    )
    assert named.json() == {"predictions": [{"translation": "Y X", "score": 2.5}]}
    column = post(server, "/v1/models/translator:predict", {"inputs": {"text": ["x y", "z"]}})
    assert column.json() == {"outputs": {"translation": ["Y X", "Z"], "score": [2.5, 1.5]}}
    beams = post(
        server,
        "/v1/models/translator/versions/1:predict",
        {
            "signature_name": "translate_beams",
            "inputs": {"text": ["x y", "z"], "beam_size": 4, "top_beams": 3, "alpha": 0.5},
        },
    )
    assert beams.status_code == 200, beams.text
    assert beams.json() == {
        "outputs": {
            "translations": [["Y X #0", "Y X #1", "Y X #2"], ["Z #0", "Z #1", "Z #2"]],
            "scores": [[2.0, 1.5, 1.0], [1.0, 0.5, 0.0]],
        }
    }


def test_b64_inputs_and_bytes_outputs(server):
    data = [b"\xff\xfe\x00abc", "héllo".encode()]
    answer = post(
        server,
        "/v1/models/translator:predict",
        {
            "signature_name": "echo_bytes",
            "instances": [{"b64": base64.b64encode(d).decode()} for d in data],
        },
    )
    assert answer.status_code == 200, answer.text
    decoded = [base64.b64decode(p["b64"]) for p in answer.json()["predictions"]]
    assert decoded == [d[::-1] for d in data]
    # b64 holding invalid UTF-8 fed to a text signature: bytes in, bytes out, server fine.
    raw = post(
        server,
        "/v1/models/translator:predict",
        {"instances": [{"b64": base64.b64encode(b"ab \xff").decode()}]},
    )
    assert raw.status_code == 200
    assert raw.content == b'{"predictions": [{"score": 2.5, "translation": "\xff AB"}]}'
    assert_serving(server)


ERRORS = [
    # (method, path, body, HTTP status, exact message or (prefix, suffix))
    (
        "POST",
        "/v1/models/nope:predict",
        {"instances": ["a"]},
        404,
        "Servable not found for request: Latest(nope)",
    ),
    (
        "POST",
        "/v1/models/translator/versions/99:predict",
        {"instances": ["a"]},
        404,
        "Servable not found for request: Specific(translator, 99)",
    ),
    (
        "POST",
        "/v1/models/translator/labels/nope:predict",
        {"instances": ["a"]},
        400,
        "Unrecognized servable version label: nope",
    ),
    (
        "POST",
        "/v1/models/translator:predict",
        b'{"instances": ["a"',
        400,
        "JSON Parse error: Missing a comma or ']' after an array element. at offset: 18",
    ),
    ("POST", "/v1/models/translator:predict", b"", 400, "JSON Parse error: The document is empty"),
    (
        "POST",
        "/v1/models/translator:predict",
        {"instances": ["a"], "inputs": ["a"]},
        400,
        (
            "JSON Value: {",
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
        ),
    ),
    (
        "POST",
        "/v1/models/translator:predict",
        {"signature_name": "serving_default"},
        400,
        "Missing 'inputs' or 'instances' key",
    ),
    (
        "POST",
        "/v1/models/translator:predict",
        {"instances": []},
        400,
        ("JSON Value: {", "No values in 'instances' array"),
    ),
    (
        "POST",
        "/v1/models/translator:predict",
        {"signature_name": "x", "instances": ["a"]},
        400,
        'Serving signature name: "x" not found in signature def',
    ),
    (
        "POST",
        "/v1/models/translator:predict",
        {"instances": [1.5]},
        400,
        "Failed to process element: 0 of 'instances' list. "
        "Error: INVALID_ARGUMENT: JSON Value: 1.5 Type: Number "
        "is not of expected type: string",
    ),
    (
        "POST",
        "/v1/models/translator:predict",
        {
            "signature_name": "translate_beams",
            "inputs": {"text": ["a"], "beam_size": 2.0, "top_beams": 1, "alpha": 1},
        },
        400,
        "JSON Value: 2.0 Type: Number is not of expected type: int32",
    ),
    (
        "POST",
        "/v1/models/translator:predict",
        {
            "signature_name": "translate_beams",
            "inputs": {"text": ["a"], "beam_size": 1, "top_beams": 2, "alpha": 1},
        },
        400,
        ("assertion failed: [top_beams must be <= beam_size]", None),
    ),
    (
        "POST",
        "/v1/models/translator:predict",
        {"instances": ["x"] * 65},
        400,
        "Request has 65 instances, more than the limit of 64 instances per request",
    ),
    (
        "POST",
        "/v1/models/translator:predict",
        {"instances": [[["a"]], ["b"]]},
        400,
        ("Failed to process element: 1 of 'instances' list.", "Expecting shape [1,1] but got: [1]"),
    ),
    (
        "POST",
        "/v1/models/translator:predict",
        {"instances": [["a"]]},
        400,
        "Input 'text' has shape [1,1] but the signature expects [-1]",
    ),
    (
        "POST",
        "/v1/models/translator:classify",
        {"examples": [{"n": 1}]},
        400,
        (
            "No classification inputs found in SignatureDef: inputs {",
            'method_name: "tensorflow/serving/predict"\n',
        ),
    ),
    (
        "POST",
        "/v1/models/translator:regress",
        {"examples": [{"n": 1}]},
        400,
        "Expected one output Tensor.",
    ),
    (
        "POST",
        "/v1/models/nope:regress",
        {"examples": [{"n": 1}]},
        404,
        "Servable not found for request: Latest(nope)",
    ),
    (
        "POST",
        "/v1/models/translator:classify",
        {"signature_name": "nope", "examples": [{"n": 1}]},
        400,
        "No signature was found with the name: nope",
    ),
    (
        "POST",
        "/v1/models/translator:PREDICT",
        {"instances": ["a"]},
        400,
        "Malformed request: POST /v1/models/translator:PREDICT",
    ),
    (
        "POST",
        "/v1/models/translator:explain",
        {"instances": ["a"]},
        400,
        "Malformed request: POST /v1/models/translator:explain",
    ),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/foo", None, 400, "Malformed request: GET /v1/foo"),
    ("PUT", "/v1/models/translator", None, 400, "Malformed request: PUT /v1/models/translator"),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    (
        "GET",
        "/v1/models/translator/versions/99",
        None,
        404,
        "Could not find version 99 of model translator",
    ),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    (
        "GET",
        "/v1/models/translator/versions/99999999999999999999",
        None,
        400,
        "Failed to convert version: 99999999999999999999 to numeric.",
    ),
]


@pytest.mark.parametrize(
    "method, path, body, status, message", ERRORS, ids=[f"{e[0]} {e[1]} {e[3]}" for e in ERRORS]
)
def test_errors_match_tf_serving_and_server_keeps_serving(
    server, method, path, body, status, message
):
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    answer = requests.request(method, server.url(path), timeout=30, **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    if isinstance(message, tuple):
        prefix, suffix = message
        assert error.startswith(prefix), error
        assert suffix is None or error.endswith(suffix), error
    else:
        assert error == message
    assert_serving(server)


def test_body_over_the_limit_is_refused_and_server_keeps_serving(server):
    body = b'{"instances": ["' + b"a" * (10 * 1024 * 1024) + b'"]}'
    answer = post(server, "/v1/models/translator:predict", data=body)
    assert answer.status_code == 413
    assert answer.json() == {"error": "Request body is larger than the limit of 1048576 bytes"}

    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"instances": ["'
        for _ in range(40):
            yield b"b" * 65536
        yield b'"]}'

    chunked = post(server, "/v1/models/translator:predict", data=chunks())
    assert chunked.status_code == 413
    assert_serving(server)


def test_unparseable_bytes_and_non_api_paths(server):
    garbage = post(server, "/v1/models/translator:predict", data=b"\xff\xfe{{{")
    assert garbage.status_code == 400
    assert garbage.json()["error"] == "JSON Parse error: Invalid value. at offset: 0"
    outside = requests.get(server.url("/healthz"), timeout=30)
    assert outside.status_code == 404
    assert_serving(server)
