"""What both front ends do: find the servable, run a signature, describe models.

REST (`rest.py`) and gRPC (`grpc_service.py`) only translate between their wire
formats and the calls here, so both give the same answers and the same errors.
"""

import asyncio
import dataclasses

import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving.server import errors
from serving.server.batcher import Batcher, batch_key

_CLASSIFY_METHOD = "tensorflow/serving/classify"
_REGRESS_METHOD = "tensorflow/serving/regress"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-request limits.

    Args:
        max_body_bytes: int, largest REST body / gRPC message accepted (default 4 MiB).
        max_instances: int, most rows (dimension 0) in one request (default 1024).
        deadline_seconds: float, longest time a request may take (default 30).
    """

    max_body_bytes: int = 4 * 1024 * 1024
    max_instances: int = 1024
    deadline_seconds: float = 30.0

    def __post_init__(self):
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1; got {self.max_body_bytes}.")
        if self.max_instances < 1:
            raise ValueError(f"max_instances must be >= 1; got {self.max_instances}.")
        if self.deadline_seconds <= 0:
            raise ValueError(f"deadline_seconds must be > 0; got {self.deadline_seconds}.")


class ServingCore:
    """Runs requests against the models of a `ModelManager`.

    Args:
        manager: `manager.ModelManager`.
        executor: `concurrent.futures.Executor` where the models run.
        limits: `Limits`.
        batching: `batcher.BatchingOptions` or None to run each request alone.
    """

    def __init__(self, manager, executor, limits, batching=None):
        self.manager = manager
        self.limits = limits
        self._executor = executor
        self._batcher = Batcher(batching, executor) if batching is not None else None

    # -- predict --------------------------------------------------------------

    def signature_for(self, model, version=None, label=None, signature_name=""):
        """Resolves (servable, signature); raises `ServingError` as TF Serving does."""
        servable = self.manager.resolve(model, version, label)
        return servable, servable.signature(signature_name)

    async def predict(self, servable, signature, inputs, output_filter=(), deadline_seconds=None):
        """Runs a signature on validated-by-here inputs, batched when enabled.

        Args:
            servable: the resolved servable.
            signature: its `Signature`.
            inputs: dict str -> np.ndarray.
            output_filter: sequence of output names (empty: all).
            deadline_seconds: float or None; the smaller of this and the
                server's deadline applies.

        Returns:
            dict str -> np.ndarray.

        Raises:
            ServingError: INVALID_ARGUMENT for bad inputs or too many instances,
                DEADLINE_EXCEEDED when the deadline passes, or the model's error.
        """
        servable.validate_inputs(signature, inputs)
        rows = max((a.shape[0] for a in inputs.values() if a.ndim > 0), default=0)
        if rows > self.limits.max_instances:
            raise errors.invalid_argument(
                f"Request has {rows} instances, more than the limit of {self.limits.max_instances} "
                "instances per request"
            )
        output_filter = tuple(output_filter)

        def run(batch_inputs):
            return servable.run(signature, batch_inputs, output_filter)

        key, batch_rows = batch_key(inputs) if self._batcher is not None else (None, 0)
        if key is not None:
            work = self._batcher.run(
                (servable.name, servable.version, id(servable), signature.name, output_filter, key),
                inputs,
                batch_rows,
                run,
            )
        else:
            work = asyncio.get_running_loop().run_in_executor(self._executor, run, inputs)
        return await self._with_deadline(work, deadline_seconds)

    async def _with_deadline(self, awaitable, deadline_seconds):
        timeout = self.limits.deadline_seconds
        if deadline_seconds is not None:
            timeout = min(timeout, deadline_seconds)
        try:
            return await asyncio.wait_for(awaitable, timeout=max(timeout, 0.0))
        except asyncio.TimeoutError:
            raise errors.deadline_exceeded() from None

    # -- classify / regress (tf.Example signatures) ----------------------------

    async def classify(self, model, version, label, request, deadline_seconds=None):
        """Runs a classification signature on tf.Examples.

        Args:
            model, version, label: the model address.
            request: `json_tensor.ExamplesRequest`.
            deadline_seconds: float or None.

        Returns:
            list (one per example) of lists of (label bytes, score float).
        """
        servable = self.manager.resolve(model, version, label)
        signature = _examples_signature(servable, request.signature_name)
        input_name, output_names = _check_classification(signature.signature_def)
        outputs = await self._run_examples(
            servable, signature, input_name, output_names, request, deadline_seconds
        )
        classes = outputs.get("classes")
        scores = outputs.get("scores")
        num_examples = len(request.examples)
        for name, tensor in (("classes", classes), ("scores", scores)):
            if tensor is not None and (tensor.ndim != 2 or tensor.shape[0] != num_examples):
                raise errors.invalid_argument(
                    f"Expected {name} Tensor shape: [batch_size num_classes] with batch_size "
                    f"{num_examples} but got {list(tensor.shape)}"
                )
        num_classes = (classes if classes is not None else scores).shape[1]
        return [
            [
                (
                    classes[i, c] if classes is not None else b"",
                    float(scores[i, c]) if scores is not None else 0.0,
                )
                for c in range(num_classes)
            ]
            for i in range(num_examples)
        ]

    async def regress(self, model, version, label, request, deadline_seconds=None):
        """Runs a regression signature on tf.Examples.

        Returns:
            list of float, one per example.
        """
        servable = self.manager.resolve(model, version, label)
        signature = _examples_signature(servable, request.signature_name)
        input_name, output_names = _check_regression(signature.signature_def)
        outputs = await self._run_examples(
            servable, signature, input_name, output_names, request, deadline_seconds
        )
        values = outputs["outputs"]
        num_examples = len(request.examples)
        if values.ndim not in (1, 2) or values.size != num_examples:
            raise errors.invalid_argument(
                "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                f"{list(values.shape)}"
            )
        return [float(v) for v in values.reshape(-1)]

    async def _run_examples(
        self, servable, signature, input_name, output_names, request, deadline_seconds
    ):
        serialized = []
        for example in request.examples:
            if request.context is not None:
                merged = type(example)()
                merged.CopyFrom(request.context)
                merged.MergeFrom(example)
                example = merged
            serialized.append(example.SerializeToString())
        array = np.empty(len(serialized), dtype=object)
        array[:] = serialized
        inputs = {input_name: array}
        servable.validate_inputs(signature, inputs)

        def run(batch_inputs):
            return servable.run(signature, batch_inputs, tuple(output_names))

        work = asyncio.get_running_loop().run_in_executor(self._executor, run, inputs)
        return await self._with_deadline(work, deadline_seconds)

    # -- metadata and status ---------------------------------------------------

    def metadata(self, model, version=None, label=None):
        """Returns the GetModelMetadataResponse with every SignatureDef of the version."""
        servable = self.manager.resolve(model, version, label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in servable.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def status(self, model, version=None, label=None):
        """Returns the GetModelStatusResponse (newest version first)."""
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self.manager.status(model, version, label):
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
            entry.status.error_code = status.error_code.value[0]
            entry.status.error_message = status.error_message
        return response


def _examples_signature(servable, signature_name):
    name = signature_name or "serving_default"
    if name not in servable.signature_defs:
        raise errors.invalid_argument(f"No signature was found with the name: {name}")
    return servable.signature(name)


def _check_classification(signature_def):
    """PreProcessClassification with the method-name check off (TF Serving's default)."""
    if len(signature_def.inputs) != 1:
        raise errors.invalid_argument("Expected one input Tensor.")
    if len(signature_def.outputs) not in (1, 2):
        raise errors.invalid_argument(
            f"Expected one or two output Tensors, found {len(signature_def.outputs)}"
        )
    if "inputs" not in signature_def.inputs:
        raise errors.invalid_argument(
            f"No classification inputs found in SignatureDef: {signature_def}"
        )
    outputs = [name for name in ("classes", "scores") if name in signature_def.outputs]
    if not outputs:
        raise errors.invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" or '
            f'"scores". Signature was: {signature_def}'
        )
    return "inputs", outputs


def _check_regression(signature_def):
    """PreProcessRegression with the method-name check off (TF Serving's default)."""
    if len(signature_def.inputs) != 1:
        raise errors.invalid_argument("Expected one input Tensor.")
    if len(signature_def.outputs) != 1:
        raise errors.invalid_argument("Expected one output Tensor.")
    if "inputs" not in signature_def.inputs:
        raise errors.failed_precondition(
            f"No regression inputs found in SignatureDef: {signature_def}"
        )
    if "outputs" not in signature_def.outputs:
        raise errors.failed_precondition(
            f"No regression outputs found in SignatureDef: {signature_def}"
        )
    return "inputs", ["outputs"]
