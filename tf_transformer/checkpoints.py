"""Interval checkpoints of a model directory, and averaging them (section 6.1 of the paper).

A trainer writes the weights at the end of every interval (epoch) to
`CHECKPOINTS_DIR/step_STEP.weights.h5`, STEP being the optimizer step reached, and keeps the
last few; the paper's base models average the last 5 of them. Writers go through
`interval_checkpoint_path`, readers through `list_interval_checkpoints`, so the name has one
home.
"""

import os
import re
import warnings

import numpy as np

_PATTERN = re.compile(r"^step_(\d+)\.weights\.h5$")


def interval_checkpoint_path(checkpoints_dir, step):
    """Path of the interval checkpoint taken at optimizer step `step`."""
    return os.path.join(os.fspath(checkpoints_dir), f"step_{int(step):08d}.weights.h5")


def list_interval_checkpoints(checkpoints_dir):
    """Interval checkpoints in `checkpoints_dir`, oldest first, as (step, path) pairs."""
    checkpoints_dir = os.fspath(checkpoints_dir)
    if not os.path.isdir(checkpoints_dir):
        return []
    found = []
    for name in os.listdir(checkpoints_dir):
        match = _PATTERN.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(checkpoints_dir, name)))
    return sorted(found)


def last_interval_checkpoints(checkpoints_dir, count):
    """Paths of the last `count` interval checkpoints, oldest first.

    Raises:
        ValueError: `count` is not positive, or fewer checkpoints exist.
    """
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"The number of checkpoints to average must be a positive integer; "
                         f"received {count!r}.")
    found = list_interval_checkpoints(checkpoints_dir)
    if len(found) < count:
        steps = ", ".join(str(step) for step, _ in found) or "none"
        raise ValueError(
            f"Cannot average the last {count} checkpoints: {checkpoints_dir} holds "
            f"{len(found)} interval checkpoint(s) (steps: {steps}). Ask for at most "
            f"{len(found)}, or train with a larger --keep-checkpoints.")
    return [path for _, path in found[-count:]]


def average_checkpoints(model, paths):
    """Loads the element-wise mean of the weights in `paths` into `model`.

    Every weight (trainable or not) is averaged in float64 and cast back to its dtype.

    Args:
        model: a built Keras model the checkpoints were saved from (same architecture).
        paths: list of str, `.weights.h5` files.

    Returns:
        `model`, holding the averaged weights.
    """
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint path.")
    total = None
    with warnings.catch_warnings():
        # Checkpoints of a compiled model also hold optimizer state, which is not averaged.
        warnings.filterwarnings("ignore", message=".*optimizer.*")
        for path in paths:
            model.load_weights(path)
            weights = [np.asarray(value, np.float64) for value in model.get_weights()]
            total = weights if total is None else [a + b for a, b in zip(total, weights)]
    dtypes = [np.asarray(value).dtype for value in model.get_weights()]
    model.set_weights([(value / len(paths)).astype(dtype) for value, dtype in zip(total, dtypes)])
    return model
