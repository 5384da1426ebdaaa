"""TF Serving's gRPC API on the servicers generated in tensorflow-serving-api.

`PredictionService` (Predict, GetModelMetadata; Classify and Regress answer TF Serving's
error for a model without such signatures) and
`ModelService.GetModelStatus`, implemented with `grpc.aio` on the same event
loop as the REST server, so both share one batcher and one executor. Tensors
cross the wire as `TensorProto`s, converted with `tf.make_ndarray` and
`tf.make_tensor_proto`.
"""

import functools
import logging

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.server import errors

logger = logging.getLogger(__name__)

_SIGNATURE_DEF_FIELD = "signature_def"


def _model_address(model_spec):
    """(name, version, label) of a ModelSpec."""
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def _abort_on_error(method):
    """Turns a `ServingError` (or any failure) raised by an RPC into its status."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except errors.ServingError as error:
            await context.abort(error.code, error.message)
        except grpc.aio.AbortError:
            raise
        except Exception as error:  # noqa: BLE001
            logger.exception("Unexpected error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")

    return wrapper


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """PredictionService over a `service.ServingCore`.

    Args:
        core: `service.ServingCore`.
    """

    def __init__(self, core):
        self._core = core

    @_abort_on_error
    async def Predict(self, request, context):  # noqa: N802 -- gRPC method name.
        name, version, label = _model_address(request.model_spec)
        servable, signature = self._core.signature_for(
            name, version, label, request.model_spec.signature_name
        )
        inputs = {}
        for alias, tensor_proto in request.inputs.items():
            try:
                inputs[alias] = tf.make_ndarray(tensor_proto)
            except Exception:  # noqa: BLE001 -- any undecodable proto.
                raise errors.invalid_argument(f"tensor parsing error: {alias}") from None
        outputs = await self._core.predict(
            servable,
            signature,
            inputs,
            output_filter=request.output_filter,
            deadline_seconds=context.time_remaining(),
        )
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature.name
        for alias, array in outputs.items():
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(array))
        return response

    @_abort_on_error
    async def GetModelMetadata(self, request, context):  # noqa: N802
        if not request.HasField("model_spec"):
            raise errors.invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise errors.invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in request.metadata_field:
            if field != _SIGNATURE_DEF_FIELD:
                raise errors.invalid_argument(f"Metadata field {field} is not supported")
        return self._core.metadata(*_model_address(request.model_spec))

    @_abort_on_error
    async def Classify(self, request, context):  # noqa: N802
        self._core.reject_examples("classify", *_model_address(request.model_spec),
                                   request.model_spec.signature_name)

    @_abort_on_error
    async def Regress(self, request, context):  # noqa: N802
        self._core.reject_examples("regress", *_model_address(request.model_spec),
                                   request.model_spec.signature_name)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """ModelService.GetModelStatus over a `service.ServingCore`.

    Args:
        core: `service.ServingCore`.
    """

    def __init__(self, core):
        self._core = core

    @_abort_on_error
    async def GetModelStatus(self, request, context):  # noqa: N802
        if not request.HasField("model_spec"):
            raise errors.invalid_argument("Missing ModelSpec")
        return self._core.status(*_model_address(request.model_spec))

    async def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "HandleReloadConfigRequest is not supported by this server",
        )


def add_servicers(server, core):
    """Registers both servicers on a `grpc.aio.Server`."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(core), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), server)
