"""A small client for TF Serving's REST and gRPC APIs (this server or the real one).

    from serving.client import RestClient, GrpcClient

    rest = RestClient("http://127.0.0.1:8501", "translator")
    rest.translate(["Hallo Welt."])          # -> [{"translation": ..., "score": ...}]
    rest.predict(["Hallo Welt."])            # raw "predictions" list
    rest.status(), rest.metadata()

    grpc_client = GrpcClient("127.0.0.1:8500", "translator")
    grpc_client.predict({"text": ["Hallo Welt."]})   # -> {"translation": array, ...}

Errors from the server raise `ServingClientError` carrying the HTTP status or
gRPC code and TF Serving's message.
"""

import base64

import requests


class ServingClientError(Exception):
    """A request the server answered with an error.

    Attributes:
        status: int HTTP status (REST) or `grpc.StatusCode` (gRPC).
        message: str, the server's error message.
    """

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _model_path(model, version=None, label=None):
    if version is not None and label is not None:
        raise ValueError(
            f"Give a version or a label, not both; got version={version}, label={label!r}."
        )
    path = f"/v1/models/{model}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{label}"
    return path


class RestClient:
    """Client of the REST API.

    Args:
        base_url: str, e.g. "http://127.0.0.1:8501".
        model: str, model name.
        version: int or None (latest).
        label: str or None.
        timeout: float, seconds per request (default 60).
        session: optional `requests.Session` (one is created otherwise).
    """

    def __init__(self, base_url, model, version=None, label=None, timeout=60.0, session=None):
        self.base_url = base_url.rstrip("/")
        self.path = _model_path(model, version, label)
        self.timeout = timeout
        self.session = session or requests.Session()

    def _call(self, method, suffix, body=None):
        response = self.session.request(
            method, self.base_url + self.path + suffix, json=body, timeout=self.timeout
        )
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text}
        if response.status_code != 200:
            raise ServingClientError(response.status_code, payload.get("error", response.text))
        return payload

    def status(self):
        """GET the model status: list of {"version", "state", "status"}."""
        return self._call("GET", "")["model_version_status"]

    def metadata(self):
        """GET the signature metadata (the whole answer)."""
        return self._call("GET", "/metadata")

    def predict(self, instances, signature_name=None):
        """Row-format predict; returns the "predictions" list."""
        body = {"instances": instances}
        if signature_name:
            body["signature_name"] = signature_name
        return self._call("POST", ":predict", body)["predictions"]

    def predict_columns(self, inputs, signature_name=None):
        """Column-format predict (needed for scalar inputs); returns the "outputs" value."""
        body = {"inputs": inputs}
        if signature_name:
            body["signature_name"] = signature_name
        return self._call("POST", ":predict", body)["outputs"]

    def translate(self, sentences):
        """Translates with `serving_default`: [{"translation": str, "score": float}, ...]."""
        return self.predict(list(sentences))

    def translate_beams(self, sentences, beam_size=4, top_beams=2, alpha=0.6):
        """Translates with `translate_beams`: {"translations": [[...]], "scores": [[...]]}."""
        return self.predict_columns(
            {
                "text": list(sentences),
                "beam_size": int(beam_size),
                "top_beams": int(top_beams),
                "alpha": float(alpha),
            },
            signature_name="translate_beams",
        )


def b64(data):
    """Wraps bytes as TF Serving's `{"b64": ...}` JSON value."""
    return {"b64": base64.b64encode(data).decode("ascii")}


class GrpcClient:
    """Client of the gRPC API (PredictionService / ModelService stubs).

    Args:
        target: str, "host:port".
        model: str, model name.
        version: int or None.
        label: str or None.
        timeout: float, seconds per call (default 60).
    """

    def __init__(self, target, model, version=None, label=None, timeout=60.0):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if version is not None and label is not None:
            raise ValueError(
                f"Give a version or a label, not both; got version={version}, label={label!r}."
            )
        self._grpc = grpc
        self.channel = grpc.insecure_channel(target)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.model, self.version, self.label = model, version, label
        self.timeout = timeout

    def _fill_spec(self, spec, signature_name=None):
        spec.name = self.model
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        if signature_name is not None:
            spec.signature_name = signature_name

    def _invoke(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as error:
            raise ServingClientError(error.code(), error.details()) from None

    def predict(self, inputs, signature_name=None, output_filter=()):
        """Predict; `inputs` maps names to array-likes. Returns (dict of np arrays, model_spec)."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature_name)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        request.output_filter.extend(output_filter)
        response = self._invoke(self.prediction.Predict, request)
        outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
        return outputs, response.model_spec

    def metadata(self):
        """GetModelMetadata; returns the response proto."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._fill_spec(request.model_spec)
        request.metadata_field.append("signature_def")
        return self._invoke(self.prediction.GetModelMetadata, request)

    def status(self):
        """GetModelStatus; returns the response proto."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec)
        return self._invoke(self.models.GetModelStatus, request)

    def close(self):
        self.channel.close()
