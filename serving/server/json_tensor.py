"""JSON <-> tensors exactly as TensorFlow Serving's REST API converts them.

Follows tensorflow_serving/util/json_tensor.cc: the same request formats (row
`instances`, column `inputs`), the same type rules (int inputs need JSON
integers, float inputs take any number that fits, strings are JSON strings or
`{"b64": ...}` objects), the same answer layout (`predictions` / `outputs`,
`_bytes` outputs written as base64) and the same error messages, so a client
sees the same thing from this server and from `tensorflow_model_server`.

Strings are bytes in TensorFlow. The request body is decoded with
`surrogateescape`, so bytes that are not UTF-8 survive the trip into a string
tensor and back out unchanged, as they do with TF Serving's RapidJSON parser.
"""

import base64
import binascii
import dataclasses
import json
import math
import re

import numpy as np
from tensorflow.core.framework import types_pb2

from serving.server import errors

ROW = "row"
COLUMN = "column"

# DataTypeString() names used in TF Serving's messages.
_DTYPE_NAMES = {
    types_pb2.DT_FLOAT: "float",
    types_pb2.DT_DOUBLE: "double",
    types_pb2.DT_INT32: "int32",
    types_pb2.DT_UINT8: "uint8",
    types_pb2.DT_INT16: "int16",
    types_pb2.DT_INT8: "int8",
    types_pb2.DT_STRING: "string",
    types_pb2.DT_INT64: "int64",
    types_pb2.DT_BOOL: "bool",
    types_pb2.DT_UINT32: "uint32",
    types_pb2.DT_UINT64: "uint64",
    types_pb2.DT_HALF: "half",
    types_pb2.DT_BFLOAT16: "bfloat16",
}

_NUMPY_DTYPES = {
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_UINT8: np.uint8,
    types_pb2.DT_INT16: np.int16,
    types_pb2.DT_INT8: np.int8,
    types_pb2.DT_STRING: object,
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_BOOL: np.bool_,
    types_pb2.DT_UINT32: np.uint32,
    types_pb2.DT_UINT64: np.uint64,
}

_INT32_RANGE = (-(2**31), 2**31 - 1)
_INT64_RANGE = (-(2**63), 2**63 - 1)
# Largest integers a float / double holds exactly (IsLosslessDecimal).
_FLOAT_MAX_INT = 2**24 - 1
_DOUBLE_MAX_INT = 2**53 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def dtype_name(dtype):
    """Returns TensorFlow's DataTypeString for a `types_pb2` enum (DT_FLOAT -> "float")."""
    return _DTYPE_NAMES.get(dtype, types_pb2.DataType.Name(dtype))


@dataclasses.dataclass
class PredictRequest:
    """A parsed `:predict` body.

    Attributes:
        signature_name: str, "" when the body names none.
        inputs: dict str -> np.ndarray, one array per signature input.
        format: `ROW` or `COLUMN`, decides the answer's layout.
        num_instances: int, rows in a row request (0 for column requests).
    """

    signature_name: str
    inputs: dict
    format: str
    num_instances: int = 0


# ---------------------------------------------------------------------------
# Parsing the body.
# ---------------------------------------------------------------------------


def parse_json(body):
    """Parses a request body into a JSON object, with RapidJSON's error texts.

    Args:
        body: bytes.

    Returns:
        The decoded dict.

    Raises:
        ServingError: INVALID_ARGUMENT `JSON Parse error: ...` or `... Is not object`.
    """
    if not body:
        raise errors.invalid_argument("JSON Parse error: The document is empty")
    text = body.decode("utf-8", "surrogateescape")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        message, offset = _rapidjson_error(error, text)
        raise errors.invalid_argument(f"JSON Parse error: {message} at offset: {offset}") from None
    except RecursionError:
        raise errors.invalid_argument(
            "JSON Parse error: Terminate parsing due to Handler error."
        ) from None
    if not isinstance(doc, dict):
        raise _format_error(doc, "Is not object")
    return doc


