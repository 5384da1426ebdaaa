"""Translation quality: train on a corpus within a time budget, report cased sacreBLEU.

    python benchmarks/quality.py --data dir:/work/shared/data/multi30k --source-lang de \
        --target-lang en [--minutes 60] [--model-dir DIR] [--json FILE]

Trains with `trainers.train.train` (label smoothing, warmup + inverse square root schedule,
shared SentencePiece vocabulary with tied embeddings, token-budget batches), stopping when
`--minutes` of training (validation included) are spent, and prints per epoch the validation
loss and the greedy BLEU of a validation sample. Each epoch's weights are kept; afterwards
the script picks on the full validation split between the single checkpoint with the best
validation-sample BLEU and the averages of the last k epoch checkpoints (k = 2..--average),
then reports detokenized, cased sacreBLEU (13a) on the test splits for greedy decoding and
beam search (with and without the length penalty), for the single best checkpoint and the
chosen average, so that each ingredient's share is visible. Decoding goes through
`tf_transformer.translator` (the exported module), in length-sorted batches of
--decode-tokens padded words.

The figures go to --json (default benchmarks/results/quality_SRC_TGT.json), including a
Markdown row that benchmarks/run_all.py puts into benchmarks/RESULTS.md.
"""

import argparse
import glob
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from tf_transformer.data import load_parallel  # noqa: E402
from tf_transformer.metrics import corpus_bleu  # noqa: E402
from tf_transformer.model_dir import load_model  # noqa: E402
from tf_transformer.translator import Translator, translate_texts  # noqa: E402
from trainers.config import TrainingConfig  # noqa: E402
from trainers.train import train  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCH_PATTERN = "epoch_{epoch:03d}.weights.h5"

# Model sizes for a ~30k-pair corpus on a CPU: `small` is the paper's shape scaled to d=256.
PRESETS = {
    "multi30k": dict(preset="small", overrides=dict(
        d_model=256, num_encoder_layers=3, num_decoder_layers=3, num_heads=4, d_ff=1024,
        dropout=0.2)),
    "tiny": dict(preset="small", overrides=dict(
        d_model=128, num_encoder_layers=2, num_decoder_layers=2, num_heads=4, d_ff=256,
        dropout=0.1)),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="dir:PATH, anki_spa_eng or tfds:NAME")
    parser.add_argument("--source-lang", required=True)
    parser.add_argument("--target-lang", required=True)
    parser.add_argument("--test-splits", default="test_2016_flickr,test_2017_flickr",
                        help="comma-separated test splits")
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="training budget in minutes (validation included)")
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--preset", default="multi30k", choices=sorted(PRESETS))
    parser.add_argument("--dropout", type=float, default=None, help="override the preset's")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--no-shared-vocab", action="store_true",
                        help="separate vocabularies (and untied embeddings)")
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--peak-lr", type=float, default=1e-3,
                        help="learning rate at the end of warmup")
    parser.add_argument("--warmup-steps", type=int, default=800)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--mixed-precision", default="bf16", choices=["none", "bf16"])
    parser.add_argument("--average", type=int, default=5,
                        help="average up to this many last epoch checkpoints")
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=0.6, help="GNMT length penalty")
    parser.add_argument("--decode-tokens", type=int, default=4096,
                        help="padded source words decoded at once")
    parser.add_argument("--bleu-samples", type=int, default=300,
                        help="validation sentences decoded per epoch for progress and 'best'")
    parser.add_argument("--model-dir", default=None,
                        help="default: a new folder under the system's temporary folder")
    parser.add_argument("--json", default=None,
                        help="default benchmarks/results/quality_SRC_TGT.json")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


