"""Serving benchmark: throughput and latency with and without dynamic batching.

Starts `python -m serving.server` twice on loopback (once plain, once with
`--enable-batching`), sends one-sentence REST predict requests from 1, 8 and 32
concurrent clients, and prints sentences/s and p50 / p99 latency side by side:

    python benchmarks/serving.py --model-base-path EXPORT_BASE/translator
    python benchmarks/serving.py            # exports an untrained `tiny` translator

Without --model-base-path the script exports an untrained `tiny`-preset Transformer with a
small vocabulary (`serving.export`, the same module as a trained export): it does little
work per sentence, so the figures mostly measure the server's own overhead; a trained
export of a larger model spends most of its time in the model, which is where batching pays.
"""

import argparse
import concurrent.futures
import os
import sys
import tempfile
import threading
import time

import numpy as np
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# This script is itself named serving.py: look for modules from the project root first, so
# that `serving` is the package, not this file.
sys.path[0] = ROOT
from serving.server.process import ServerProcess  # noqa: E402

DEFAULT_SENTENCES = [
    "Tom is reading a book in the garden.",
    "I don't know what you are talking about.",
    "She went to the market yesterday.",
    "Where is the nearest train station?",
    "We have to leave before it gets dark.",
    "My brother plays the guitar very well.",
    "Can you help me carry these boxes?",
    "It has been raining all week.",
]


def run_load(url, sentences, concurrency, requests_per_client):
    """Runs `concurrency` clients; returns (sentences per second, latencies in seconds)."""
    latencies = []
    lock = threading.Lock()
    start_barrier = threading.Barrier(concurrency + 1)

    def client(index):
        session = requests.Session()
        mine = []
        start_barrier.wait()
        for i in range(requests_per_client):
            sentence = sentences[(index + i) % len(sentences)]
            begin = time.perf_counter()
            answer = session.post(url, json={"instances": [sentence]}, timeout=120)
            mine.append(time.perf_counter() - begin)
            if answer.status_code != 200:
                raise RuntimeError(f"request failed: {answer.status_code} {answer.text}")
        with lock:
            latencies.extend(mine)

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        jobs = [pool.submit(client, i) for i in range(concurrency)]
        start_barrier.wait()
        begin = time.perf_counter()
        for job in jobs:
            job.result()
        elapsed = time.perf_counter() - begin
    return len(latencies) / elapsed, np.array(latencies)


def measure(model_name, base_path, extra_args, sentences, concurrencies, requests_per_client):
    server = ServerProcess(["--model-name", model_name, "--model-base-path", base_path,
                            *extra_args], timeout=300, cwd=ROOT)
    url = f"{server.rest_url}/v1/models/{model_name}:predict"
    try:
        run_load(url, sentences, 4, 5)  # warm-up: traces, connection pools
        results = {}
        for concurrency in concurrencies:
            results[concurrency] = run_load(url, sentences, concurrency, requests_per_client)
        return results
    finally:
        server.terminate()


def build_untrained_export(directory):
    """Exports an untrained `tiny` translator (1,000-piece vocabulary) as translator/1."""
    import tensorflow as tf

    import tf_transformer
    from serving.export import export
    from tf_transformer.data import load_parallel
    from tf_transformer.text import train_tokenizers

    tf.keras.utils.set_random_seed(0)  # before any tokenizer exists: it resets eager resources
    pairs = load_parallel("anki_spa_eng", "train").take(5000).as_numpy_iterator()
    tokenizers = train_tokenizers(pairs, os.path.join(directory, "tokenizer"), vocab_size=1000)
    config = tf_transformer.TransformerConfig.preset(
        "tiny", vocab_size=tokenizers.source.vocab_size)
    base = os.path.join(directory, "translator")
    export(tf_transformer.Transformer(config), tokenizers, os.path.join(base, "1"))
    return base


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-base-path",
        help="EXPORT_BASE/NAME with version folders (default: export an untrained tiny model)",
    )
    parser.add_argument("--model-name", help="model name (default: the base path's folder name)")
    parser.add_argument(
        "--sentences-file", help="one sentence per line (default: built-in English sentences)"
    )
    parser.add_argument(
        "--concurrency", default="1,8,32", help="comma-separated client counts (default 1,8,32)"
    )
    parser.add_argument("--requests-per-client", type=int, default=40)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=2000)
    parser.add_argument("--num-threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    sentences = DEFAULT_SENTENCES
    if args.sentences_file:
        with open(args.sentences_file, encoding="utf-8") as f:
            sentences = [line.strip() for line in f if line.strip()]
    concurrencies = [int(c) for c in args.concurrency.split(",")]

    with tempfile.TemporaryDirectory() as scratch:
        base_path = args.model_base_path or build_untrained_export(scratch)
        model_name = args.model_name or os.path.basename(os.path.normpath(base_path))
        common = ["--num-threads", str(args.num_threads)]
        plain = measure(
            model_name, base_path, common, sentences, concurrencies, args.requests_per_client
        )
        batched = measure(
            model_name,
            base_path,
            common
            + [
                "--enable-batching",
                "--max-batch-size",
                str(args.max_batch_size),
                "--batch-timeout-micros",
                str(args.batch_timeout_micros),
                "--num-batch-threads",
                str(args.num_threads),
            ],
            sentences,
            concurrencies,
            args.requests_per_client,
        )

    print(
        f"model {model_name} at {base_path}; {args.requests_per_client} "
        "one-sentence REST requests per client; "
        f"batching: max_batch_size={args.max_batch_size} "
        f"batch_timeout_micros={args.batch_timeout_micros}; "
        f"{os.cpu_count()} CPUs"
    )
    header = (
        f"{'clients':>7} | {'no batching':^29} | {'dynamic batching':^29} | {'speed-up':>8}\n"
        f"{'':>7} | {'sent/s':>9} {'p50 ms':>9} "
        f"{'p99 ms':>9} | {'sent/s':>9} {'p50 ms':>9} {'p99 ms':>9} |"
    )
    print(header)
    for concurrency in concurrencies:
        row = [f"{concurrency:>7}"]
        cells = []
        for results in (plain, batched):
            throughput, latencies = results[concurrency]
            p50, p99 = np.percentile(latencies, [50, 99]) * 1000
            cells.append(f"{throughput:>9.1f} {p50:>9.1f} {p99:>9.1f}")
        speedup = batched[concurrency][0] / plain[concurrency][0]
        print(" | ".join(row + cells) + f" | {speedup:>7.2f}x")


if __name__ == "__main__":
    main()
