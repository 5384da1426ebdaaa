"""`tft-inspect`: writes attention summaries for sentences from an exported SavedModel.

Runs the SavedModel's `attention` signature (`tf_transformer.translator.Translator.attention`)
on the given sentences and writes, for each one, the same summaries the training callback
writes (see `tf_transformer.tensorboard.summaries`): tokens and raw weights for the Attention
dashboard, the translation as text, and heatmap images. Sentence i is probe `sentence_i`.

    tft-inspect --export-dir exports/translator --logdir runs/inspect \\
        "A dog runs on the beach." "Two men are playing chess."
    tensorboard --logdir runs/inspect
"""

import argparse
import sys

import tensorflow as tf

from tf_transformer import versions
from tf_transformer.tensorboard import summaries
from tf_transformer.translator import split_attention

ATTENTION_SIGNATURE = "attention"


def run_attention(export_dir, sentences):
    """Runs the SavedModel's `attention` signature and splits its outputs per sentence.

    Args:
        export_dir: str, a SavedModel directory or a folder of versions (the latest is used).
        sentences: list of str `[B]`.

    Returns:
        A list of B dicts, see `tf_transformer.translator.split_attention`.

    Raises:
        ValueError: if the SavedModel has no `attention` signature or it lacks an output.
    """
    loaded = tf.saved_model.load(versions.latest_saved_model(export_dir))
    if ATTENTION_SIGNATURE not in loaded.signatures:
        raise ValueError(
            f"SavedModel in {export_dir!r} has no {ATTENTION_SIGNATURE!r} signature; "
            f"it has {sorted(loaded.signatures)}."
        )
    return split_attention(
        loaded.signatures[ATTENTION_SIGNATURE](text=tf.constant(sentences, tf.string)))


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


if __name__ == "__main__":
    sys.exit(main())