class EpochReport(keras.callbacks.Callback):
    """Prints one line per epoch and keeps the weights of the last `keep` epochs on disk."""

    def __init__(self, directory, keep):
        super().__init__()
        self.directory = directory
        self.keep = keep
        self.started = None

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        os.makedirs(self.directory, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.model.save_weights(os.path.join(self.directory,
                                             EPOCH_PATTERN.format(epoch=epoch + 1)))
        for old in sorted(glob.glob(os.path.join(self.directory, "epoch_*.weights.h5")))[
                :-self.keep]:
            os.remove(old)
        print(f"epoch {epoch + 1:3d}  {(time.perf_counter() - self.started) / 60:5.1f} min  "
              f"loss {logs.get('loss', float('nan')):.3f}  "
              f"val_loss {logs.get('val_loss', float('nan')):.3f}  "
              f"val_acc {logs.get('val_accuracy', float('nan')):.3f}  "
              f"val_bleu(sample) {logs.get('val_bleu', float('nan')):.2f}  "
              f"{logs.get('tokens_per_second', float('nan')):,.0f} tok/s", flush=True)


class TimeBudget(keras.callbacks.Callback):
    """Stops training when the next epoch would not end within `seconds` of the start."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.started = None
        self.epoch_started = None
        self.longest_epoch = 0.0

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    @property
    def elapsed(self):
        """Seconds since training (the first epoch) began."""
        return time.perf_counter() - self.started

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.started > self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.longest_epoch = max(self.longest_epoch, now - self.epoch_started)
        if now - self.started + self.longest_epoch > self.seconds:
            self.model.stop_training = True


def read_split(args, split):
    pairs = load_parallel(args.data, split, args.source_lang, args.target_lang)
    sources, references = [], []
    for source, target in pairs.as_numpy_iterator():
        sources.append(source.decode("utf-8"))
        references.append(target.decode("utf-8"))
    return sources, references


def averaged_weights(model, paths):
    """Loads each checkpoint into `model` and returns the element-wise mean of the weights."""
    total = None
    for path in paths:
        model.load_weights(path)
        weights = model.get_weights()
        total = weights if total is None else [a + b for a, b in zip(total, weights)]
    return [value / len(paths) for value in total]


def evaluate(args, model_dir, splits):
    """Chooses the checkpoint on validation and scores the test splits. Returns a dict."""
    model, tokenizers = load_model(model_dir, "best")
    translator = Translator(model, tokenizers, args.max_length)

    def translate(sentences, beam_size=None, alpha=0.6):
        return translate_texts(translator, sentences, batch_tokens=args.decode_tokens,
                               beam_size=beam_size, alpha=alpha)

    epoch_files = sorted(glob.glob(os.path.join(model_dir, "checkpoints", "epoch_*.weights.h5")))
    candidates = {"best single": model.get_weights()}
    for k in range(2, min(args.average, len(epoch_files)) + 1):
        candidates[f"average of last {k}"] = averaged_weights(model, epoch_files[-k:])
    val_sources, val_references = splits["validation"]
    validation = {}
    for name, weights in candidates.items():
        model.set_weights(weights)
        validation[name] = corpus_bleu(translate(val_sources), val_references)
        print(f"  validation greedy BLEU, {name}: {validation[name]:.2f}", flush=True)
    averages = [name for name in validation if name != "best single"]
    chosen_average = max(averages, key=validation.get) if averages else None

    results = {"validation_greedy": validation, "chosen_average": chosen_average, "test": {}}
    decoders = {"greedy": dict(beam_size=None),
                f"beam {args.beam_size}, alpha 0": dict(beam_size=args.beam_size, alpha=0.0),
                f"beam {args.beam_size}, alpha {args.alpha}": dict(beam_size=args.beam_size,
                                                                   alpha=args.alpha)}
    for name in ["best single"] + ([chosen_average] if chosen_average else []):
        model.set_weights(candidates[name])
        for split, (sources, references) in splits.items():
            if split == "validation":
                continue
            for decoder, options in decoders.items():
                start = time.perf_counter()
                score = corpus_bleu(translate(sources, **options), references)
                results["test"].setdefault(split, {}).setdefault(name, {})[decoder] = score
                print(f"  {split:18} {name:20} {decoder:20} BLEU {score:6.2f}  "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    return results


def results_row(args, payload):
    """One Markdown row for RESULTS.md: pair, model, training time, epochs, BLEU figures."""
    test = payload["evaluation"]["test"]
    final = payload["final_model"]
    beam = f"beam {args.beam_size}, alpha {args.alpha}"
    cells = [f"{args.source_lang}->{args.target_lang}",
             f"{payload['parameters'] / 1e6:.1f}M ({args.preset})",
             f"{payload['training_minutes']:.1f} min, {payload['epochs']} epochs",
             final]
    for split in args.test_splits.split(","):
        scores = test.get(split, {}).get(final, {})
        cells.append(f"{scores.get('greedy', float('nan')):.1f} / "
                     f"{scores.get(beam, float('nan')):.1f}")
    return "| " + " | ".join(cells) + " |"


def results_header(args):
    splits = args.test_splits.split(",")
    header = ["pair", "parameters", "training", "weights"] + [
        f"{split} greedy / beam {args.beam_size}" for split in splits]
    return ("| " + " | ".join(header) + " |\n|" + "|".join(
        ":--" if i < 4 else "--:" for i in range(len(header))) + "|")


def main(argv=None):
    args = parse_args(argv)
    info = common.machine_info()
    print(common.describe_machine(info), flush=True)
    model_dir = args.model_dir or tempfile.mkdtemp(prefix="tft-quality-")
    json_path = args.json or os.path.join(
        HERE, "results", f"quality_{args.source_lang}_{args.target_lang}.json")
    preset = PRESETS[args.preset]
    overrides = dict(preset["overrides"], max_length=args.max_length)
    if args.dropout is not None:
        overrides["dropout"] = args.dropout
    if args.no_shared_vocab:
        overrides["share_embeddings"] = False
    d_model = overrides["d_model"]
    training = TrainingConfig(
        data=args.data, source_lang=args.source_lang, target_lang=args.target_lang,
        vocab_size=args.vocab_size, shared_vocab=not args.no_shared_vocab,
        batch_tokens=args.batch_tokens, max_length=args.max_length, epochs=args.max_epochs,
        warmup_steps=args.warmup_steps,
        # The schedule peaks at scale * (d_model * warmup)^-0.5 at the end of warmup.
        learning_rate_scale=args.peak_lr * math.sqrt(d_model * args.warmup_steps),
        label_smoothing=args.label_smoothing, mixed_precision=args.mixed_precision,
        seed=args.seed, bleu_samples=args.bleu_samples, bleu_batch_tokens=args.decode_tokens,
        attention_probes=0, verbose=0)
    print(f"model dir: {model_dir}\ntraining for at most {args.minutes:g} minutes: "
          f"preset {args.preset} {overrides}, {training.mixed_precision} precision, "
          f"{args.batch_tokens} tokens/batch, peak lr {args.peak_lr:g} after "
          f"{args.warmup_steps} steps, label smoothing {args.label_smoothing}", flush=True)
    budget = TimeBudget(args.minutes * 60)
    started = time.perf_counter()
    summary = train(model_dir, training, preset=preset["preset"], model_overrides=overrides,
                    extra_callbacks=[EpochReport(os.path.join(model_dir, "checkpoints"),
                                                 args.average), budget])
    total_seconds, training_seconds = time.perf_counter() - started, budget.elapsed
    print(f"trained {summary['epoch']} epochs in {training_seconds / 60:.1f} min "
          f"(vocabulary and data preparation included: {total_seconds / 60:.1f} min) "
          f"(best validation-sample BLEU {summary['best_val_bleu']} at epoch "
          f"{summary['best_epoch']}); evaluating", flush=True)

    splits = {"validation": read_split(args, "validation")}
    for split in args.test_splits.split(","):
        splits[split] = read_split(args, split)
    evaluation = evaluate(args, model_dir, splits)
    chosen = evaluation["chosen_average"]
    validation = evaluation["validation_greedy"]
    final = chosen if chosen and validation[chosen] >= validation["best single"] else (
        "best single")
    model, _ = load_model(model_dir, "best")
    payload = {
        "machine": info, "args": vars(args), "model_dir": model_dir,
        "model_config": model.transformer_config.to_dict(),
        "parameters": int(sum(np.prod(w.shape) for w in model.weights)),
        "training_minutes": training_seconds / 60,
        "training_minutes_with_preparation": total_seconds / 60, "epochs": summary["epoch"],
        "train_tokens_per_second": summary["tokens_per_second"],
        "best_epoch": summary["best_epoch"],
        "history": {key: [float(value) for value in values]
                    for key, values in summary["history"].items()},
        "evaluation": evaluation, "final_model": final,
    }
    payload["results_row"] = results_row(args, payload)
    payload["results_header"] = results_header(args)
    common.write_json(json_path, payload)
    print(f"\n{payload['results_header']}\n{payload['results_row']}\nwrote {json_path}")
    return payload


if __name__ == "__main__":
    main()
