"""Server process behaviour (serving/server/server.py, __main__.py): deadline, SIGTERM, flags."""

import concurrent.futures
import subprocess
import sys
import time

import pytest
import requests

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


def test_sigterm_finishes_the_request_in_flight_then_exits(short_deadline_server):
    server = short_deadline_server
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(spin, server, 0.8)
        time.sleep(0.3)
        code = server.terminate()
        answer = in_flight.result()
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] >= 0.8
    assert code == 0
    assert "tft-serve: stopped" in "".join(server.output)
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url(f"/v1/models/{MODEL_NAME}"), timeout=5)


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
