"""Helpers shared by the benchmark scripts: machine description, matmul peak, tables, JSON.

Nothing here is part of the library; the scripts in this folder print figures and are never
run by the test suite.
"""

import datetime
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags(wanted=("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx2", "fma")):
    """The subset of `wanted` instruction-set flags this CPU reports (Linux only)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in present]
    except OSError:
        pass
    return []


def machine_info():
    """A dict describing the machine and the library versions, for RESULTS.md and JSON."""
    import keras

    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    try:
        import keras_hub
        info["keras_hub"] = keras_hub.__version__
    except ImportError:
        pass
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def describe_machine(info):
    """One line naming the CPU, cores and versions."""
    versions = ", ".join(f"{name} {info[name]}" for name in
                         ("tensorflow", "keras", "keras_hub", "torch") if name in info)
    flags = " ".join(info.get("cpu_flags", []))
    return f"{info['cpu']}, {info['cores']} cores ({flags}); {versions}"


def matmul_peak(dtype=tf.float32, size=2048, repeats=5, min_seconds=0.5):
    """Measures the best matrix-multiply rate of this CPU in GFLOP/s for `dtype`.

    Multiplies two [size, size] matrices inside a `tf.function` (2 * size^3 FLOPs each) and
    keeps the fastest of `repeats` timed runs of at least `min_seconds`.

    Args:
        dtype: tf.DType, default float32 (also bfloat16).
        size: int, default 2048.
        repeats: int, default 5.
        min_seconds: float, default 0.5. Shortest timed run.

    Returns:
        float, GFLOP/s.
    """
    a = tf.random.normal([size, size], dtype=tf.float32)
    b = tf.random.normal([size, size], dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)

    @tf.function
    def multiply(count):
        total = tf.zeros([], tf.float32)
        for _ in tf.range(count):
            # Summing one element keeps every product alive without timing a reduction.
            total += tf.cast(tf.matmul(a, b)[0, 0], tf.float32)
        return total

    multiply(tf.constant(2)).numpy()  # trace and warm up
    count = 4
    best = 0.0
    for _ in range(repeats):
        while True:
            start = time.perf_counter()
            multiply(tf.constant(count)).numpy()
            seconds = time.perf_counter() - start
            if seconds >= min_seconds:
                break
            count *= 2
        best = max(best, 2.0 * size ** 3 * count / seconds / 1e9)
    return best


def format_table(headers, rows, align=None):
    """Formats rows as a Markdown table (readable as plain text too).

    Args:
        headers: list of str.
        rows: list of lists of values (str, int or float; floats printed as given).
        align: str of "l"/"r" per column, default first column left and the rest right.

    Returns:
        str.
    """
    align = align or "l" + "r" * (len(headers) - 1)
    cells = [[str(value) for value in row] for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(len(headers))]

    def line(values):
        padded = [value.ljust(width) if side == "l" else value.rjust(width)
                  for value, width, side in zip(values, widths, align)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (width + 1) + ":") if side == "r" else (":" + "-" * (width + 1))
                          for width, side in zip(widths, align)) + "|"
    return "\n".join([line(headers), rule] + [line(row) for row in cells])


def write_json(path, payload):
    """Writes `payload` as indented JSON, creating the folder if needed."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
