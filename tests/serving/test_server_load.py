"""Load and version-swap tests on the shared server (bounded: 32 clients x 50 requests).

No timing is asserted: the test checks that no request fails and that every
answer equals the single-request answer, also while a new version is swapped in.
"""

import concurrent.futures
import os
import threading
import time

import grpc
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.conftest import copy_version, fixture_translation

CLIENTS = 32
REQUESTS_PER_CLIENT = 50
SENTENCES = ["the cat sat on the mat", "hello world", "a", "ein zwei drei vier", "x y z"]


def expected_rest(batch):
    return {
        "predictions": [
            {"translation": fixture_translation(s), "score": float(len(s.split()))} for s in batch
        ]
    }


def wait_until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_concurrent_clients_get_single_request_answers_during_a_swap(server, serving_layout):
    base = serving_layout["root"] / "latest"
    url = server.url("/v1/models/latest:predict")
    single = {s: requests.post(url, json={"instances": [s]}, timeout=30).json() for s in SENTENCES}
    assert single == {s: expected_rest([s]) for s in SENTENCES}

    swap_at = threading.Event()
    failures, versions_seen = [], set()
    done = [0]
    lock = threading.Lock()

    def count_one():
        with lock:
            done[0] += 1
            if done[0] == CLIENTS * REQUESTS_PER_CLIENT // 3:
                swap_at.set()

    def rest_client(index):
        session = requests.Session()
        for i in range(REQUESTS_PER_CLIENT):
            count_one()
            batch = [
                SENTENCES[(index + i + k) % len(SENTENCES)] for k in range(1 + (index + i) % 3)
            ]
            try:
                answer = session.post(url, json={"instances": batch}, timeout=60)
                ok = answer.status_code == 200 and answer.json() == expected_rest(batch)
            except requests.RequestException as error:
                ok, answer = False, error
            if not ok:
                with lock:
                    failures.append((batch, getattr(answer, "text", answer)))

    def grpc_client(index):
        channel = grpc.insecure_channel(server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for i in range(REQUESTS_PER_CLIENT):
            count_one()
            sentence = SENTENCES[(index + i) % len(SENTENCES)]
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "latest"
            request.inputs["text"].CopyFrom(tf.make_tensor_proto([sentence]))
            try:
                response = stub.Predict(request, timeout=60)
                translation = tf.make_ndarray(response.outputs["translation"])[0].decode()
                ok = translation == fixture_translation(sentence)
                with lock:
                    versions_seen.add(response.model_spec.version.value)
            except grpc.RpcError as error:
                ok, translation = False, error
            if not ok:
                with lock:
                    failures.append((sentence, translation))
        channel.close()

    def swapper():
        assert swap_at.wait(timeout=300)
        # Version 2 of "latest" is a copy of version 1: the same answers from a new servable.
        copy_version(str(serving_layout["source"] / "1"), str(base / "2"))

    with concurrent.futures.ThreadPoolExecutor(CLIENTS + 1) as pool:
        jobs = [pool.submit(rest_client if i % 4 else grpc_client, i) for i in range(CLIENTS)]
        jobs.append(pool.submit(swapper))
        for job in jobs:
            job.result()

    assert failures == []
    status = requests.get(server.url("/v1/models/latest"), timeout=30).json()[
        "model_version_status"
    ]
    assert wait_until(
        lambda: requests.get(server.url("/v1/models/latest"), timeout=30).json()[
            "model_version_status"
        ][0]
        == {
            "version": "2",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
    )
    assert {s["version"] for s in status} <= {"1", "2"}
    assert versions_seen <= {1, 2} and versions_seen
    after = requests.post(url, json={"instances": SENTENCES}, timeout=30).json()
    assert after == expected_rest(SENTENCES)


def test_broken_new_version_leaves_previous_serving(server, serving_layout):
    base = serving_layout["root"] / "broken"
    staging = base / "2.staging"
    os.makedirs(staging / "variables")
    (staging / "saved_model.pb").write_bytes(b"\x08\x01garbage that is not a SavedModel")
    os.rename(staging, base / "2")

    def status():
        return requests.get(server.url("/v1/models/broken"), timeout=30).json()[
            "model_version_status"
        ]

    assert wait_until(lambda: status()[0]["version"] == "2" and status()[0]["state"] == "END")
    broken, serving = status()
    assert broken["status"]["error_code"] != "OK"
    assert broken["status"]["error_message"]
    assert serving == {
        "version": "1",
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }
    answer = requests.post(
        server.url("/v1/models/broken:predict"), json={"instances": ["still one"]}, timeout=30
    )
    assert answer.json() == {"predictions": [{"translation": "ONE STILL", "score": 2.0}]}
    missing = requests.post(
        server.url("/v1/models/broken/versions/2:predict"), json={"instances": ["a"]}, timeout=30
    )
    assert missing.status_code == 404
    assert missing.json() == {"error": "Servable not found for request: Specific(broken, 2)"}
