"""Server process behaviour (serving/server/server.py, __main__.py): deadline, SIGTERM, flags."""

import concurrent.futures
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.server.process import ServerProcess
from tests.serving.conftest import MODEL_NAME, ROOT


@pytest.fixture(scope="module")
def short_deadline_server(fixture_export_base):
    process = ServerProcess(
        [
            "--model-name",
            MODEL_NAME,
            "--model-base-path",
            str(fixture_export_base / MODEL_NAME),
            "--request-timeout-seconds",
            "1",
            "--grace-seconds",
            "20",
        ]
    )
    yield process
    process.terminate()


def spin(server, seconds):
    return requests.post(
        server.url(f"/v1/models/{MODEL_NAME}:predict"),
        json={"signature_name": "spin", "inputs": {"seconds": seconds}},
        timeout=60,
    )


def test_deadline_exceeded_is_504_and_server_keeps_serving(short_deadline_server):
    answer = spin(short_deadline_server, 2.5)
    assert answer.status_code == 504
    assert answer.json() == {"error": "Deadline Exceeded"}
    quick = spin(short_deadline_server, 0.01)
    assert quick.status_code == 200
    assert quick.json()["outputs"] >= 0.01


def grpc_spin(target, seconds):
    """Calls the fixture's "spin" signature over gRPC; returns the elapsed seconds."""
    channel = grpc.insecure_channel(target)
    try:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL_NAME
        request.model_spec.signature_name = "spin"
        request.inputs["seconds"].CopyFrom(tf.make_tensor_proto(np.float64(seconds)))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=60)
        return float(tf.make_ndarray(response.outputs["elapsed"]))
    finally:
        channel.close()


def grpc_status(target):
    channel = grpc.insecure_channel(target)
    try:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = MODEL_NAME
        return model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request,
                                                                              timeout=10)
    finally:
        channel.close()


def test_sigterm_refuses_new_connections_and_finishes_those_in_flight(fixture_export_base):
    """REST and gRPC requests in flight at SIGTERM finish; new connections are refused."""
    server = ServerProcess(["--model-name", MODEL_NAME, "--model-base-path",
                            str(fixture_export_base / MODEL_NAME), "--grace-seconds", "30"])
    spin_seconds = 4.0
    try:
        assert grpc_status(server.grpc_target).model_version_status
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            rest_in_flight = pool.submit(spin, server, spin_seconds)
            grpc_in_flight = pool.submit(grpc_spin, server.grpc_target, spin_seconds)
            time.sleep(1.0)  # both requests are being served
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the server handles the signal
            with pytest.raises(requests.ConnectionError):
                requests.get(server.url(f"/v1/models/{MODEL_NAME}"), timeout=5)
            with pytest.raises(grpc.RpcError) as refused:
                grpc_status(server.grpc_target)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            # The refusals came while both requests were still in flight.
            assert not rest_in_flight.done() and not grpc_in_flight.done()
            answer = rest_in_flight.result()
            elapsed = grpc_in_flight.result()
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"] >= spin_seconds
        assert elapsed >= spin_seconds
        assert server.terminate() == 0
        assert "tft-serve: stopped" in "".join(server.output)
    finally:
        server.terminate()


def test_command_line_rejects_missing_or_conflicting_models():
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "serving.server", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    missing = run("--model-name", "m")
    assert missing.returncode == 2
    assert "Give --model-name and --model-base-path, or --model-config-file." in missing.stderr
    both = run("--model-config-file", "x.config", "--model-name", "m", "--model-base-path", "/tmp")
    assert both.returncode == 2
    assert "not both" in both.stderr