def _rapidjson_error(error, text):
    """Maps a `json.JSONDecodeError` to RapidJSON's message and byte offset."""
    offset = len(text[: error.pos].encode("utf-8", "surrogateescape"))
    msg = error.msg
    if msg == "Expecting value":
        if not text.strip():
            return "The document is empty.", offset
        return "Invalid value.", offset
    if msg == "Extra data":
        return "The document root must not be followed by other values.", offset
    if msg.startswith("Expecting property name"):
        return "Missing a name for object member.", offset
    if msg == "Expecting ':' delimiter":
        return "Missing a colon after a name of object member.", offset
    if msg == "Expecting ',' delimiter":
        if _innermost_container(text, error.pos) == "{":
            return "Missing a comma or '}' after an object member.", offset
        return "Missing a comma or ']' after an array element.", offset
    if msg.startswith("Unterminated string"):
        return "Missing a closing quotation mark in string.", offset
    if msg.startswith("Invalid \\uXXXX"):
        return "Incorrect hex digit after \\u escape in string.", offset
    if msg.startswith("Invalid \\escape"):
        return "Invalid escape character in string.", offset
    if msg.startswith("Invalid control character"):
        return "Invalid encoding in string.", offset
    return "Unspecific syntax error.", offset


def _innermost_container(text, pos):
    """Returns "{" or "[" for the container open at `pos` (strings skipped)."""
    stack = []
    in_string = escaped = False
    for char in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else "["


def read_signature_name(doc):
    """The request's "signature_name" ("" when absent); INVALID_ARGUMENT if not a string."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise errors.invalid_argument(
            f"JSON Value: {value_to_string(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


def parse_predict_request(body, input_infos_for):
    """Parses a `:predict` body into input arrays (FillPredictRequestFromJson).

    Args:
        body: bytes, the request body.
        input_infos_for: callable(signature_name: str) -> dict str -> TensorInfo
            proto, the signature's inputs; raises `ServingError` for an unknown
            model, version or signature. Called after the body parses, as TF
            Serving does.

    Returns:
        A `PredictRequest`.

    Raises:
        ServingError: with TF Serving's message for any malformed body.
    """
    doc = parse_json(body)
    signature_name = read_signature_name(doc)
    infos = input_infos_for(signature_name)
    if not infos:
        raise errors.invalid_argument(
            f"Failed to get input map for signature: {signature_name or 'DEFAULT'}"
        )
    dtypes = {name: info.dtype for name, info in infos.items()}
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise _format_error(
            doc,
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
        )
    if has_instances:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise _format_error(doc, "Excepting 'instances' to be an list/array")
        if not instances:
            raise _format_error(doc, "No values in 'instances' array")
        inputs = _tensors_from_instances(instances, dtypes)
        return PredictRequest(signature_name, inputs, ROW, len(instances))
    if has_inputs:
        return PredictRequest(signature_name, _tensors_from_inputs(doc["inputs"], dtypes), COLUMN)
    raise errors.invalid_argument("Missing 'inputs' or 'instances' key")


def _is_b64_object(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_element_object(value):
    return isinstance(value, dict) and not _is_b64_object(value)


class _Column:
    """Values of one named input gathered over the instances of a row request."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.values = []
        self.item_shape = None
        self.item_size = None

    def add(self, item):
        shape = _dense_shape(item)
        values = _fill_values(item, shape, self.dtype)
        if self.item_size is None:
            self.item_size, self.item_shape = len(values), shape
        elif self.item_size != len(values):
            raise errors.invalid_argument(
                f"Expecting tensor size: {self.item_size} but got: {len(values)}"
            )
        elif self.item_shape != shape:
            raise errors.invalid_argument(
                f"Expecting shape {_shape_string(self.item_shape)} but got: {_shape_string(shape)}"
            )
        self.values.extend(values)


def _tensors_from_instances(instances, dtypes):
    first = instances[0]
    if not isinstance(first, dict) and len(dtypes) > 1:
        raise errors.invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    elements_are_objects = _is_element_object(first)
    input_names = sorted(dtypes)
    columns = {}

    def add(name, item):
        if name not in dtypes:
            raise errors.invalid_argument(f"JSON object: does not have named input: {name}")
        columns.setdefault(name, _Column(dtypes[name])).add(item)

    for index, element in enumerate(instances):
        if elements_are_objects:
            if not _is_element_object(element):
                raise errors.invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            for name, item in element.items():
                try:
                    add(name, item)
                except errors.ServingError as error:
                    raise errors.invalid_argument(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {error.status_name}: {error.message}"
                    ) from None
            if sorted(element) != input_names:
                raise errors.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{value_to_string(element)} must only have keys: {','.join(input_names)}"
                )
        else:
            if _is_element_object(element):
                raise errors.invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                add(input_names[0], element)
            except errors.ServingError as error:
                raise errors.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {error.status_name}: {error.message}"
                ) from None
    return {
        name: _to_array(column.values, [len(instances)] + column.item_shape, column.dtype)
        for name, column in columns.items()
    }


