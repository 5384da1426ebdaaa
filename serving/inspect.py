"""`tft-inspect`: writes attention summaries for sentences from an exported SavedModel.

Runs the SavedModel's `attention` signature on the given sentences and writes, for each one,
the same summaries the training callback writes (see `tf_transformer.tensorboard.summaries`):
tokens and raw weights for the Attention dashboard, the translation as text, and heatmap
images. Sentence i is probe `sentence_i`.

    tft-inspect --export-dir exports/translator --logdir runs/inspect \\
        "A dog runs on the beach." "Two men are playing chess."
    tensorboard --logdir runs/inspect
"""

import argparse
import os
import re
import sys

import numpy as np
import tensorflow as tf

from tf_transformer.tensorboard import summaries

ATTENTION_SIGNATURE = "attention"
# Output names of the `attention` signature, per attention kind.
ATTENTION_OUTPUTS = {
    "encoder_self": "encoder_self_attention",
    "decoder_self": "decoder_self_attention",
    "cross": "cross_attention",
}


def resolve_export_dir(export_dir):
    """Returns the SavedModel directory for a version folder or a model's base folder.

    Args:
        export_dir: str, either a SavedModel (holds `saved_model.pb`) or a folder of integer
            version folders (`EXPORT_BASE/NAME`), in which case the highest version is used.

    Raises:
        ValueError: if `export_dir` holds neither.
    """
    if tf.io.gfile.exists(os.path.join(export_dir, "saved_model.pb")):
        return export_dir
    versions = []
    if tf.io.gfile.isdir(export_dir):
        versions = [
            int(name.rstrip("/"))
            for name in tf.io.gfile.listdir(export_dir)
            if re.fullmatch(r"\d+/?", name)
            and tf.io.gfile.exists(os.path.join(export_dir, name.rstrip("/"), "saved_model.pb"))
        ]
    if not versions:
        raise ValueError(
            f"--export-dir {export_dir!r} is neither a SavedModel nor a folder of numbered "
            "SavedModel versions."
        )
    return os.path.join(export_dir, str(max(versions)))


def run_attention(export_dir, sentences):
    """Runs the `attention` signature and splits its outputs per sentence.

    Args:
        export_dir: str, a SavedModel directory or a folder of versions.
        sentences: list of str `[B]`.

    Returns:
        A list of B dicts with `source_tokens [S_b]`, `target_tokens [T_b]` (lists of str),
        `translation` (str) and `attention` (kind -> float32 `[L, N, Tq, Tk]` trimmed to the
        real tokens).

    Raises:
        ValueError: if the SavedModel has no `attention` signature or it lacks an output.
    """
    loaded = tf.saved_model.load(resolve_export_dir(export_dir))
    if ATTENTION_SIGNATURE not in loaded.signatures:
        raise ValueError(
            f"SavedModel in {export_dir!r} has no {ATTENTION_SIGNATURE!r} signature; "
            f"it has {sorted(loaded.signatures)}."
        )
    outputs = loaded.signatures[ATTENTION_SIGNATURE](text=tf.constant(sentences, tf.string))
    required = {"source_tokens", "target_tokens", "translation", "source_length", "target_length"}
    missing = (required | set(ATTENTION_OUTPUTS.values())) - outputs.keys()
    if missing:
        raise ValueError(f"The {ATTENTION_SIGNATURE!r} signature lacks outputs {sorted(missing)}.")
    outputs = {name: value.numpy() for name, value in outputs.items()}

    results = []
    for index in range(len(sentences)):
        source_length = int(outputs["source_length"][index])
        target_length = int(outputs["target_length"][index])
        lengths = {
            "encoder_self": (source_length, source_length),
            "decoder_self": (target_length, target_length),
            "cross": (target_length, source_length),
        }
        attention = {}
        for kind, name in ATTENTION_OUTPUTS.items():
            queries, keys = lengths[kind]
            attention[kind] = outputs[name][index, :, :, :queries, :keys]  # [L, N, Tq, Tk]
        results.append(
            {
                "source_tokens": _strings(outputs["source_tokens"][index, :source_length]),
                "target_tokens": _strings(outputs["target_tokens"][index, :target_length]),
                "translation": outputs["translation"][index].decode("utf-8"),
                "attention": attention,
            }
        )
    return results


def inspect(export_dir, logdir, sentences, step=0, images=True):
    """Writes attention summaries for `sentences` into `logdir`.

    Args:
        export_dir: str, a SavedModel directory or a folder of versions.
        logdir: str, the TensorBoard run directory to write into.
        sentences: list of str.
        step: int, default 0, the summary step.
        images: bool, default True, whether to write heatmap images too.

    Returns:
        The list returned by `run_attention`.
    """
    if not sentences:
        raise ValueError("Give at least one sentence to inspect.")
    results = run_attention(export_dir, list(sentences))
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for index, result in enumerate(results):
            summaries.write_attention(
                step,
                f"sentence_{index}",
                result["source_tokens"],
                result["target_tokens"],
                result["attention"],
                translation=result["translation"],
                images=images,
            )
    writer.close()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="tft-inspect",
        description="Write attention summaries of an exported model for TensorBoard's "
        "Attention dashboard.",
    )
    parser.add_argument(
        "--export-dir", required=True,
        help="SavedModel directory, or a model folder of numbered versions (latest is used).",
    )
    parser.add_argument("--logdir", required=True, help="TensorBoard run directory to write.")
    parser.add_argument("--step", type=int, default=0, help="Summary step (default 0).")
    parser.add_argument(
        "--no-images", action="store_true", help="Skip the heatmap image summaries."
    )
    parser.add_argument("sentences", nargs="+", help="Source sentences to translate and inspect.")
    args = parser.parse_args(argv)
    try:
        results = inspect(
            args.export_dir, args.logdir, args.sentences, step=args.step, images=not args.no_images
        )
    except ValueError as error:
        parser.error(str(error))
    for index, result in enumerate(results):
        print(f"sentence_{index}: {args.sentences[index]!r} -> {result['translation']!r}")
    print(f"Wrote attention summaries to {args.logdir}.")
    print(f"View them with: tensorboard --logdir {args.logdir}")
    return 0


def _strings(values):
    return [value.decode("utf-8") for value in np.asarray(values).tolist()]


if __name__ == "__main__":
    sys.exit(main())
