"""One loaded version of a SavedModel: its signatures and how to run them.

The SignatureDefs are read from `saved_model.pb` exactly as TF Serving reads
them (metadata answers list the same tensor names and method names), and the
functions come from `tf.saved_model.load(...).signatures`.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

try:
    # TF Serving's model server links TensorFlow Text's ops (SentencePiece included);
    # importing the package registers the same ops here.
    import tensorflow_text  # noqa: F401
except ImportError:  # pragma: no cover -- a model without TF Text ops still loads.
    tensorflow_text = None

from serving.server import errors
from serving.server.json_tensor import dtype_name

DEFAULT_SIGNATURE = "serving_default"
_SERVE_TAG = "serve"


@dataclasses.dataclass(frozen=True)
class Signature:
    """A signature of a loaded version.

    Attributes:
        name: str.
        signature_def: the `SignatureDef` proto from saved_model.pb.
        function: the concrete function, called with keyword tensors.
    """

    name: str
    signature_def: object
    function: object

    @property
    def inputs(self):
        """dict str -> TensorInfo proto of the signature's inputs."""
        return dict(self.signature_def.inputs)

    def input_shape(self, name):
        """Static shape of input `name` as a list (None = any dim); None for an unknown rank."""
        shape = self.signature_def.inputs[name].tensor_shape
        if shape.unknown_rank:
            return None
        return [None if dim.size < 0 else dim.size for dim in shape.dim]


class Servable:
    """A SavedModel version loaded into this process.

    Args:
        name: str, the model name.
        version: int.
        path: str, the version folder.
    """

    def __init__(self, name, version, path):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = read_signature_defs(path)
        self._loaded = tf.saved_model.load(path, tags=[_SERVE_TAG])
        self._functions = dict(self._loaded.signatures)

    def signature(self, name):
        """Looks up a signature as TF Serving's REST handler does.

        Args:
            name: str, "" means `serving_default`.

        Returns:
            A `Signature`.

        Raises:
            ServingError: INVALID_ARGUMENT `Serving signature name: "x" not found in signature def`.
        """
        name = name or DEFAULT_SIGNATURE
        if name not in self.signature_defs:
            raise errors.invalid_argument(
                f'Serving signature name: "{name}" not found in signature def'
            )
        return Signature(name, self.signature_defs[name], self._functions.get(name))

    def validate_inputs(self, signature, inputs):
        """Checks request inputs against a signature (PreProcessPrediction).

        Args:
            signature: `Signature`.
            inputs: dict str -> np.ndarray.

        Raises:
            ServingError: INVALID_ARGUMENT naming the mismatch.
        """
        expected = set(signature.inputs)
        sent = set(inputs)
        if len(sent) != len(expected):
            raise errors.invalid_argument(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - sent))}}}."
            )
        for alias in sorted(sent):
            if alias not in expected:
                raise errors.invalid_argument(
                    f"input tensor alias not found in signature: {alias}. "
                    f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}."
                )
            info = signature.inputs[alias]
            array = inputs[alias]
            if not _dtype_matches(array, info.dtype):
                raise errors.invalid_argument(
                    f"Expects arg '{alias}' to be {dtype_name(info.dtype)} "
                    f"but {_array_dtype_name(array)} is provided"
                )
            shape = signature.input_shape(alias)
            if shape is not None and not _shape_matches(array.shape, shape):
                expected_shape = "[" + ",".join("-1" if d is None else str(d) for d in shape) + "]"
                actual_shape = "[" + ",".join(str(d) for d in array.shape) + "]"
                raise errors.invalid_argument(
                    f"Input '{alias}' has shape {actual_shape} "
                    f"but the signature expects {expected_shape}"
                )

    def run(self, signature, inputs, output_filter=()):
        """Runs a signature on numpy inputs.

        Args:
            signature: `Signature`.
            inputs: dict str -> np.ndarray, already validated.
            output_filter: sequence of output names; empty means all outputs.

        Returns:
            dict str -> np.ndarray.

        Raises:
            ServingError: for an unknown output name, or carrying the code of
                the TensorFlow error raised by the function.
        """
        outputs = set(signature.signature_def.outputs)
        for alias in output_filter:
            if alias not in outputs:
                raise errors.invalid_argument(
                    f"output tensor alias not found in signature: {alias} "
                    f"Outputs expected to be in the set {{{','.join(sorted(outputs))}}}."
                )
        if len(set(output_filter)) != len(output_filter):
            raise errors.invalid_argument("duplicate output tensor alias in output_filter")
        if signature.function is None:
            raise errors.failed_precondition(f'Serving signature key "{signature.name}" not found.')
        tensors = {
            name: tf.constant(array, dtype=tf.dtypes.as_dtype(signature.inputs[name].dtype))
            for name, array in inputs.items()
        }
        try:
            results = signature.function(**tensors)
        except (tf.errors.OpError, errors.ServingError) as error:
            raise errors.from_tf_error(error) from None
        except (TypeError, ValueError) as error:
            raise errors.invalid_argument(str(error)) from None
        wanted = output_filter or sorted(results)
        return {name: results[name].numpy() for name in wanted}


def read_signature_defs(path):
    """Reads the `serve` MetaGraph's SignatureDefs from a SavedModel folder.

    Args:
        path: str, a SavedModel folder.

    Returns:
        dict str -> SignatureDef proto.

    Raises:
        FileNotFoundError: if there is no saved_model.pb.
        ValueError: if no MetaGraph is tagged `serve`.
    """
    pb_path = os.path.join(path, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if _SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"SavedModel {path!r} has no MetaGraph tagged {_SERVE_TAG!r}.")


def _dtype_matches(array, dtype):
    if dtype == tf.string.as_datatype_enum:
        return array.dtype == object or array.dtype.kind in "SU"
    try:
        return np.dtype(tf.dtypes.as_dtype(dtype).as_numpy_dtype) == array.dtype
    except TypeError:
        return False


def _array_dtype_name(array):
    if array.dtype == object or array.dtype.kind in "SU":
        return "string"
    return dtype_name(tf.dtypes.as_dtype(array.dtype).as_datatype_enum)


def _shape_matches(actual, expected):
    return len(actual) == len(expected) and all(
        e is None or a == e for a, e in zip(actual, expected)
    )