def _tensors_from_inputs(value, dtypes):
    if not isinstance(value, dict) or _is_b64_object(value):
        if len(dtypes) > 1:
            raise errors.invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        ((name, dtype),) = dtypes.items()
        return {name: _tensor_from_value(value, dtype)}
    tensors = {}
    for name in sorted(dtypes):
        if name not in value:
            raise errors.invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = _tensor_from_value(value[name], dtypes[name])
    return tensors


def _tensor_from_value(value, dtype):
    shape = _dense_shape(value)
    return _to_array(_fill_values(value, shape, dtype), shape, dtype)


def _dense_shape(value):
    """The shape implied by following the first element of each nested list."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill_values(value, shape, dtype):
    """Validates a nested JSON value against `shape` and returns its flat values."""
    values = []
    rank = len(shape)

    def visit(node, level):
        if not isinstance(node, list):
            if level != rank:
                raise errors.invalid_argument(
                    f"JSON Value: {value_to_string(node)} found at incorrect level: {level + 1} "
                    f"in the JSON DOM. Expected at level: {rank}"
                )
            values.append(_convert_scalar(node, dtype))
            return
        if level >= rank:
            raise errors.invalid_argument(
                f"Encountered list at unexpected level: {level} expected < {rank}"
            )
        if len(node) != shape[level]:
            raise errors.invalid_argument(
                f"Encountered list at unexpected size: {len(node)} at level: {level} "
                f"expected size: {shape[level]}"
            )
        for child in node:
            visit(child, level + 1)

    visit(value, 0)
    return values


def _type_error(value, dtype):
    return errors.invalid_argument(
        f"JSON Value: {value_to_string(value)} Type: {_json_type(value)} "
        f"is not of expected type: {dtype_name(dtype)}"
    )


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _convert_scalar(value, dtype):
    """One JSON leaf -> the Python value stored in the tensor (AddValueToTensor)."""
    if isinstance(value, dict):
        if dtype != types_pb2.DT_STRING:
            raise _type_error(value, dtype)
        return _decode_base64_object(value)
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        try:
            return value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise errors.invalid_argument(
                "JSON Parse error: The surrogate pair in string is invalid."
            ) from None
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        if not _is_number(value):
            raise _type_error(value, dtype)
        if not _is_lossless(value, dtype):
            target = "float" if dtype == types_pb2.DT_FLOAT else "double"
            raise errors.invalid_argument(
                f"Cannot convert JSON value: {value_to_string(value)} to {target} "
                "without loss of precision."
            )
        return float(value)
    if dtype in (types_pb2.DT_INT32, types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_UINT8):
        if not (_is_int(value) and _INT32_RANGE[0] <= value <= _INT32_RANGE[1]):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_INT64:
        if not (_is_int(value) and _INT64_RANGE[0] <= value <= _INT64_RANGE[1]):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_UINT32:
        if not (_is_int(value) and 0 <= value < 2**32):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_UINT64:
        if not (_is_int(value) and 0 <= value < 2**64):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    raise errors.unimplemented(
        f"Conversion of JSON Value: {value_to_string(value)} to type: {dtype_name(dtype)}"
    )


def _is_lossless(value, dtype):
    if isinstance(value, float) and not math.isfinite(value):
        return True
    if _is_int(value):
        limit = _FLOAT_MAX_INT if dtype == types_pb2.DT_FLOAT else _DOUBLE_MAX_INT
        return abs(value) <= limit
    if dtype == types_pb2.DT_FLOAT:
        return -_FLOAT32_MAX <= value <= _FLOAT32_MAX
    return True


_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def _decode_base64_object(value):
    if not _is_b64_object(value):
        raise errors.invalid_argument(
            f"JSON Value: {value_to_string(value)} not formatted correctly for base64 data"
        )
    encoded = value["b64"]
    # Padding is optional, as for absl::Base64Unescape.
    if not _BASE64_CHARS.match(encoded) or len(encoded.rstrip("=")) % 4 == 1:
        raise errors.invalid_argument("Unable to base64 decode")
    stripped = encoded.rstrip("=")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_argument("Unable to base64 decode") from None


def _to_array(values, shape, dtype):
    numpy_dtype = _NUMPY_DTYPES.get(dtype)
    if numpy_dtype is None:
        raise errors.unimplemented(f"Conversion to type: {dtype_name(dtype)}")
    if numpy_dtype is object:
        array = np.empty(len(values), dtype=object)
        array[:] = values
    else:
        array = np.array(values, dtype=numpy_dtype)
    return array.reshape(shape)


def _shape_string(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _json_type(value):
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def value_to_string(value):
    """Prints a JSON value as TF Serving's error messages do (pretty, 4-space indent)."""
    if isinstance(value, float):
        return _format_double(value)
    return json.dumps(value, indent=4, ensure_ascii=False)


