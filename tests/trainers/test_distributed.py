"""Distributed training equals single-device training (subprocesses: TF device setup must
happen before TensorFlow starts).

Why the losses are comparable: the synthetic corpus makes every pair 5 source and 6 target
tokens long, so with batch_tokens=70 every per-replica batch has 10 pairs and 60 target tokens.
MirroredStrategy over 2 replicas takes two consecutive batches of the one input pipeline per
step; the default strategy with batch_tokens=140 gets the same 20 pairs as one batch. Keras
averages the two replicas' token-mean losses (and sums gradients of losses divided by the
replica count), which equals the token mean over the 20 pairs because both replicas hold the
same number of tokens. What remains is float32 summation order (two partial sums all-reduced
instead of one sum): ~1e-7 relative per step, which Adam's normalized updates keep from growing
over a dozen steps (measured: losses within 1.6e-7 relative, weights within 1.5e-7 absolute
after 12 steps), hence rtol 1e-5 on losses and atol 1e-5 on weights, margins of ~60x. The
errors these tests exist for are far larger: an unscaled per-replica loss doubles it, and a
batch consumed or shifted by the framework changes a step's loss by ~1e-3 relative.
"""

import json
import os
import subprocess
import sys

import numpy as np

from tests.trainers.conftest import free_ports, python_env, run_python
from tests.trainers.helpers import read_weights

MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tests.trainers.helpers import synthetic_training
from tests.trainers.recorder import Recorder
from trainers.strategy import create_strategy
from trainers.train import train
corpus, out = sys.argv[1], sys.argv[2]
results = {}
for name, batch_tokens in (("default", 140), ("mirrored", 70)):
    recorder = Recorder()
    summary = train(f"{out}/{name}", synthetic_training(corpus, batch_tokens=batch_tokens,
                    steps_per_epoch=6, bleu_samples=0), preset="tiny",
                    strategy=create_strategy(name), extra_callbacks=[recorder])
    results[name] = {"losses": recorder.batch_losses, "replicas": summary["replicas"],
                     "val_loss": summary["val_loss"], "tokens": summary["history"]["tokens"]}
print(json.dumps(results))
"""


def test_mirrored_two_cpus_equals_default_strategy(corpus_dir, tmp_path):
    code = MIRRORED_SCRIPT.replace("sys.argv[1], sys.argv[2]",
                                   f"{corpus_dir!r}, {str(tmp_path)!r}")
    results = run_python(code)
    default, mirrored = results["default"], results["mirrored"]
    assert default["replicas"] == 1 and mirrored["replicas"] == 2
    assert len(mirrored["losses"]) == 2 and len(mirrored["losses"][1]) == 6
    np.testing.assert_allclose(mirrored["losses"], default["losses"], rtol=1e-5)
    # Training moved the loss, so equal losses are not equal initial values only.
    assert default["losses"][1][-1] < default["losses"][0][0]
    np.testing.assert_allclose(mirrored["val_loss"], default["val_loss"], rtol=1e-5)
    # 6 steps of 20 pairs x 6 target tokens per epoch, counted over both replicas.
    assert default["tokens"] == mirrored["tokens"] == [720.0, 720.0]
    weights = [read_weights(str(tmp_path / name / "checkpoints" / "last.weights.h5"))
               for name in ("default", "mirrored")]
    assert weights[0].keys() == weights[1].keys() and weights[0]
    for name, value in weights[0].items():
        np.testing.assert_allclose(weights[1][name], value, atol=1e-5, err_msg=name)


def test_multi_worker_two_processes_end_with_identical_weights(corpus_dir, tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    model_dir = str(tmp_path / "run")
    command = [sys.executable, "-m", "trainers.train", "--model-dir", model_dir,
               "--preset", "tiny", "--strategy", "multi_worker",
               "--data", f"dir:{corpus_dir}", "--source-lang", "en", "--target-lang", "es",
               "--vocab-size", "58", "--batch-tokens", "70", "--max-length", "16",
               "--epochs", "1", "--steps-per-epoch", "5", "--validation-steps", "2",
               "--warmup-steps", "20", "--bleu-samples", "8", "--attention-probes", "0",
               "--verbose", "0"]
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=python_env(TF_CONFIG=json.dumps(
                             {"cluster": cluster, "task": {"type": "worker", "index": index}})),
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        for index in range(2)]
    outputs = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=300)
            assert worker.returncode == 0, stderr[-4000:]
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for summary in outputs:
        assert summary["replicas"] == 2 and summary["epoch"] == 1
        assert summary["strategy"] == "MultiWorkerMirroredStrategy"
    assert outputs[0]["loss"] == outputs[1]["loss"]  # the all-reduced loss metric
    chief = read_weights(os.path.join(model_dir, "checkpoints", "last.weights.h5"))
    other = read_weights(os.path.join(model_dir, "workers", "worker_1", "checkpoints",
                                      "last.weights.h5"))
    assert chief.keys() == other.keys() and chief
    for name, value in chief.items():
        np.testing.assert_array_equal(other[name], value, err_msg=name)
    # Only the chief writes the shared files.
    assert os.path.isfile(os.path.join(model_dir, "config.json"))
    assert not os.path.exists(os.path.join(model_dir, "workers", "worker_1", "config.json"))
