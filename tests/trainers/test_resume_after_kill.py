"""A tft-train process killed with SIGKILL in the middle of an interval resumes from the last
finished interval and loses none of them."""

import json
import os
import signal
import subprocess
import sys
import time

from tests.trainers.conftest import PROJECT_ROOT, python_env
from tf_transformer import checkpoints
from trainers import model_dir as model_dir_lib

STEPS_PER_EPOCH = 100


def _wait_for(condition, process, timeout=1800):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.stderr.read()[-4000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _resume_epoch(model_dir):
    try:
        return model_dir_lib.resume_epoch(model_dir)
    except ValueError:  # caught while being written
        return None


def test_sigkill_mid_interval_resumes_without_losing_a_finished_interval(corpus_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    checkpoints_dir = os.path.join(model_dir, "checkpoints")
    command = [sys.executable, "-m", "trainers.train", "--model-dir", model_dir,
               "--preset", "tiny", "--data", f"dir:{corpus_dir}", "--source-lang", "en",
               "--target-lang", "es", "--vocab-size", "58", "--batch-tokens", "70",
               "--max-length", "16", "--epochs", "3", "--steps-per-epoch", str(STEPS_PER_EPOCH),
               "--validation-steps", "2", "--warmup-steps", "20", "--bleu-samples", "0",
               "--attention-probes", "0", "--verbose", "0", "--seed", "3"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=python_env(), cwd=PROJECT_ROOT)
    try:
        # The first interval is finished once its checkpoint and its backup are written.
        _wait_for(lambda: _resume_epoch(model_dir) == 1, process)
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    # Killed inside the second interval: only the first one's checkpoint exists.
    assert [step for step, _ in checkpoints.list_interval_checkpoints(checkpoints_dir)] == [
        STEPS_PER_EPOCH]
    assert model_dir_lib.resume_epoch(model_dir) == 1

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                             env=python_env(), cwd=PROJECT_ROOT)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    # It redid only the interrupted interval and the one after it.
    assert summary["epochs_run"] == 2 and summary["epoch"] == 3
    assert summary["optimizer_steps"] == 3 * STEPS_PER_EPOCH
    assert [step for step, _ in checkpoints.list_interval_checkpoints(checkpoints_dir)] == [
        STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH, 3 * STEPS_PER_EPOCH]
