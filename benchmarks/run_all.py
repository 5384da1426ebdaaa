"""Runs every benchmark present in this folder and writes benchmarks/RESULTS.md (`make bench`).

    python benchmarks/run_all.py [--only train_throughput,decoding] [--quick]
        [--output benchmarks/RESULTS.md]

Each benchmark runs in its own process, one after the other, with its output shown as it
goes: input_pipeline.py, train_throughput.py, decoding.py and serving.py (those that exist).
RESULTS.md gets the date, the machine (CPU model, cores, TensorFlow/Keras versions, matmul
peak) and each benchmark's tables; the translation-quality figures of benchmarks/quality.py
(which trains for up to an hour and so runs on its own) are added from its JSON files in
benchmarks/results/ when they exist.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from benchmarks import common  # noqa: E402

RESULTS_DIR = os.path.join(HERE, "results")

# name -> (script, arguments, arguments with --quick, what it measures)
BENCHMARKS = {
    "input_pipeline": ("input_pipeline.py", [], [],
                       "Input pipeline: padding and tokens/s, token budget vs fixed-size batches"),
    "train_throughput": (
        "train_throughput.py", ["--json", os.path.join(RESULTS_DIR, "train_throughput.json")],
        ["--steps", "3", "--rounds", "2", "--warmup", "2", "--real-steps", "10"],
        "Training step throughput: tf_transformer vs KerasHub vs PyTorch"),
    "decoding": ("decoding.py", ["--json", os.path.join(RESULTS_DIR, "decoding.json")],
                 ["--sentences", "32", "--repeats", "1"],
                 "Decoding: tf_transformer (uncached, cached, beam 4) vs CTranslate2"),
    "serving": ("serving.py", [], ["--requests-per-client", "10"],
                "Serving: REST throughput and latency with and without batching"),
}

# Start-up chatter of TensorFlow, XLA and Keras that is not part of any result.
_NOISE = re.compile(r"cuda|oneDNN|cpu_feature_guard|rebuild TensorFlow|WARNING: All log|"
                    r"E0000|I0000|computation placer|UserWarning|warnings\.warn|retracing|"
                    r"AutoGraph|do_not_convert|^\s*lambda|# coding")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=None,
                        help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    return parser.parse_args(argv)


# The translator `make demo` exports: the serving benchmark measures it when it exists (a
# real model's per-row cost is what dynamic batching is for), else an untrained tiny export.
DEMO_EXPORT = os.path.join(ROOT, "runs", "demo", "exports", "translator")


def run(name, quick):
    """Runs one benchmark script; returns (exit code, seconds, its filtered output lines)."""
    script, arguments, quick_arguments, _ = BENCHMARKS[name]
    if name == "serving" and os.path.isdir(DEMO_EXPORT):
        arguments = [*arguments, "--model-base-path", DEMO_EXPORT]
    command = [sys.executable, os.path.join(HERE, script), *arguments,
               *(quick_arguments if quick else [])]
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        line = line.rstrip("\n")
        if _NOISE.search(line):
            continue
        print(line, flush=True)
        lines.append(line)
    return process.wait(), time.perf_counter() - started, lines


def throughput_section(path):
    """The train_throughput tables and ratios from its JSON file."""
    with open(path, encoding="utf-8") as f:
        payload = json.load(f)
    peaks = payload["matmul_peak_gflops"]
    parts = [f"Matmul peak (measured, {payload['args']['peak_size']}^2 tf.matmul): "
             f"fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s. "
             "Best of interleaved rounds; 'of peak' compares the achieved FLOP/s of a "
             "training step (formula in train_throughput.py) with that peak."]
    for title, table in payload["tables"]:
        parts.append(f"**{title}**\n\n{table}")
    return "\n\n".join(parts)


def quality_section():
    """Rows of the quality JSON files in benchmarks/results/, or None."""
    rows, header = [], None
    for path in sorted(glob.glob(os.path.join(RESULTS_DIR, "quality_*.json"))):
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        header = header or payload["results_header"]
        rows.append(payload["results_row"])
    if not rows:
        return None
    return (f"{header}\n" + "\n".join(rows) + "\n\nDetokenized, cased sacreBLEU (13a); "
            "produced by `python benchmarks/quality.py ...` (see its JSON in "
            "benchmarks/results/ for the per-ingredient figures).")


def _previous_sections(path):
    """{title: "## title ..." section text} of an existing RESULTS.md (empty if none)."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        text = f.read()
    sections = {}
    for chunk in text.split("\n## ")[1:]:
        title = chunk.split("\n", 1)[0].strip()
        sections[title] = "## " + chunk.rstrip()
    return sections


def main(argv=None):
    args = parse_args(argv)
    names = list(BENCHMARKS) if args.only is None else [
        name.strip() for name in args.only.split(",") if name.strip()]
    for name in names:
        if name not in BENCHMARKS:
            raise ValueError(f"Unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}.")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    info = common.machine_info()
    # Benchmarks not run this time keep their section from the last RESULTS.md.
    previous = _previous_sections(args.output)
    sections = {title: previous[title] for _, _, _, title in BENCHMARKS.values()
                if title in previous}
    for name in names:
        script, _, _, title = BENCHMARKS[name]
        if not os.path.exists(os.path.join(HERE, script)):
            print(f"\n=== {name}: {script} not present, skipped")
            continue
        code, seconds, lines = run(name, args.quick)
        status = "" if code == 0 else f" (exited with code {code})"
        json_path = os.path.join(RESULTS_DIR, "train_throughput.json")
        if name == "train_throughput" and code == 0 and os.path.exists(json_path):
            body = throughput_section(json_path)
        else:
            body = "```\n" + "\n".join(lines).strip() + "\n```"
        sections[title] = (f"## {title}\n\n`python benchmarks/{script}`, {seconds:.0f} s, "
                           f"{info['date'][:10]}{status}.\n\n{body}")
    sections = [sections[title] for _, _, _, title in BENCHMARKS.values() if title in sections]
    quality = quality_section()
    if quality:
        sections.append(f"## Translation quality\n\n{quality}")
    header = (f"# Benchmark results\n\nDate: {info['date']}\n\nMachine: "
              f"{common.describe_machine(info)}, Python {info['python']}."
              + (" Quick run (fewer steps)." if args.quick else "")
              + "\n\nFigures from one run on this machine; other processes on it make them "
                "noisy, which is why timed rounds are interleaved and the best one is kept.")
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(header + "\n\n" + "\n\n".join(sections) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
