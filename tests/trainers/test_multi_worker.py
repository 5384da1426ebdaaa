"""Two worker processes under MultiWorkerMirroredStrategy train the same weights as one device.

Why the runs are comparable: with --shuffle-buffer 0 nothing is shuffled, and every synthetic
pair is 5 source and 6 target tokens long (tests/trainers/conftest.py). Each worker reads every
second pair (the input pipeline shards by pair) and batches 10 pairs under 70 tokens, so step k
of the two workers together holds pairs 20k..20k+19; one device with --batch-tokens 140 batches
the same 20 pairs. Both replicas hold 60 target tokens, so the mean of the two per-replica token
means equals the token mean over the step, and the gradients agree up to float32 summation
order (two partial sums all-reduced over loopback instead of one sum). Tolerance: atol 1e-5 on
weights, as for MirroredStrategy in test_distributed.py, far below what a wrong global batch
(a step's loss moves ~1e-3 relative) or an unscaled loss (double steps) would leave.
"""

import json
import os
import subprocess
import sys

import numpy as np

from tests.trainers.conftest import PROJECT_ROOT, free_ports, python_env
from tests.trainers.helpers import read_weights


def train_command(corpus_dir, model_dir, strategy, batch_tokens):
    return [sys.executable, "-m", "trainers.train", "--model-dir", model_dir,
            "--preset", "tiny", "--strategy", strategy,
            "--data", f"dir:{corpus_dir}", "--source-lang", "en", "--target-lang", "es",
            "--vocab-size", "58", "--batch-tokens", str(batch_tokens), "--max-length", "16",
            "--shuffle-buffer", "0", "--epochs", "1", "--steps-per-epoch", "5",
            "--validation-steps", "2", "--warmup-steps", "20", "--bleu-samples", "0",
            "--attention-probes", "0", "--verbose", "0"]


def summary_of(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def test_two_workers_train_the_weights_of_one_device(corpus_dir, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    multi_dir, single_dir = str(tmp_path / "multi"), str(tmp_path / "single")
    workers = [
        subprocess.Popen(train_command(corpus_dir, multi_dir, "multi_worker", 70),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=PROJECT_ROOT, env=python_env(TF_CONFIG=json.dumps(
                             {"cluster": cluster, "task": {"type": "worker", "index": index}})))
        for index in range(2)]
    outputs = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=600)
            assert worker.returncode == 0, stderr[-4000:]
            outputs.append(summary_of(stdout))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    single = subprocess.run(train_command(corpus_dir, single_dir, "default", 140),
                            capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT,
                            env=python_env())
    assert single.returncode == 0, single.stderr[-4000:]
    single_summary = summary_of(single.stdout)

    assert [s["replicas"] for s in outputs] == [2, 2] and single_summary["replicas"] == 1
    assert outputs[0]["steps_per_epoch"] == single_summary["steps_per_epoch"] == 5
    np.testing.assert_allclose(outputs[0]["loss"], single_summary["loss"], rtol=1e-5)
    np.testing.assert_allclose(outputs[0]["val_loss"], single_summary["val_loss"], rtol=1e-5)

    multi = read_weights(os.path.join(multi_dir, "checkpoints", "last.weights.h5"))
    one = read_weights(os.path.join(single_dir, "checkpoints", "last.weights.h5"))
    assert multi.keys() == one.keys() and multi
    differences = {name: float(np.abs(multi[name] - value).max()) for name, value in one.items()}
    print(f"\nlargest weight difference, 2 workers vs 1 device: {max(differences.values()):.2e}")
    for name, value in one.items():
        np.testing.assert_allclose(multi[name], value, atol=1e-5, err_msg=name)
