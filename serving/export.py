"""Export a trained model as a SavedModel that translates raw text, ready for TF Serving.

The exported module holds the tokenizers (SentencePiece models as assets, run by TensorFlow
Text ops), the Transformer and the decoding loops, so a client sends strings and gets strings:

- `serving_default`: text [B] -> translation [B] string, score [B] float32. Greedy decoding
  (the fastest; score = sum of the token log-probabilities).
- `translate_beams`: text [B], beam_size [], top_beams [], alpha [] -> translations [B, K]
  string, scores [B, K] float32 (log-probability / GNMT length penalty, best first).
- `attention`: text [B] -> the tokens, the greedy translation and every attention weight,
  padded to dense tensors, for inspection (see `Translator.attention`).

Sources longer than the model's `max_length` subword tokens are cut to it; translations are at
most `max_length` tokens (and at most 2 x source length + 10). Empty and whitespace-only
inputs translate to whatever the model says for an empty sentence.

Usage:
    python -m serving.export --model-dir MODEL_DIR --export-dir EXPORT_BASE/NAME/VERSION
        [--dtype float32|bfloat16|float16]

`--dtype bfloat16` (or `float16`) exports reduced-precision compute for GPUs and for CPUs with
AVX512-BF16 or AMX; weights, softmax, logits and scores stay float32.

Shape letters: B batch, S source length, T target length, L layers, N heads, K top beams.
"""

import argparse
import os
import shutil
import sys
import tempfile

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

from tf_transformer import decoding
from tf_transformer.model import with_compute_dtype
from tf_transformer.text import PAD_ID, START_ID

TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")


class Translator(tf.Module):
    """The exported module: tokenizers + model + decoding, with raw-text signatures.

    Args:
        model: a trained `tf_transformer.Transformer`.
        tokenizers: its `TokenizerPair`.
    """

    def __init__(self, model, tokenizers, name="translator"):
        super().__init__(name=name)
        self.model = model
        self.source_tokenizer = tokenizers.source
        self.target_tokenizer = tokenizers.target
        self.max_length = model.transformer_config.max_length

    def _source_ids(self, text):
        ids = self.source_tokenizer.tokenize_padded(text, self.max_length)  # [B, S]
        # At least one (padding) column, so a batch of empty strings still has a shape the
        # attention can work with.
        missing = tf.maximum(1 - tf.shape(ids)[1], 0)
        return tf.pad(ids, [[0, 0], [0, missing]])  # [B, max(S, 1)]

    @tf.function(input_signature=[TEXT_SPEC])
    def translate(self, text):
        """Greedy translation: {"translation": [B] string, "score": [B] float32}."""
        result = decoding.greedy_decode(self.model, self._source_ids(text),
                                        max_length=self.max_length)
        return {"translation": self.target_tokenizer.detokenize(result.ids),
                "score": result.scores}

    @tf.function(input_signature=[
        TEXT_SPEC,
        tf.TensorSpec([], tf.int32, name="beam_size"),
        tf.TensorSpec([], tf.int32, name="top_beams"),
        tf.TensorSpec([], tf.float32, name="alpha"),
    ])
    def translate_beams(self, text, beam_size, top_beams, alpha):
        """Beam search: {"translations": [B, K] string, "scores": [B, K] float32}."""
        checks = [
            tf.debugging.assert_positive(beam_size, message="beam_size must be at least 1"),
            tf.debugging.assert_positive(top_beams, message="top_beams must be at least 1"),
            tf.debugging.assert_less_equal(top_beams, beam_size,
                                           message="top_beams must not exceed beam_size"),
        ]
        # The checks must run before the search uses the sizes, or a bad size fails there first
        # with an obscure message.
        with tf.control_dependencies(checks):
            beam_size, top_beams = tf.identity(beam_size), tf.identity(top_beams)
        result = decoding.beam_search(self.model, self._source_ids(text), beam_size=beam_size,
                                      top_beams=top_beams, alpha=alpha,
                                      max_length=self.max_length)
        batch, beams = tf.shape(result.ids)[0], tf.shape(result.ids)[1]
        flat_ids = tf.reshape(result.ids, [batch * beams, -1])  # [B*K, T]
        texts = self.target_tokenizer.detokenize(flat_ids)  # [B*K]
        return {"translations": tf.reshape(texts, [batch, beams]),  # [B, K]
                "scores": result.scores}  # [B, K]

    @tf.function(input_signature=[TEXT_SPEC])
    def attention(self, text):
        """Tokens, greedy translation and attention weights, as dense padded tensors.

        Returns:
            dict: "source_tokens" [B, S] and "target_tokens" [B, T] string (pieces; "" at
            padding; the target tokens are the decoder inputs: "<s>" then the translation's
            pieces), "source_length" and "target_length" [B] int32, "translation" [B] string,
            "encoder_self_attention" [B, L, N, S, S], "decoder_self_attention"
            [B, L, N, T, T], "cross_attention" [B, L, N, T, S] float32.
        """
        source_ids = self._source_ids(text)  # [B, S]
        output_ids = decoding.greedy_decode(self.model, source_ids,
                                            max_length=self.max_length).ids  # [B, C]
        # The decoder's input: START, then the translation without END.
        tokens = tf.where(output_ids == decoding.END_ID, PAD_ID, output_ids)  # [B, C]
        start = tf.fill([tf.shape(tokens)[0], 1], START_ID)
        target_ids = tf.concat([start, tokens], axis=1)[:, :self.max_length]  # [B, T]
        maps = self.model.attention_maps(source_ids, target_ids)

        def pieces(tokenizer, ids):
            return tf.where(ids == PAD_ID, "", tokenizer.id_to_string(ids))

        def length(ids):
            return tf.reduce_sum(tf.cast(ids != PAD_ID, tf.int32), axis=1)

        return {
            "source_tokens": pieces(self.source_tokenizer, source_ids),
            "target_tokens": pieces(self.target_tokenizer, target_ids),
            "source_length": length(source_ids),
            "target_length": length(target_ids),
            "translation": self.target_tokenizer.detokenize(output_ids),
            "encoder_self_attention": maps["encoder_self"],
            "decoder_self_attention": maps["decoder_self"],
            "cross_attention": maps["cross"],
        }

    def signatures(self):
        return {"serving_default": self.translate.get_concrete_function(),
                "translate_beams": self.translate_beams.get_concrete_function(),
                "attention": self.attention.get_concrete_function()}


