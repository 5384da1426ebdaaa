"""Start-up at scale: time to the first training step, peak memory and resume, by corpus size.

    python benchmarks/scale.py [--sizes 250000,1000000,4500000] [--work-dir DIR]
        [--vocab-sample-size 100000] [--throughput-steps 40]

Writes synthetic `dir:` corpora of the given numbers of pairs into a temporary folder (never
into the project): lines of the bundled English-Spanish corpus, drawn at random and joined in
ones, twos and threes, plus fixed validation and test splits of 2,000 pairs. For each size it
runs `tft-train --preset tiny` with default options except a few steps
(`--train-steps 2 --steps-per-epoch 2`), then resumes it for two more, and prints:

- seconds from the process start to its first finished training step (the trainer logs it),
  and how many of them the vocabulary took (first run only: a resume reuses it);
- peak resident memory of the process (`os.wait4`'s ru_maxrss);
- the same two figures for the resumed run.

Then steps/s of `--throughput-steps` steps (after a first interval that traces and warms up)
on the 1M corpus (or the largest size given) against the bundled corpus (`anki_spa_eng`), same
model and batch. The machine may be shared: figures taken side by side in one run compare,
absolute ones are noisy.
"""

import argparse
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED = os.path.join(PROJECT_ROOT, "tf_transformer", "data", "anki_spa_eng", "spa.txt.gz")
FIRST_STEP = re.compile(r"First training step finished .* \(unix time ([0-9.]+)\)")
VOCABULARY = re.compile(r"Vocabulary ready in ([0-9.]+) s")
# Keras' one line per epoch (--verbose 2) ends with the epoch's target tokens and the
# ThroughputCallback's tokens/s of its training steps: steps/s = steps x tokens/s / tokens.
EPOCH_LINE = re.compile(r"^\s*(\d+)/\d+ - .* - tokens: ([0-9.e+]+) .*"
                        r"- tokens_per_second: ([0-9.e+]+)", re.MULTILINE)
# Settings that only act after the first step (evaluation, BLEU decoding, attention maps):
# kept small so the benchmark spends its time where it measures.
AFTER_FIRST_STEP = ["--bleu-samples", "0", "--attention-probes", "0"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="250000,1000000,4500000",
                        help="comma-separated corpus sizes in pairs")
    parser.add_argument("--work-dir", default=None,
                        help="where corpora and model directories go (default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--vocab-sample-size", type=int, default=None,
                        help="passed to tft-train (default: tft-train's own default)")
    parser.add_argument("--throughput-steps", type=int, default=40,
                        help="steps timed for steps/s (0 skips the comparison)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def bundled_pairs():
    with gzip.open(BUNDLED, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t")[:2] for line in f if "\t" in line]


def write_corpus(directory, size, pairs, seed):
    """train (`size` joined pairs), validation and test (2,000 each) .en/.es files."""
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(seed)
    for split, count in (("train", size), ("validation", 2000), ("test", 2000)):
        with open(os.path.join(directory, f"{split}.en"), "w", encoding="utf-8") as en, \
                open(os.path.join(directory, f"{split}.es"), "w", encoding="utf-8") as es:
            for _ in range(count):
                joined = [pairs[rng.randrange(len(pairs))] for _ in range(rng.randint(1, 3))]
                en.write(" ".join(english for english, _ in joined) + "\n")
                es.write(" ".join(spanish for _, spanish in joined) + "\n")
    return directory


def run_trainer(model_dir, data, options, log_path, verbose=0):
    """Runs tft-train; returns (seconds to first step, vocabulary seconds, peak RSS bytes,
    summary dict, log text)."""
    command = [sys.executable, "-m", "trainers.train", "--model-dir", model_dir,
               "--preset", "tiny", "--data", data, "--verbose", str(verbose), *options]
    if data.startswith("dir:"):
        command += ["--source-lang", "en", "--target-lang", "es"]
    env = dict(os.environ, PYTHONPATH=PROJECT_ROOT, TF_CPP_MIN_LOG_LEVEL="2",
               CUDA_VISIBLE_DEVICES="-1")
    with open(log_path, "w") as log:
        started = time.time()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=PROJECT_ROOT)
        _, status, usage = os.wait4(process.pid, 0)
    with open(log_path) as f:
        text = f.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"tft-train failed ({command}):\n{text[-3000:]}")
    first = FIRST_STEP.search(text)
    vocabulary = VOCABULARY.search(text)
    summary = json.loads([line for line in text.splitlines() if line.startswith("{")][-1])
    return (float(first.group(1)) - started if first else None,
            float(vocabulary.group(1)) if vocabulary else None,
            usage.ru_maxrss * 1024, summary, text)


