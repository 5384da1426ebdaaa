"""Translation quality through the product's own commands: tft-train, tft-export, the export.

    python benchmarks/quality.py /work/shared/data/multi30k [--minutes 60] [--work-dir DIR]

1. `tft-train` with the recipe below (plain options, printed so the run can be repeated by
   hand) and `--max-minutes`: it stops at the end of the last interval (`--interval-steps`
   optimizer steps) that fits the budget, start-up included, and keeps the last `--average`
   interval checkpoints.
2. `tft-export` twice: the best single checkpoint (validation-sample BLEU) and
   `--average-last N` of the kept interval checkpoints.
3. Both SavedModels translate the validation split (greedy); the better one is kept, and
   both are scored on the test splits, greedy and with beam search (beam 4, with and without
   the length penalty): detokenized, cased sacreBLEU (13a). Every translation goes through
   the export and `translate_texts`, the library's one batched translation path (as
   tft-translate and the training BLEU callback).

Also reported: optimizer steps, target tokens trained on and epochs (machines differ in
speed, so the budget alone does not say how much training happened).

The figures go to --json (default benchmarks/results/quality_de_en.json), including a
Markdown row that benchmarks/run_all.py puts into benchmarks/RESULTS.md.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402, F401  (the export's tokenizer ops)

from benchmarks import common  # noqa: E402
from tf_transformer.data import load_parallel  # noqa: E402
from tf_transformer.metrics import corpus_bleu  # noqa: E402
from tf_transformer.translator import translate_texts  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
D_MODEL, WARMUP_STEPS, PEAK_LEARNING_RATE = 256, 300, 2e-3
# The Multi30k recipe: `small` scaled to d_model 256 (3+3 layers, 7.6M parameters with the
# shared 8,000-piece vocabulary and tied embeddings), pre-norm, dropout 0.2, label smoothing
# 0.1, bf16, 4,096-token batches, a short warmup (300 steps) to a peak learning rate of 2e-3
# (the schedule peaks at scale * (d_model * warmup_steps)^-0.5). Pre-norm is what allows the
# short warmup and high peak; benchmarks/RESULTS.md has the ablations.
RECIPE = [
    "--preset", "small", "--d-model", str(D_MODEL), "--num-layers", "3", "--num-heads", "4",
    "--d-ff", "1024", "--norm-first", "--dropout", "0.2", "--vocab-size", "8000", "--shared-vocab",
    "--batch-tokens", "4096", "--max-length", "64", "--model-max-length", "64",
    "--warmup-steps", str(WARMUP_STEPS), "--learning-rate-scale",
    f"{PEAK_LEARNING_RATE * math.sqrt(D_MODEL * WARMUP_STEPS):.6g}",
    "--label-smoothing", "0.1", "--mixed-precision", "bf16", "--bleu-samples", "300",
    "--bleu-batch-tokens", "4096", "--attention-probes", "0",
    # Unbounded in steps: --max-minutes ends the run.
    "--train-steps", "1000000",
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("multi30k", help="the Multi30k folder (train.de, train.en, ...)")
    parser.add_argument("--source-lang", default="de")
    parser.add_argument("--target-lang", default="en")
    parser.add_argument("--test-splits", default="test_2016_flickr,test_2017_flickr",
                        help="comma-separated test splits")
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="tft-train --max-minutes (start-up and validation included)")
    parser.add_argument("--interval-steps", type=int, default=110,
                        help="tft-train --steps-per-epoch: steps between evaluations, "
                             "checkpoints and time-budget checks (default 110, about one "
                             "pass over Multi30k's training split)")
    parser.add_argument("--average", type=int, default=5,
                        help="epoch checkpoints kept and averaged (at most)")
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=0.6, help="GNMT length penalty")
    parser.add_argument("--batch-tokens", type=int, default=4096,
                        help="padded words per translation batch (sentences length-sorted)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None,
                        help="model dir and exports go here (default: a new temporary folder)")
    parser.add_argument("--json", default=None,
                        help="default benchmarks/results/quality_SRC_TGT.json")
    return parser.parse_args(argv)


def run(command):
    """Runs a product command (python -m ...), streaming its output; returns its last line."""
    print("$ " + " ".join(command[1:]), flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                               env=dict(os.environ, PYTHONPATH=ROOT))
    last = ""
    for line in process.stdout:
        print("  " + line, end="", flush=True)
        last = line.strip() or last
    if process.wait() != 0:
        raise SystemExit(f"{command[2]} failed with exit code {process.returncode}")
    return last


def read_split(data, split, args):
    pairs = load_parallel(data, split, args.source_lang, args.target_lang)
    sources, references = [], []
    for source, target in pairs.as_numpy_iterator():
        sources.append(source.decode("utf-8"))
        references.append(target.decode("utf-8"))
    return sources, references


def main(argv=None):
    args = parse_args(argv)
    info = common.machine_info()
    print(common.describe_machine(info), flush=True)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="tft-quality-")
    model_dir = os.path.join(work_dir, "model")
    data = f"dir:{os.path.abspath(args.multi30k)}"
    train_command = [
        sys.executable, "-m", "trainers.train", "--model-dir", model_dir, "--data", data,
        "--source-lang", args.source_lang, "--target-lang", args.target_lang, *RECIPE,
        "--max-minutes", f"{args.minutes:g}", "--keep-checkpoints", str(args.average),
        "--seed", str(args.seed), "--verbose", "2"]
    train_command += ["--steps-per-epoch", str(args.interval_steps)]
    started = time.perf_counter()
    summary = json.loads(run(train_command))
    training_minutes = (time.perf_counter() - started) / 60

    kept = len([name for name in os.listdir(os.path.join(model_dir, "checkpoints"))
                if name.startswith("step_")])
    exports = {"best single": ["--checkpoint", "best"]}
    if kept >= 2:
        exports[f"average of last {kept}"] = ["--average-last", str(kept)]
    loaded = {}
    for index, (name, option) in enumerate(exports.items(), start=1):
        export_dir = os.path.join(work_dir, "exports", "quality", str(index))
        run([sys.executable, "-m", "serving.export", "--model-dir", model_dir,
             "--export-dir", export_dir, *option])
        loaded[name] = tf.saved_model.load(export_dir)

    splits = {"validation": read_split(data, "validation", args)}
    for split in args.test_splits.split(","):
        splits[split] = read_split(data, split, args)
    sources, references = splits["validation"]
    validation = {name: corpus_bleu(translate_texts(export, sources, args.batch_tokens),
                                    references)
                  for name, export in loaded.items()}
    final = max(validation, key=validation.get)
    print("validation greedy BLEU: " + ", ".join(
        f"{name} {score:.2f}" for name, score in validation.items()) + f"; keeping {final}")

    decoders = {"greedy": {},
                f"beam {args.beam_size}, alpha 0": dict(beam_size=args.beam_size, alpha=0.0),
                f"beam {args.beam_size}, alpha {args.alpha}": dict(beam_size=args.beam_size,
                                                                   alpha=args.alpha)}
    test = {}
    for name, export in loaded.items():
        for split, (sources, references) in splits.items():
            if split == "validation":
                continue
            for decoder, options in decoders.items():
                score = corpus_bleu(
                    translate_texts(export, sources, args.batch_tokens, **options), references)
                test.setdefault(split, {}).setdefault(name, {})[decoder] = score
                print(f"  {split:18} {name:22} {decoder:20} BLEU {score:6.2f}", flush=True)

    payload = {
        "machine": info, "args": vars(args), "model_dir": model_dir,
        "train_command": " ".join(["tft-train"] + train_command[3:]),
        "training_minutes": training_minutes, "epochs": summary["epoch"],
        "optimizer_steps": summary["optimizer_steps"],
        "train_tokens": summary["train_tokens"],
        "train_tokens_per_second": summary["tokens_per_second"],
        "best_epoch": summary["best_epoch"], "stopped": summary["stopped"],
        "evaluation": {"validation_greedy": validation, "test": test},
        "final_model": final,
    }
    beam = f"beam {args.beam_size}, alpha {args.alpha}"
    cells = [f"{args.source_lang}->{args.target_lang}",
             f"{training_minutes:.1f} min, {summary['epoch']} epochs, "
             f"{summary['optimizer_steps']} steps, {summary['train_tokens'] / 1e6:.1f}M tokens",
             final]
    for split in args.test_splits.split(","):
        scores = test.get(split, {}).get(final, {})
        cells.append(f"{scores.get('greedy', float('nan')):.1f} / "
                     f"{scores.get(beam, float('nan')):.1f}")
    header = ["pair", "training", "weights"] + [
        f"{split} greedy / beam {args.beam_size}" for split in args.test_splits.split(",")]
    payload["results_row"] = "| " + " | ".join(cells) + " |"
    payload["results_header"] = ("| " + " | ".join(header) + " |\n|" + "|".join(
        ":--" if i < 3 else "--:" for i in range(len(header))) + "|")
    json_path = args.json or os.path.join(
        HERE, "results", f"quality_{args.source_lang}_{args.target_lang}.json")
    common.write_json(json_path, payload)
    print(f"\n{payload['results_header']}\n{payload['results_row']}\nwrote {json_path}")
    return payload


if __name__ == "__main__":
    main()
