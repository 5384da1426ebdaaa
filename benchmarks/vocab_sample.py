"""Vocabulary sample size: SentencePiece's cost against what the vocabulary is worth.

    python benchmarks/vocab_sample.py [--pairs 4500000] [--sizes 50000,250000,1000000]
        [--data dir:PATH --source-lang en --target-lang es] [--vocab-size 8000]

Fits the shared vocabulary the way tft-train does (`data.sample_parallel`, then
`text.train_tokenizers`) on samples of each size, each in a fresh process, and prints: seconds
to sample, seconds to fit, the process's peak RSS, and on held-out text (the validation split)
the subword pieces per sentence, and the share of pieces each vocabulary has in common with
the largest sample's. Without `--data`, a synthetic `dir:` corpus of `--pairs` pairs is
written to a temporary folder as in `benchmarks/scale.py` (bundled pairs joined in ones, twos
and threes).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from scale import bundled_pairs, write_corpus


def fit(data, source_lang, target_lang, size, vocab_size, directory):
    """One sample size, in this process: prints a JSON line."""
    from tf_transformer.data import read_parallel_dir, sample_parallel
    from tf_transformer.text import train_tokenizers

    started = time.perf_counter()
    sources, targets = sample_parallel(data, "train", size, source_lang=source_lang,
                                       target_lang=target_lang)
    sampled = time.perf_counter()
    pair = train_tokenizers(list(zip(sources, targets)), directory, vocab_size=vocab_size)
    fitted = time.perf_counter()
    held_sources, held_targets = read_parallel_dir(data[len("dir:"):], "validation",
                                                   source_lang, target_lang)
    held = held_sources + held_targets
    pieces = pair.source.tokenize(held).row_lengths().numpy().sum()
    print(json.dumps({
        "pairs": len(sources), "sample_s": sampled - started, "fit_s": fitted - sampled,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "pieces_per_sentence": float(pieces) / len(held),
    }))


def pieces_of(directory):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(directory, "shared", "sentencepiece.model"))
    return {processor.id_to_piece(i) for i in range(processor.get_piece_size())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4_500_000)
    parser.add_argument("--sizes", default="50000,250000,1000000")
    parser.add_argument("--data", help="dir:PATH of a corpus (default: a synthetic one)")
    parser.add_argument("--source-lang", default="en")
    parser.add_argument("--target-lang", default="es")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--fit", type=int, help=argparse.SUPPRESS)  # one size, in a child
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data and not args.data.startswith("dir:"):
        parser.error(f"--data must name a folder as dir:PATH (its validation split is the "
                     f"held-out text), got {args.data!r}")
    if args.fit:
        fit(args.data, args.source_lang, args.target_lang, args.fit, args.vocab_size, args.out)
        return
    work = tempfile.mkdtemp(prefix="tft-vocab-sample-")
    try:
        data = args.data
        if not data:
            started = time.perf_counter()
            data = "dir:" + write_corpus(os.path.join(work, "corpus"), args.pairs,
                                         bundled_pairs(), seed=0)
            print(f"{args.pairs} pairs written in {time.perf_counter() - started:.0f} s")
        sizes = [int(size) for size in args.sizes.split(",")]
        rows = []
        for size in sizes:
            out = os.path.join(work, f"vocab_{size}")
            child = subprocess.run(
                [sys.executable, __file__, "--fit", str(size), "--data", data, "--out", out,
                 "--source-lang", args.source_lang, "--target-lang", args.target_lang,
                 "--vocab-size", str(args.vocab_size)],
                capture_output=True, text=True, check=True)
            rows.append({"size": size, **json.loads(child.stdout.strip().splitlines()[-1])})
            print(json.dumps(rows[-1]), flush=True)
        largest = pieces_of(os.path.join(work, f"vocab_{sizes[-1]}"))
        print(f"\n| sample (pairs) | sample (s) | SentencePiece (s) | peak RSS (GB) | "
              f"held-out pieces/sentence | pieces shared with {sizes[-1]:,} |")
        print("|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            shared = len(pieces_of(os.path.join(work, f"vocab_{row['size']}")) & largest)
            print(f"| {row['pairs']:,} | {row['sample_s']:.1f} | {row['fit_s']:.1f} | "
                  f"{row['peak_rss_gb']:.2f} | {row['pieces_per_sentence']:.3f} | "
                  f"{shared / len(largest):.1%} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
