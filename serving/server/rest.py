"""TF Serving's REST API on Starlette.

Routes are matched with TF Serving's own regular expressions
(tensorflow_serving/model_servers/http_rest_api_util.cc), case-insensitively:

    GET  /v1/models/{m}[/versions/{v} | /labels/{l}]            model status
    GET  /v1/models/{m}[/versions/{v} | /labels/{l}]/metadata   signature metadata
    POST /v1/models/{m}[/versions/{v} | /labels/{l}]:predict    predict
    POST ...:classify, ...:regress        TF Serving's error for a model without such signatures

Any other `/v1/...` request answers 400 `Malformed request: <METHOD> <path>`;
a path outside `/v1/` answers 404. Errors are `{"error": "<message>"}` with the
HTTP status TF Serving derives from the status code.

Request bodies are read in chunks and never kept beyond `max_body_bytes`: a
larger body is read to its end without being stored (so the client gets the
answer instead of a reset connection) and answered with 413
`Request body is larger than the limit of N bytes`. 413 rather than one of TF
Serving's codes because TF Serving itself sets no limit, and 413 is the status
HTTP clients and proxies understand for exactly this.
"""

import json
import logging
import re
import urllib.parse

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.server import errors, json_tensor

logger = logging.getLogger(__name__)

_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_INT64_MAX = 2**63 - 1
# A body over the limit is drained (not stored) up to this multiple of the limit.
_DRAIN_FACTOR = 16


def create_app(core):
    """Builds the ASGI application.

    Args:
        core: `service.ServingCore`.

    Returns:
        A Starlette application.
    """

    async def endpoint(request):
        try:
            body = await _read_body(request, core.limits.max_body_bytes)
            return await _dispatch(core, request.method, _raw_path(request), body)
        except errors.ServingError as error:
            return _error_response(error)
        except _BodyTooLarge as too_large:
            return Response(
                json.dumps({"error": str(too_large)}),
                status_code=413,
                media_type="application/json",
            )
        except Exception as error:  # noqa: BLE001 -- the server answers, whatever went wrong.
            logger.exception("Unexpected error in %s %s", request.method, request.url.path)
            return _error_response(errors.internal(f"{type(error).__name__}: {error}"))

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])


class _BodyTooLarge(Exception):
    pass


async def _read_body(request, limit):
    if request.method != "POST":
        return b""
    declared = request.headers.get("content-length")
    too_large = declared is not None and declared.isdigit() and int(declared) > limit
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_large = True
        if too_large:
            chunks = []
            if size > limit * _DRAIN_FACTOR:
                break
            continue
        chunks.append(chunk)
    if too_large:
        raise _BodyTooLarge(f"Request body is larger than the limit of {limit} bytes")
    return b"".join(chunks)


def _raw_path(request):
    raw = request.scope.get("raw_path")
    if raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return request.url.path


def _decode_arg(text, what):
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise errors.invalid_argument(f"Failed to decode {what}:{text}") from None


def _parse_version(text):
    if not text:
        return None
    version = int(text)
    if version > _INT64_MAX:
        raise errors.invalid_argument(f"Failed to convert version: {text} to numeric.")
    return version


async def _dispatch(core, method, path, body):
    malformed = errors.invalid_argument(f"Malformed request: {method} {path}")
    if not _API_PATH.fullmatch(path):
        raise errors.not_found(f"Not found: {method} {path}")
    if method == "POST":
        match = _PREDICT_PATH.fullmatch(path)
        if not match:
            raise malformed
        name, version_text, label_text, verb = match.groups()
        name = _decode_arg(name, "model name")
        version = _parse_version(version_text)
        label = _decode_arg(label_text, "model version label") if label_text else None
        if verb == "predict":
            return await _predict(core, name, version, label, body)
        if verb in ("classify", "regress"):
            signature_name = json_tensor.read_signature_name(json_tensor.parse_json(body))
            core.reject_examples(verb, name, version, label, signature_name)
        raise malformed  # TF Serving dispatches on the lower-case verb only.
    if method == "GET":
        match = _STATUS_PATH.fullmatch(path)
        if not match:
            raise malformed
        name, version_text, label_text, subresource = match.groups()
        name = _decode_arg(name, "model name") if name else ""
        version = _parse_version(version_text)
        label = _decode_arg(label_text, "model version label") if label_text else None
        if not name:
            raise errors.invalid_argument("Missing model name in request.")
        if subresource == "metadata":
            return _json_response(_metadata_json(core.metadata(name, version, label)))
        return _json_response(_status_json(core.status(name, version, label)))
    raise malformed


async def _predict(core, name, version, label, body):
    resolved = {}

    def input_infos_for(signature_name):
        servable, signature = core.signature_for(name, version, label, signature_name)
        resolved["servable"], resolved["signature"] = servable, signature
        return signature.inputs

    request = json_tensor.parse_predict_request(body, input_infos_for)
    outputs = await core.predict(resolved["servable"], resolved["signature"], request.inputs)
    return _json_response(json_tensor.predict_response_to_json(outputs, request.format))


def _status_json(response):
    as_dict = json_format.MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(as_dict, indent=1).encode("utf-8")


def _metadata_json(response):
    options = dict(preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    as_dict = {
        "model_spec": json_format.MessageToDict(response.model_spec, **options),
        "metadata": {"signature_def": json_format.MessageToDict(signature_map, **options)},
    }
    return json.dumps(as_dict, indent=1).encode("utf-8")


def _json_response(body, status_code=200):
    return Response(body, status_code=status_code, media_type="application/json")


def _error_response(error):
    return _json_response(json.dumps({"error": error.message}).encode("utf-8"), error.http_status)
