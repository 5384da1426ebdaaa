"""Decoding throughput: uncached greedy vs cached greedy vs beam search, side by side.

Prints sentences/s and generated target tokens/s at each batch size for:
- uncached greedy: re-runs the decoder on the whole prefix at every step (the TensorFlow
  tutorial's loop), O(C^2) decoder work;
- cached greedy: one decoder position per step on the key/value cache;
- beam search (beam 4) on the cache.

Sources are sentences of the bundled anki_spa_eng test split. Without --model-dir, a `small`
model with random weights is used and END is never chosen, so every sentence decodes exactly
--output-length tokens (the ratio is about decoding cost, not translation quality).

Usage:
    python benchmarks/decoding.py [--model-dir MODEL_DIR] [--sentences 64]
        [--batch-sizes 1 32] [--output-length 30]
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tf_transformer  # noqa: E402
from tf_transformer import decoding  # noqa: E402
from tf_transformer.data import load_parallel  # noqa: E402


def _model_and_tokenizer(args):
    if args.model_dir:
        from tf_transformer.model_dir import load_model

        model, tokenizers = load_model(args.model_dir)
        return model, tokenizers.source, False
    from tf_transformer.text import train_tokenizers

    # Seed first: setting the seed later would drop the tokenizer's eager resources.
    tf.keras.utils.set_random_seed(0)
    pairs = load_parallel("anki_spa_eng", "train").take(20000)
    tokenizers = train_tokenizers(pairs.as_numpy_iterator(), tempfile.mkdtemp(),
                                  vocab_size=args.vocab_size)
    config = tf_transformer.TransformerConfig.preset(
        args.preset, vocab_size=tokenizers.source.vocab_size, dropout=0.0)
    return tf_transformer.Transformer(config), tokenizers.source, True


def _suppress_end(model):
    """Makes END impossible so that every sentence runs to the length cap."""
    original = model.decode_step

    def decode_step(token_ids, step, cache):
        logits, cache = original(token_ids, step, cache)
        end = tf.one_hot(decoding.END_ID, tf.shape(logits)[-1]) * decoding.NEG_INF
        return logits + end, cache

    model.decode_step = decode_step
    original_decode = model.decode

    def decode(target_ids, memory, source_ids, training=False):
        logits = original_decode(target_ids, memory, source_ids, training=training)
        return logits + tf.one_hot(decoding.END_ID, tf.shape(logits)[-1]) * decoding.NEG_INF

    model.decode = decode


def measure(fn, batches):
    """Runs `fn` over `batches` (after one warm-up call); returns (seconds, tokens)."""
    fn(batches[0])
    tokens = 0
    started = time.perf_counter()
    for batch in batches:
        ids = fn(batch).ids.numpy()
        tokens += int(np.count_nonzero(ids))
    return time.perf_counter() - started, tokens


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", help="a model directory written by tft-train")
    parser.add_argument("--preset", default="small", help="preset for the random model")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--output-length", type=int, default=30)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    model, tokenizer, random_weights = _model_and_tokenizer(args)
    if random_weights:
        _suppress_end(model)
    texts = [source for source, _ in load_parallel("anki_spa_eng", "test")
             .take(args.sentences).as_numpy_iterator()]
    cap = args.output_length
    # The budget must not end sentences before the cap: only the cap limits them.
    budget = dict(max_length=cap, length_ratio=0.0, length_offset=cap)
    methods = {
        "uncached greedy": lambda s: decoding.greedy_decode_uncached(model, s, **budget),
        "cached greedy": lambda s: decoding.greedy_decode(model, s, **budget),
        "beam search (4)": lambda s: decoding.beam_search(model, s, beam_size=4, alpha=0.6,
                                                         **budget),
    }
    print(f"model: {'random ' if random_weights else ''}{model.transformer_config.d_model}-wide, "
          f"{model.transformer_config.num_encoder_layers}+"
          f"{model.transformer_config.num_decoder_layers} layers, "
          f"{model.count_params():,} parameters; {len(texts)} test sentences; "
          f"up to {cap} output tokens")
    rows = []
    for batch_size in args.batch_sizes:
        batches = [tokenizer.tokenize_padded(tf.constant(texts[i:i + batch_size]),
                                             model.transformer_config.max_length)
                   for i in range(0, len(texts), batch_size)]
        for name, method in methods.items():
            # One trace for every batch shape: tracing is not decoding.
            compiled = tf.function(method, input_signature=[tf.TensorSpec([None, None], tf.int32)])
            seconds, tokens = measure(compiled, batches)
            rows.append({"method": name, "batch_size": batch_size,
                         "sentences_per_second": len(texts) / seconds,
                         "tokens_per_second": tokens / seconds,
                         "tokens_per_sentence": tokens / len(texts), "seconds": seconds})
    print(f"\n{'method':<18} {'batch':>5} {'sent/s':>9} {'tokens/s':>10} {'tok/sent':>9}")
    for row in rows:
        print(f"{row['method']:<18} {row['batch_size']:>5} {row['sentences_per_second']:>9.1f} "
              f"{row['tokens_per_second']:>10.1f} {row['tokens_per_sentence']:>9.1f}")
    print()
    for batch_size in args.batch_sizes:
        by_name = {r["method"]: r for r in rows if r["batch_size"] == batch_size}
        ratio = (by_name["cached greedy"]["sentences_per_second"]
                 / by_name["uncached greedy"]["sentences_per_second"])
        print(f"batch {batch_size}: cached greedy is {ratio:.1f}x uncached greedy")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
