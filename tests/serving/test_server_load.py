"""Load and version-swap tests on the shared server (32 clients, bounded request counts).

No timing is asserted: the test checks that no request fails and that every answer is
entirely one version's answer while a version with different answers is swapped in.
"""

import collections
import concurrent.futures
import os
import threading
import time

import grpc
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.conftest import VERSION_BIAS, copy_version, fixture_translation

CLIENTS = 32
MAX_REQUESTS_PER_CLIENT = 150
SWAP_AFTER = CLIENTS * 10  # requests answered before version 2 appears
VERSION_2_ANSWERS = CLIENTS * 5  # answers from version 2 before the clients stop
SENTENCES = ["the cat sat on the mat", "hello world", "a", "ein zwei drei vier", "x y z"]


def expected_rest(batch, version):
    """The fixture's answer for `batch` from `version` (scores differ by VERSION_BIAS)."""
    return {
        "predictions": [
            {"translation": fixture_translation(s),
             "score": float(len(s.split())) + VERSION_BIAS[version]}
            for s in batch
        ]
    }


def answering_version(batch, answer):
    """The version whose whole answer `answer` (JSON) is, or None (mixed or wrong)."""
    for version in VERSION_BIAS:
        if answer == expected_rest(batch, version):
            return version
    return None


def wait_until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_concurrent_clients_get_one_versions_answers_during_a_swap(server, serving_layout):
    base = serving_layout["root"] / "latest"
    url = server.url("/v1/models/latest:predict")
    for s in SENTENCES:
        single = requests.post(url, json={"instances": [s]}, timeout=30).json()
        assert single == expected_rest([s], 1)
    assert expected_rest(SENTENCES, 1) != expected_rest(SENTENCES, 2)

    failures = []
    answers = collections.Counter()  # version -> answered requests
    answers_after_swap = collections.Counter()
    swapped, stop = threading.Event(), threading.Event()
    lock = threading.Lock()

    def record(version, request, answer):
        with lock:
            if version is None:
                failures.append((request, answer))
                return
            answers[version] += 1
            if swapped.is_set():
                answers_after_swap[version] += 1
            if answers[2] >= VERSION_2_ANSWERS:
                stop.set()

    def rest_client(index):
        session = requests.Session()
        for i in range(MAX_REQUESTS_PER_CLIENT):
            if stop.is_set():
                break
            batch = [
                SENTENCES[(index + i + k) % len(SENTENCES)] for k in range(1 + (index + i) % 3)
            ]
            try:
                answer = session.post(url, json={"instances": batch}, timeout=60)
                version = answer.status_code == 200 and answering_version(batch, answer.json())
                record(version or None, batch, answer.text)
            except requests.RequestException as error:
                record(None, batch, error)

    def grpc_client(index):
        channel = grpc.insecure_channel(server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for i in range(MAX_REQUESTS_PER_CLIENT):
            if stop.is_set():
                break
            batch = [SENTENCES[(index + i) % len(SENTENCES)], SENTENCES[(index + i + 1) % 5]]
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "latest"
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(batch))
            try:
                response = stub.Predict(request, timeout=60)
                answer = {"predictions": [
                    {"translation": t.decode(), "score": float(score)} for t, score in zip(
                        tf.make_ndarray(response.outputs["translation"]),
                        tf.make_ndarray(response.outputs["score"]))]}
                version = answering_version(batch, answer)
                # The version the response names is the one that answered.
                if version != response.model_spec.version.value:
                    version = None
                record(version, batch, (response.model_spec.version.value, answer))
            except grpc.RpcError as error:
                record(None, batch, error)
        channel.close()

    def swapper():
        assert wait_until(lambda: sum(answers.values()) >= SWAP_AFTER or stop.is_set(), 300)
        # Version 2 of "latest" answers differently (its scores are 0.5 higher).
        copy_version(str(serving_layout["source"] / "2"), str(base / "2"))
        swapped.set()

    with concurrent.futures.ThreadPoolExecutor(CLIENTS + 1) as pool:
        jobs = [pool.submit(rest_client if i % 4 else grpc_client, i) for i in range(CLIENTS)]
        jobs.append(pool.submit(swapper))
        for job in jobs:
            job.result()

    print(f"\nanswers by version: {dict(answers)}, after the swap: {dict(answers_after_swap)}")
    assert failures == []
    # Both versions answered under load, version 2 only once it was there.
    assert answers[1] >= SWAP_AFTER and answers[2] >= VERSION_2_ANSWERS
    assert answers[2] == answers_after_swap[2]
    def status():
        return requests.get(server.url("/v1/models/latest"), timeout=30).json()[
            "model_version_status"]

    # Policy "latest": version 2 serves, version 1 was unloaded.
    assert wait_until(lambda: [(s["version"], s["state"]) for s in status()]
                      == [("2", "AVAILABLE"), ("1", "END")]), status()
    after = requests.post(url, json={"instances": SENTENCES}, timeout=30).json()
    assert after == expected_rest(SENTENCES, 2)


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
