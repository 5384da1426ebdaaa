"""Choosing a `tf.distribute.Strategy` by name, so the same command runs anywhere.

| name | what it makes |
|---|---|
| `default` | the default strategy: one device, no distribution |
| `mirrored` | `MirroredStrategy` over all local GPUs (or all logical CPU devices if none) |
| `multi_worker` | `MultiWorkerMirroredStrategy`; the cluster comes from `TF_CONFIG` |
| `tpu` | `TPUStrategy` on the TPU named by `tpu` (a name, a grpc:// address or "local") |
| `auto` | a TPU when one resolves; `multi_worker` when `TF_CONFIG` names several workers; |
|        | all GPUs when there are several; else `default` |
"""

import json
import logging
import os

import tensorflow as tf

from trainers.config import STRATEGIES

logger = logging.getLogger(__name__)


class NoTPUError(RuntimeError):
    """`--strategy tpu` was asked for but no TPU could be reached."""


def create_strategy(name="auto", tpu=None):
    """Creates the distribution strategy called `name`.

    Must run before anything else touches TensorFlow devices (TPU and multi-worker set up the
    runtime).

    Args:
        name: str, default "auto". One of "auto", "default", "mirrored", "multi_worker", "tpu".
        tpu: str or None, default None. For "tpu"/"auto": a TPU name, a grpc:// address, or
            "local" for a TPU VM. None falls back to the TPU_NAME environment variable, then to
            the local TPU VM.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: unknown `name`.
        NoTPUError: "tpu" was asked for and no TPU resolves.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {STRATEGIES}.")
    if name == "auto":
        name = _auto_choice(tpu)
        logger.info("--strategy auto chose %r", name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=_local_devices())
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _tpu_strategy(tpu)


def is_chief(strategy):
    """True on the worker that writes shared files (config, checkpoints, logs).

    Every worker of a single-machine strategy is the chief; with `multi_worker` it is task 0
    of job "chief", or worker 0 when the cluster has no chief job.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_index(strategy):
    """This worker's index among all workers (0 on single-machine strategies)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0
    cluster = resolver.cluster_spec().as_dict()
    offset = len(cluster.get("chief", [])) if resolver.task_type == "worker" else 0
    return offset + (resolver.task_id or 0)


def strategy_name(strategy):
    """The public `tf.distribute` name of `strategy`'s kind, e.g. "MirroredStrategy"."""
    names = ((tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
             (tf.distribute.MirroredStrategy, "MirroredStrategy"),
             (tf.distribute.TPUStrategy, "TPUStrategy"))
    for kind, name in names:
        if isinstance(strategy, kind):
            return name
    return type(strategy).__name__.strip("_").replace("DistributionStrategy", "Strategy")


def _auto_choice(tpu):
    if tpu or os.environ.get("TPU_NAME") or tf.config.list_physical_devices("TPU"):
        return "tpu"
    if _cluster_workers() > 1:
        return "multi_worker"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def _cluster_workers():
    """Number of chief + worker tasks in TF_CONFIG (0 when it is unset)."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from error
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def _local_devices():
    gpus = tf.config.list_logical_devices("GPU")
    return [device.name for device in gpus or tf.config.list_logical_devices("CPU")]


def _tpu_strategy(tpu):
    target = tpu or os.environ.get("TPU_NAME") or "local"
    hint = ("Pass --tpu NAME (a Cloud TPU name or grpc://HOST:PORT address, or \"local\" on a "
            "TPU VM), or choose --strategy auto/default/mirrored.")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=target)
        if target != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, OSError) as error:
        tried = f"--tpu {tpu!r}" if tpu else (
            f"TPU_NAME={target!r}" if target != "local" else "the local TPU VM (--tpu not given)")
        raise NoTPUError(f"--strategy tpu: no TPU found at {tried} "
                         f"({type(error).__name__}: {str(error).splitlines()[0]}). {hint}"
                         ) from error
    return tf.distribute.TPUStrategy(resolver)
