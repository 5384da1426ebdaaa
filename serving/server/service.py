"""What both front ends do: find the servable, run a signature, describe models.

REST (`rest.py`) and gRPC (`grpc_service.py`) only translate between their wire
formats and the calls here, so both give the same answers and the same errors.
"""

import asyncio
import dataclasses

from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving.server import errors
from serving.server.batcher import Batcher, batch_key


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

    # -- classify / regress ----------------------------------------------------

    def reject_examples(self, method, model, version=None, label=None, signature_name=""):
        """Answers Classify / Regress the way TF Serving does for a model without such signatures.

        The exported translators have predict signatures only, so no tf.Example is ever parsed
        or run: the model address and the signature are resolved (an unknown model, version or
        signature gets TF Serving's error), then the signature fails TF Serving's
        classification or regression checks with its message. A signature that would pass them
        gets UNIMPLEMENTED.

        Args:
            method: str, "classify" or "regress".
            model, version, label: the model address.
            signature_name: str, "" for "serving_default".

        Raises:
            ServingError, always.
        """
        servable = self.manager.resolve(model, version, label)
        name = signature_name or "serving_default"
        if name not in servable.signature_defs:
            raise errors.invalid_argument(f"No signature was found with the name: {name}")
        check = _check_classification if method == "classify" else _check_regression
        check(servable.signature_defs[name])
        raise errors.unimplemented(
            f"{method.capitalize()} on tf.Example signatures is not supported by this server; "
            "use Predict.")

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
