"""Token-exact steps: replicas, workers and accumulated micro-batches holding different token
counts give the update of one batch holding all the tokens (`trainers.steps`).

Each run fits 4 steps of a tiny model on hand-made batches (tests/trainers/exact_steps.py)
in a subprocess. Tolerances as in test_distributed.py: what remains is float32 summation
order (measured: losses within 2.2e-7 relative, weights within 4.8e-6 absolute); weighting
each replica's token mean equally instead, as Keras does, moved the mirrored run's losses by
3.0e-3 relative and its weights by 2.3e-2.
"""

import json
import subprocess
import sys

import numpy as np

from tests.trainers.conftest import PROJECT_ROOT, free_ports, python_env, run_python
from tests.trainers.exact_steps import SHAPES

SINGLE_MACHINE_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tests.trainers import exact_steps as e
out = OUT
steps = e.step_parts()
default, mirrored = tf.distribute.get_strategy(), tf.distribute.MirroredStrategy()
e.run(default, 1, lambda _: [e.union(parts) for parts in steps], out + "/one")
e.run(default, 1, lambda _: [e.union(parts[:2]) for parts in steps], out + "/one_half")
# One input pipeline: consecutive elements go to replica 0, then replica 1.
e.run(mirrored, 1, lambda _: [part for parts in steps for part in parts[:2]],
      out + "/mirrored")
e.run(mirrored, 2, lambda _: [part for parts in steps for part in parts],
      out + "/mirrored_accumulate")
e.run(default, 4, lambda _: [part for parts in steps for part in parts], out + "/accumulate")
print("{}")
"""

REFERENCE_SCRIPT = """
import tensorflow as tf
from tests.trainers import exact_steps as e
e.run(tf.distribute.get_strategy(), 1, lambda _: [e.union(parts) for parts in e.step_parts()],
      OUT)
print("{}")
"""

WORKER_SCRIPT = """
import sys
import tensorflow as tf
from tests.trainers import exact_steps as e
strategy = tf.distribute.MultiWorkerMirroredStrategy()
steps = e.step_parts()
e.run(strategy, 2, lambda worker: [part for parts in steps
                                   for part in parts[2 * worker:2 * worker + 2]], OUT)
print("{}")
"""


def _load(prefix):
    with open(prefix + ".json") as f:
        record = json.load(f)
    with np.load(prefix + ".npz") as weights:
        record["weights"] = [weights[f"arr_{i}"] for i in range(len(weights.files))]
    return record


def _assert_same_run(run, reference):
    assert run["iterations"] == reference["iterations"] == 4
    np.testing.assert_allclose(run["losses"], reference["losses"], rtol=1e-5)
    np.testing.assert_allclose(run["accuracy"], reference["accuracy"], rtol=1e-5)
    assert len(run["weights"]) == len(reference["weights"]) > 0
    for index, (value, expected) in enumerate(zip(run["weights"], reference["weights"])):
        np.testing.assert_allclose(value, expected, atol=1e-5, err_msg=f"weight {index}")


def test_parts_hold_unequal_token_counts():
    from tests.trainers.exact_steps import step_parts

    counts = [int(np.sum(part[1] != 0)) for part in step_parts()[0]]
    assert len(set(counts)) == len(counts) == len(SHAPES), counts


def test_mirrored_and_accumulated_steps_equal_one_batch_of_all_tokens(tmp_path):
    run_python(SINGLE_MACHINE_SCRIPT.replace("OUT", repr(str(tmp_path))), timeout=1800)
    one, half = _load(str(tmp_path / "one")), _load(str(tmp_path / "one_half"))
    # Training moved the loss, so equal runs are not equal initial values only.
    assert one["losses"][-1] < one["losses"][0]
    _assert_same_run(_load(str(tmp_path / "mirrored")), half)
    _assert_same_run(_load(str(tmp_path / "mirrored_accumulate")), one)
    _assert_same_run(_load(str(tmp_path / "accumulate")), one)


def test_multi_worker_accumulated_steps_equal_one_batch_of_all_tokens(tmp_path):
    run_python(REFERENCE_SCRIPT.replace("OUT", repr(str(tmp_path / "one"))), timeout=1800)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        code = WORKER_SCRIPT.replace("OUT", repr(str(tmp_path / f"worker_{index}")))
        env = python_env(TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env,
                                        cwd=PROJECT_ROOT))
    try:
        for worker in workers:
            _, stderr = worker.communicate(timeout=1800)
            assert worker.returncode == 0, stderr[-4000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    one = _load(str(tmp_path / "one"))
    for index in range(2):
        _assert_same_run(_load(str(tmp_path / f"worker_{index}")), one)