def export(model, tokenizers, export_dir):
    """Writes the SavedModel of `model` + `tokenizers` to `export_dir`.

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
    if os.path.exists(export_dir):
        raise ValueError(f"{export_dir} already exists; pick a new version number or remove it.")
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    module = Translator(model, tokenizers)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        tf.saved_model.save(module, staging, signatures=module.signatures())
        os.rename(staging, export_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return export_dir


def resolve_export_dir(export_dir):
    """EXPORT_BASE/NAME/VERSION as given, or EXPORT_BASE/NAME/<next version> if no version."""
    export_dir = os.path.abspath(os.fspath(export_dir))
    if os.path.basename(export_dir).isdigit():
        return export_dir
    versions = [int(entry) for entry in os.listdir(export_dir)
                if entry.isdigit()] if os.path.isdir(export_dir) else []
    return os.path.join(export_dir, str(max(versions, default=0) + 1))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tft-export", description="Export a model directory written by tft-train as a "
        "SavedModel that translates raw text (for TF Serving or tft-serve).")
    parser.add_argument("--model-dir", required=True, help="model directory written by tft-train")
    parser.add_argument("--export-dir", required=True,
                        help="EXPORT_BASE/NAME/VERSION; without a numeric VERSION the next "
                             "free version number under EXPORT_BASE/NAME is used")
    parser.add_argument("--checkpoint", default="best",
                        help="'best' (validation BLEU), 'last', or a .weights.h5 path "
                             "(default: best)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="compute dtype of the exported model; weights stay float32 "
                             "(default: float32)")
    parser.add_argument("--smoke-test", nargs="*", default=None, metavar="TEXT",
                        help="after exporting, translate these sentences with the export")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from trainers.model_dir import load_model_dir  # the trainer owns the model-dir layout

    try:
        model, tokenizers, _ = load_model_dir(args.model_dir, checkpoint=args.checkpoint)
        model = with_compute_dtype(model, args.dtype)
        export_dir = export(model, tokenizers, resolve_export_dir(args.export_dir))
    except ValueError as error:
        print(f"tft-export: error: {error}", file=sys.stderr)
        return 2
    print(f"Exported {args.model_dir} ({args.checkpoint} checkpoint, {args.dtype} compute) "
          f"to {export_dir}")
    print("Signatures: serving_default (greedy), translate_beams, attention")
    if args.smoke_test:
        loaded = tf.saved_model.load(export_dir)
        answer = loaded.signatures["serving_default"](text=tf.constant(args.smoke_test))
        for text, translation in zip(args.smoke_test, answer["translation"].numpy()):
            print(f"  {text!r} -> {translation.decode('utf-8')!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
