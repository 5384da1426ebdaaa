"""Export a trained model as a SavedModel that translates raw text, ready for TF Serving.

The exported module is `tf_transformer.translator.Translator`: the tokenizers (SentencePiece
models as assets, run by TensorFlow Text ops), the Transformer and the decoding loops, so a
client sends strings and gets strings. Its signatures:

- `serving_default`: text [B] -> translation [B] string, score [B] float32 (greedy).
- `translate_beams`: text [B], beam_size [], top_beams [], alpha [] -> translations [B, K]
  string, scores [B, K] float32 (best first).
- `attention`: text [B] -> the tokens, the greedy translation and every attention weight,
  padded to dense tensors, for inspection.

Usage:
    python -m serving.export --model-dir MODEL_DIR --export-dir EXPORT_BASE/NAME/VERSION
    python -m serving.export --model-dir MODEL_DIR --export-dir ... --average-last 5
        [--dtype float32|bfloat16|float16]

`--dtype bfloat16` (or `float16`) exports reduced-precision compute for GPUs and for CPUs with
AVX512-BF16 or AMX; weights, softmax, logits and scores stay float32.

`--format ctranslate2` writes the model for CTranslate2 instead (see
`serving.ctranslate2_model`; needs the `ctranslate2` extra), optionally with `--quantization
int8` weights; `tft-translate --ctranslate2` translates with it.

Shape letters: B batch, K top beams.
"""

import argparse
import os
import sys

import tensorflow as tf

from serving.ctranslate2_model import QUANTIZATIONS, CTranslate2Translator, convert
from tf_transformer import checkpoints, model_dir, versions
from tf_transformer.model import with_compute_dtype
from tf_transformer.translator import Translator


def export(model, tokenizers, export_dir):
    """Writes the SavedModel of `Translator(model, tokenizers)` to `export_dir`.

    The export is written next to `export_dir` under a name TF Serving ignores and renamed
    into place at the end, so a server watching the parent folder never sees half an export.

    Args:
        model: a trained `tf_transformer.Transformer`.
        tokenizers: its `TokenizerPair`.
        export_dir: str, the destination; it must not exist yet.

    Returns:
        str, `export_dir`.
    """
    export_dir = os.path.abspath(os.fspath(export_dir))
    with versions.staged(export_dir) as staging:
        translator = Translator(model, tokenizers)
        tf.saved_model.save(translator, staging, signatures=translator.signatures())
    return export_dir


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tft-export", description="Export a model directory written by tft-train as a "
        "SavedModel that translates raw text (for TF Serving or tft-serve).")
    parser.add_argument("--model-dir", required=True, help="model directory written by tft-train")
    parser.add_argument("--export-dir", required=True,
                        help="EXPORT_BASE/NAME/VERSION; without a numeric VERSION the next "
                             "free version number under EXPORT_BASE/NAME is used")
    parser.add_argument("--checkpoint", default=None,
                        help="'best' (validation BLEU), 'last', or a .weights.h5 path "
                             "(default: best)")
    parser.add_argument("--average-last", type=int, default=None, metavar="N",
                        help="export the average of the last N interval checkpoints "
                             "(checkpoints/step_*.weights.h5, see tft-train "
                             "--keep-checkpoints) instead of one checkpoint")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="compute dtype of the exported model; weights stay float32 "
                             "(default: float32)")
    parser.add_argument("--format", default="saved_model", choices=["saved_model", "ctranslate2"],
                        help="saved_model (TF Serving, tft-serve, tft-translate --export-dir; "
                             "default) or ctranslate2 (a CTranslate2 model with the "
                             "tokenizers, for tft-translate --ctranslate2)")
    parser.add_argument("--quantization", default=None, choices=QUANTIZATIONS,
                        help="with --format ctranslate2: the stored weights' type (default "
                             "float32; CTranslate2 can also quantize when loading)")
    parser.add_argument("--smoke-test", nargs="*", default=None, metavar="TEXT",
                        help="after exporting, translate these sentences with the export")
    return parser


def _check_format_options(args):
    if args.format == "ctranslate2" and args.dtype != "float32":
        raise ValueError(f"--dtype {args.dtype} is for SavedModels; a CTranslate2 model picks "
                         "its compute type when it loads (tft-translate --compute-type "
                         f"{args.dtype}), so export it from the float32 model.")
    if args.quantization is not None and args.format != "ctranslate2":
        raise ValueError("--quantization is for --format ctranslate2; a SavedModel's reduced "
                         "precision is --dtype.")


def _smoke_test(export_dir, export_format, texts):
    if export_format == "ctranslate2":
        translations, _ = CTranslate2Translator(export_dir).greedy(texts)
    else:
        loaded = tf.saved_model.load(export_dir)
        answer = loaded.signatures["serving_default"](text=tf.constant(texts))
        translations = [t.decode("utf-8") for t in answer["translation"].numpy()]
    for text, translation in zip(texts, translations):
        print(f"  {text!r} -> {translation!r}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        _check_format_options(args)
        if args.average_last is not None and args.checkpoint is not None:
            raise ValueError("--checkpoint and --average-last both choose the weights; "
                             "give one of them.")
        if args.average_last is not None:
            paths = checkpoints.last_interval_checkpoints(
                model_dir.ModelDir(args.model_dir).checkpoints_dir, args.average_last)
            model, tokenizers = model_dir.load_model(args.model_dir, checkpoint=paths[-1])
            checkpoints.average_checkpoints(model, paths)
            weights = (f"average of the last {len(paths)} interval checkpoints: "
                       + ", ".join(os.path.basename(path) for path in paths))
        else:
            checkpoint = args.checkpoint or "best"
            model, tokenizers = model_dir.load_model(args.model_dir, checkpoint=checkpoint)
            weights = f"{checkpoint} checkpoint"
        destination = versions.next_version_dir(args.export_dir)
        if args.format == "ctranslate2":
            export_dir = convert(model, tokenizers, destination, args.quantization)
        else:
            model = with_compute_dtype(model, args.dtype)
            export_dir = export(model, tokenizers, destination)
    except ValueError as error:
        print(f"tft-export: error: {error}", file=sys.stderr)
        return 2
    if args.format == "ctranslate2":
        print(f"Exported {args.model_dir} ({weights}, "
              f"{args.quantization or 'float32'} weights) for CTranslate2 to {export_dir}")
        print(f"Translate with: tft-translate --ctranslate2 {export_dir}")
    else:
        print(f"Exported {args.model_dir} ({weights}, {args.dtype} compute) to {export_dir}")
        print("Signatures: serving_default (greedy), translate_beams, attention")
    if args.smoke_test:
        _smoke_test(export_dir, args.format, args.smoke_test)
    return 0


if __name__ == "__main__":
    sys.exit(main())