def _format_error(doc, message):
    return errors.invalid_argument(f"JSON Value: {value_to_string(doc)} {message}")


# ---------------------------------------------------------------------------
# Writing the answer.
# ---------------------------------------------------------------------------


def predict_response_to_json(outputs, request_format):
    """Writes output arrays as TF Serving's predict answer (MakeJsonFromTensors).

    Args:
        outputs: dict str -> np.ndarray.
        request_format: `ROW` (answer `{"predictions": ...}`) or `COLUMN`
            (answer `{"outputs": ...}`).

    Returns:
        bytes, the JSON body (UTF-8; string outputs that were not UTF-8 are
        written back byte for byte).
    """
    if not outputs:
        raise errors.invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if request_format == ROW:
        batch_size = 0
        for name in names:
            array = outputs[name]
            if array.ndim == 0:
                raise errors.invalid_argument(f"Tensor name: {name} has no shape information ")
            if array.shape[0] < 1:
                raise errors.invalid_argument(
                    f"Tensor name: {name} has invalid batch size: {array.shape[0]}"
                )
            if batch_size and array.shape[0] != batch_size:
                raise errors.invalid_argument(
                    f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                    f"expecting: {batch_size}"
                )
            batch_size = array.shape[0]
        rows = []
        for row in range(batch_size):
            if len(names) > 1:
                fields = (
                    f"{_json_string(name)}: {_array_json(outputs[name], name, row)}"
                    for name in names
                )
                rows.append("{" + ", ".join(fields) + "}")
            else:
                rows.append(_array_json(outputs[names[0]], names[0], row))
        text = '{"predictions": [' + ", ".join(rows) + "]}"
    else:
        if len(names) > 1:
            fields = (f"{_json_string(name)}: {_array_json(outputs[name], name)}" for name in names)
            text = '{"outputs": {' + ", ".join(fields) + "}}"
        else:
            text = '{"outputs": ' + _array_json(outputs[names[0]], names[0]) + "}"
    return text.encode("utf-8", "surrogateescape")


def _array_json(array, name, row=None):
    """JSON text of a whole output, or of its row `row` (AddTensorValues)."""
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind in "SU":
        write = _bytes_writer(as_bytes=name.endswith("_bytes"))
    elif array.dtype == np.float32:
        write = _format_float32
    elif array.dtype.kind == "f":
        write = _format_double
    elif array.dtype == np.bool_:
        write = lambda v: "true" if v else "false"  # noqa: E731
    elif array.dtype.kind in "iu":
        write = lambda v: str(int(v))  # noqa: E731
    else:
        raise errors.invalid_argument(f"Failed to write JSON value for tensor type: {array.dtype}")
    if row is not None:
        if array.ndim == 1:
            return write(array[row])
        array = array[row]
    return _nested_json(array, write)


def _nested_json(array, write):
    if array.ndim == 0:
        return write(array[()])
    if array.ndim == 1:
        return "[" + ", ".join(write(v) for v in array) + "]"
    return "[" + ", ".join(_nested_json(sub, write) for sub in array) + "]"


def _bytes_writer(as_bytes):
    def write(value):
        if isinstance(value, (str, np.str_)):
            value = str(value).encode("utf-8")
        value = bytes(value)
        if as_bytes:
            return '{"b64": "' + base64.b64encode(value).decode("ascii") + '"}'
        return _json_string(value.decode("utf-8", "surrogateescape"))

    return write


def _json_string(text):
    return json.dumps(text, ensure_ascii=False)


def _format_float32(value):
    """WriteDecimal<float>: shortest of %g / %.9g that round-trips, `.0` for whole numbers."""
    value = np.float32(value)
    if not np.isfinite(value):
        return "NaN" if np.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
    text = f"{value:g}"
    if np.float32(text) != value:
        text = f"{value:.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _format_double(value):
    """WriteDecimal<double>: %g, or %.17g when %g does not round-trip."""
    value = float(value)
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
    text = f"{value:g}"
    if float(text) != value:
        text = f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text