def print_table(rows):
    print()
    print("| pairs | train MB | first step (s) | of which vocabulary (s) | peak RSS (GB) | "
          "resumed: first step (s) | resumed: peak RSS (GB) | load avg |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['pairs']:,} | {row['megabytes']:.0f} | {row['first_step_s']:.1f} | "
              f"{row['vocabulary_s']:.1f} | {row['peak_rss_gb']:.2f} | "
              f"{row['resume_first_step_s']:.1f} | {row['resume_peak_rss_gb']:.2f} | "
              f"{row['load']:.1f} |", flush=True)


def main():
    args = parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    work = args.work_dir or tempfile.mkdtemp(prefix="tft-scale-")
    common = list(AFTER_FIRST_STEP)
    if args.vocab_sample_size:
        common += ["--vocab-sample-size", str(args.vocab_sample_size)]
    load = os.getloadavg()[0]
    print(f"work dir {work}; load average {load:.1f} on {os.cpu_count()} cores at start")
    pairs = bundled_pairs()
    rows = []
    try:
        for size in sizes:
            started = time.perf_counter()
            corpus = write_corpus(os.path.join(work, f"corpus_{size}"), size, pairs, args.seed)
            megabytes = sum(os.path.getsize(os.path.join(corpus, name))
                            for name in ("train.en", "train.es")) / 1e6
            print(f"{size} pairs: {megabytes:.0f} MB written in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            model_dir = os.path.join(work, f"model_{size}")
            fresh = run_trainer(model_dir, f"dir:{corpus}",
                                [*common, "--train-steps", "2", "--steps-per-epoch", "2"],
                                os.path.join(work, f"fresh_{size}.log"))
            resumed = run_trainer(model_dir, f"dir:{corpus}",
                                  [*common, "--train-steps", "4", "--steps-per-epoch", "2"],
                                  os.path.join(work, f"resume_{size}.log"))
            row = {"pairs": size, "megabytes": megabytes, "first_step_s": fresh[0],
                   "vocabulary_s": fresh[1], "peak_rss_gb": fresh[2] / 1e9,
                   "resume_first_step_s": resumed[0], "resume_peak_rss_gb": resumed[2] / 1e9,
                   "load": os.getloadavg()[0]}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if size != sizes[-1] and size != 1_000_000:
                shutil.rmtree(corpus)
        print_table(rows)
        if args.throughput_steps:
            big = 1_000_000 if 1_000_000 in sizes else sizes[-1]
            speeds = {}
            for name, data in (("bundled", "anki_spa_eng"),
                               (f"{big}", f"dir:{os.path.join(work, f'corpus_{big}')}")):
                options = [*common, "--train-steps", str(2 * args.throughput_steps),
                           "--steps-per-epoch", str(args.throughput_steps),
                           "--validation-steps", "1"]
                text = run_trainer(os.path.join(work, f"throughput_{name}"), data, options,
                                   os.path.join(work, f"throughput_{name}.log"), verbose=2)[4]
                # The second interval: the first one traces the step function.
                steps, tokens, tokens_per_second = map(float, EPOCH_LINE.findall(text)[-1])
                speeds[name] = {"steps_per_second": steps * tokens_per_second / tokens,
                                "target_tokens_per_second": tokens_per_second}
                print(name, json.dumps(speeds[name]), flush=True)
            names = list(speeds)
            ratio = (speeds[names[1]]["steps_per_second"] /
                     speeds[names[0]]["steps_per_second"])
            print(f"steps/s {names[1]} pairs / bundled = {ratio:.2f} (load average "
                  f"{os.getloadavg()[0]:.1f})")
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
