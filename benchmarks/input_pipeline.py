"""Padding and throughput of the input pipeline: token-budget buckets vs fixed-size batches.

    python benchmarks/input_pipeline.py [--dataset anki_spa_eng] [--max-tokens 4096]
        [--batch-size 64] [--max-length 64] [--vocab-size 8000]

Reads one split (default: the bundled corpus's train split, prepared into a temporary TFDS
data_dir unless --data-dir is given), trains a shared vocabulary on a sample of it (or loads
--tokenizer-dir), then runs one epoch of each batching mode and prints, side by side: batches,
average pairs per batch, the share of padding tokens (source + target input) and tokens/s
(real, non-padding tokens produced per second, tokenization included).
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from tf_transformer.data import load_parallel, make_batches  # noqa: E402
from tf_transformer.text import PAD_ID, TokenizerPair, train_tokenizers  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="anki_spa_eng",
                        help="anki_spa_eng, dir:PATH or tfds:NAME (default anki_spa_eng)")
    parser.add_argument("--source-lang", default=None)
    parser.add_argument("--target-lang", default=None)
    parser.add_argument("--split", default="train")
    parser.add_argument("--data-dir", default=None,
                        help="TFDS data_dir (default: a temporary folder)")
    parser.add_argument("--tokenizer-dir", default=None,
                        help="load tokenizers saved here instead of training them")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--vocab-sentences", type=int, default=50_000,
                        help="pairs sampled to train the vocabulary")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=4096,
                        help="token budget per batch and side")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="pairs per fixed-size batch")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def measure(batches):
    """Runs one epoch; returns (seconds, batches, pairs, real tokens, padded tokens)."""
    def count(inputs, target_output):
        source, target_input = inputs
        real = tf.math.count_nonzero(source != PAD_ID) + tf.math.count_nonzero(
            target_input != PAD_ID
        )
        total = tf.size(source, tf.int64) + tf.size(target_input, tf.int64)
        return tf.stack([tf.constant(1, tf.int64), tf.shape(source, tf.int64)[0], real, total])

    start = time.perf_counter()
    totals = batches.map(count).reduce(tf.zeros([4], tf.int64), lambda a, b: a + b)
    seconds = time.perf_counter() - start
    return (seconds, *totals.numpy().tolist())


def main():
    args = parse_args()
    scratch = tempfile.TemporaryDirectory()
    data_dir = args.data_dir or os.path.join(scratch.name, "tensorflow_datasets")
    pairs = load_parallel(args.dataset, args.split, args.source_lang, args.target_lang,
                          data_dir=data_dir)
    if args.tokenizer_dir:
        tokenizers = TokenizerPair.load(args.tokenizer_dir)
    else:
        start = time.perf_counter()
        tokenizers = train_tokenizers(
            pairs.take(args.vocab_sentences), os.path.join(scratch.name, "tokenizer"),
            vocab_size=args.vocab_size,
        )
        print(f"trained a shared vocabulary of {args.vocab_size} on "
              f"{args.vocab_sentences} pairs in {time.perf_counter() - start:.1f} s")

    modes = {
        f"token budget ({args.max_tokens} tokens)": dict(max_tokens=args.max_tokens),
        f"fixed size ({args.batch_size} pairs)": dict(batch_size=args.batch_size),
    }
    print(f"\n{args.dataset} {args.split}, max_length {args.max_length}, one epoch per mode, "
          f"{os.cpu_count()} CPUs")
    print(f"{'batching':<30} {'batches':>8} {'pairs/batch':>12} {'padding':>8} "
          f"{'tokens/s':>10} {'seconds':>8}")
    for name, batching in modes.items():
        batches = make_batches(pairs, tokenizers, max_length=args.max_length,
                               seed=args.seed, **batching)
        seconds, count, pair_count, real, total = measure(batches)
        print(f"{name:<30} {count:>8} {pair_count / count:>12.1f} {1 - real / total:>8.1%} "
              f"{real / seconds:>10,.0f} {seconds:>8.1f}")
    scratch.cleanup()


if __name__ == "__main__":
    main()
