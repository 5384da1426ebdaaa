"""A trained model as a CTranslate2 model: conversion, and translation with it.

CTranslate2 is the C++ engine many translation toolkits (OpenNMT-py, OpenNMT-tf, fairseq)
convert their Transformers to for fast CPU inference, with int8 weights among its options.
`convert` builds the same network through `ctranslate2.specs.TransformerSpec` from the model's
own weights: embeddings (scaled by sqrt(D), tied or not), the model's position encodings as a
table (so interleaved, concatenated and learned positions all carry over exactly), every
attention (the fused Q/K/V projection as CTranslate2 expects it), layer norm and feed-forward,
pre- or post-norm. Its greedy translations equal the SavedModel's token for token.

A converted folder holds CTranslate2's files plus the model's tokenizers ("tokenizer/") and
config ("tf_transformer.json"), so `CTranslate2Translator` turns raw text into text exactly as
the SavedModel does: the same normalization and SentencePiece pieces in, the same
detokenization out, the same per-sentence length budget.

Beam search is CTranslate2's own: its length penalty divides the log-probability by
length ** alpha (GNMT's, which tf_transformer uses, divides by ((5 + length) / 6) ** alpha),
and it stops once `beam_size` hypotheses have finished.

Usage:
    tft-export --model-dir MODEL_DIR --export-dir exports/ct2 --format ctranslate2
        [--quantization int8]
    tft-translate --ctranslate2 exports/ct2 [--compute-type int8] < test.en

Shape letters: B batch, K top beams, D model width.
"""

import json
import math
import os

import numpy as np
import tensorflow as tf

from tf_transformer.config import TransformerConfig
from tf_transformer.decoding import decode_limits
from tf_transformer.versions import latest_version, staged

# The model's config next to CTranslate2's own config.json.
CONFIG_FILE = "tf_transformer.json"
TOKENIZER_DIR = "tokenizer"
# What `ctranslate2.specs.TransformerSpec` can store (`--quantization`).
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")
INSTALL_HINT = "install it with: pip install 'tf-transformer[ctranslate2]'"


def _import_ctranslate2():
    try:
        import ctranslate2
    except ImportError:
        raise ValueError(f"CTranslate2 is not installed; {INSTALL_HINT}") from None
    return ctranslate2


def _linear(spec, kernel, bias):
    """Sets a CTranslate2 linear layer ([out, in] weight) from a Keras kernel [in, ...]."""
    kernel = np.asarray(kernel, np.float32)
    spec.weight = np.ascontiguousarray(np.reshape(kernel, [kernel.shape[0], -1]).T)
    spec.bias = np.reshape(np.asarray(bias, np.float32), [-1])


def _stacked_linear(spec, denses):
    """One CTranslate2 linear layer for several projections of the same input (fused Q/K/V)."""
    kernels = [np.reshape(d.kernel.numpy(), [d.kernel.shape[0], -1]) for d in denses]
    biases = [np.reshape(d.bias.numpy(), [-1]) for d in denses]
    _linear(spec, np.concatenate(kernels, axis=1), np.concatenate(biases))


def _norm(spec, norm):
    spec.gamma = norm.gamma.numpy()
    spec.beta = norm.beta.numpy()


def _attention(spec, attention, residual, cross=False):
    _norm(spec.layer_norm, residual.norm)
    projections = (attention.query_dense, attention.key_dense, attention.value_dense)
    if cross:  # the query from the decoder; the keys and values from the encoder, fused
        _stacked_linear(spec.linear[0], projections[:1])
        _stacked_linear(spec.linear[1], projections[1:])
    else:
        _stacked_linear(spec.linear[0], projections)
    output = spec.linear[-1]
    _linear(output, np.reshape(attention.output_dense.kernel.numpy(),
                               [-1, attention.output_dense.kernel.shape[-1]]),
            attention.output_dense.bias.numpy())


def _feed_forward(spec, layer):
    _norm(spec.layer_norm, layer.feed_forward_residual.norm)
    _linear(spec.linear_0, layer.feed_forward.inner.kernel, layer.feed_forward.inner.bias)
    _linear(spec.linear_1, layer.feed_forward.outer.kernel, layer.feed_forward.outer.bias)


def _position_table(layer, length, width):
    """The [length, D] encodings a position layer adds at positions 0..length-1."""
    return layer(tf.zeros([1, length, width]), broadcast=False).numpy()[0]


def _check_convertible(model):
    c = model.transformer_config
    for layer in (*model.encoder.blocks, *model.decoder.blocks):
        if layer.feed_forward.activation != "relu":
            raise ValueError(f"CTranslate2's Transformer has a ReLU feed-forward; this model's "
                             f"is {layer.feed_forward.activation!r}.")
        if not layer.self_attention.use_bias:
            raise ValueError("CTranslate2's Transformer has attention biases; this model has "
                             "none.")
    if not math.isclose(c.layer_norm_epsilon, 1e-6):
        raise ValueError(f"CTranslate2's Transformer normalizes with epsilon 1e-6; this model "
                         f"uses layer_norm_epsilon={c.layer_norm_epsilon}.")
    if model.compute_dtype != "float32":
        raise ValueError(f"convert the float32 model (this one computes in "
                         f"{model.compute_dtype}); CTranslate2 picks its compute type when "
                         f"it loads the model (--compute-type).")


def build_spec(model, source_vocabulary, target_vocabulary):
    """The `ctranslate2.specs.TransformerSpec` of `model`, with its weights.

    Args:
        model: a float32 `tf_transformer.Transformer` (ReLU, biases, epsilon 1e-6: the
            model's only configuration today).
        source_vocabulary, target_vocabulary: lists of token strings, index = id.

    Returns:
        The validated spec; `spec.save(directory)` writes it.

    Raises:
        ValueError: the model has something CTranslate2's Transformer cannot express.
    """
    ctranslate2 = _import_ctranslate2()
    _check_convertible(model)
    c = model.transformer_config
    for name, vocabulary, size in (("source", source_vocabulary, c.source_vocab_size),
                                   ("target", target_vocabulary, c.target_vocab_size)):
        if len(vocabulary) != size:
            raise ValueError(f"the {name} vocabulary has {len(vocabulary)} tokens but the "
                             f"model's {name}_vocab_size is {size}.")
    spec = ctranslate2.specs.TransformerSpec.from_config(
        (c.num_encoder_layers, c.num_decoder_layers), c.num_heads, pre_norm=c.norm_first)
    spec.encoder.embeddings[0].weight = model.source_embedding.embeddings.numpy()
    spec.decoder.embeddings.weight = model.target_embedding.embeddings.numpy()
    spec.encoder.position_encodings.encodings = _position_table(
        model.source_position, c.max_length, c.d_model)
    spec.decoder.position_encodings.encodings = _position_table(
        model.target_position, c.max_length, c.d_model)
    if model.output_projection is None:  # tied to the target embedding
        spec.decoder.projection.weight = model.target_embedding.embeddings.numpy()
        spec.decoder.projection.bias = np.zeros([c.target_vocab_size], np.float32)
    else:
        _linear(spec.decoder.projection, model.output_projection.kernel,
                model.output_projection.bias if model.output_projection.bias is not None
                else np.zeros([c.target_vocab_size], np.float32))
    if c.norm_first:  # pre-norm stacks end with a layer norm
        _norm(spec.encoder.layer_norm, model.encoder.final_norm)
        _norm(spec.decoder.layer_norm, model.decoder.final_norm)
    for layer, layer_spec in zip(model.encoder.blocks, spec.encoder.layer):
        _attention(layer_spec.self_attention, layer.self_attention,
                   layer.self_attention_residual)
        _feed_forward(layer_spec.ffn, layer)
    for layer, layer_spec in zip(model.decoder.blocks, spec.decoder.layer):
        _attention(layer_spec.self_attention, layer.self_attention,
                   layer.self_attention_residual)
        _attention(layer_spec.attention, layer.cross_attention, layer.cross_attention_residual,
                   cross=True)
        _feed_forward(layer_spec.ffn, layer)
    spec.register_source_vocabulary(list(source_vocabulary))
    spec.register_target_vocabulary(list(target_vocabulary))
    spec.config.unk_token = target_vocabulary[c.unk_id]
    spec.config.bos_token = target_vocabulary[c.start_id]
    spec.config.eos_token = target_vocabulary[c.end_id]
    spec.config.decoder_start_token = target_vocabulary[c.start_id]
    spec.validate()
    return spec


def vocabulary(tokenizer, size):
    """The token strings (SentencePiece pieces) of ids 0..size-1."""
    return [piece.decode("utf-8") for piece in tokenizer.id_to_string(tf.range(size)).numpy()]


def convert(model, tokenizers, output_dir, quantization=None):
    """Writes `model` as a CTranslate2 model, with its tokenizers and config, to `output_dir`.

    Written beside `output_dir` and renamed into place at the end (`versions.staged`).

    Args:
        model: a float32 `tf_transformer.Transformer`.
        tokenizers: its `TokenizerPair`.
        output_dir: str; must not exist yet.
        quantization: None (float32 weights) or one of `QUANTIZATIONS`: the stored weights'
            type. CTranslate2 can also quantize when it loads (`compute_type`).

    Returns:
        str, `output_dir`.
    """
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose one of "
                         f"{', '.join(QUANTIZATIONS)}.")
    output_dir = os.path.abspath(os.fspath(output_dir))
    c = model.transformer_config
    with staged(output_dir) as staging:  # refuses an existing folder before any work
        spec = build_spec(model, vocabulary(tokenizers.source, c.source_vocab_size),
                          vocabulary(tokenizers.target, c.target_vocab_size))
        if quantization is not None:
            spec.optimize(quantization=quantization)
        spec.save(staging)
        tokenizers.save(os.path.join(staging, TOKENIZER_DIR))
        with open(os.path.join(staging, CONFIG_FILE), "w") as f:
            json.dump(c.to_dict(), f, indent=2, sort_keys=True)
    return output_dir


class CTranslate2Translator:
    """Raw text in, text out, through a folder written by `convert`.

    Sentences are tokenized and detokenized by the model's own tokenizers (TensorFlow Text, as
    in the SavedModel), and each one may generate as many tokens as in the SavedModel:
    min(max_length, ceil(2 * source length + 10)), END included.

    Args:
        directory: str, a folder written by `convert`, or a folder of numbered versions of
            one (the highest is used).
        compute_type: str, default "default" (the stored type); e.g. "int8" quantizes when
            loading. See CTranslate2's documentation for the types this CPU supports.
        threads: int, default 0 (CTranslate2's default).

    Raises:
        ValueError: the folder is not a converted model, or CTranslate2 cannot load it.
    """

    # What a translation that CTranslate2 cannot do raises (tft-translate reports them).
    errors = (RuntimeError, ValueError)

    def __init__(self, directory, compute_type="default", threads=0):
        from tf_transformer.text import TokenizerPair

        ctranslate2 = _import_ctranslate2()
        found = latest_version(directory, CONFIG_FILE)
        if found is None:
            raise ValueError(f"{directory} is neither a CTranslate2 model written by tft-export "
                             f"--format ctranslate2 nor a folder of numbered versions of one "
                             f"(no {CONFIG_FILE}).")
        self.path = directory = found
        with open(os.path.join(directory, CONFIG_FILE)) as f:
            self.config = TransformerConfig.from_dict(json.load(f))
        self.tokenizers = TokenizerPair.load(os.path.join(directory, TOKENIZER_DIR))
        try:
            self.translator = ctranslate2.Translator(directory, device="cpu",
                                                     compute_type=compute_type,
                                                     intra_threads=threads)
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"CTranslate2 cannot load {directory}: {error}") from None
        c = self.config
        self.source_vocabulary = vocabulary(self.tokenizers.source, c.source_vocab_size)
        self.target_ids = {token: i for i, token in enumerate(
            vocabulary(self.tokenizers.target, c.target_vocab_size))}

    def _translate(self, texts, **options):
        """[B] str -> [B] lists of (token ids, score), CTranslate2's hypotheses best first.

        Sentences with the same length budget go to CTranslate2 together, as its
        `max_decoding_length` holds for a whole call.
        """
        c = self.config
        ids = self.tokenizers.source.tokenize_padded(tf.constant(texts), c.max_length)  # [B, S]
        limits = decode_limits(ids, c.max_length, pad_id=c.pad_id).numpy()  # [B]
        sources = [[self.source_vocabulary[i] for i in row if i != c.pad_id]
                   for row in ids.numpy()]
        results = [None] * len(texts)
        for limit in sorted(set(limits.tolist())):
            rows = [i for i, value in enumerate(limits) if value == limit]
            answers = self.translator.translate_batch(
                [sources[i] for i in rows], max_decoding_length=limit, max_input_length=0,
                return_scores=True, **options)
            for i, answer in zip(rows, answers):
                results[i] = [([self.target_ids[token] for token in tokens], score)
                              for tokens, score in zip(answer.hypotheses, answer.scores)]
        return results

    def _detokenize(self, id_lists):
        """Lists of token ids -> strings, as the SavedModel detokenizes its outputs."""
        if not id_lists:
            return []
        padded = np.full([len(id_lists), max(1, max(map(len, id_lists)))], self.config.pad_id,
                         np.int32)  # [N, T]
        for row, ids in zip(padded, id_lists):
            row[:len(ids)] = ids
        return [text.decode("utf-8") for text in
                self.tokenizers.target.detokenize(tf.constant(padded)).numpy()]

    def greedy(self, texts):
        """[B] str -> ([B] translations, [B] scores: sums of token log-probabilities)."""
        results = self._translate(texts, beam_size=1, length_penalty=0.0)
        translations = self._detokenize([hypotheses[0][0] for hypotheses in results])
        return translations, [hypotheses[0][1] for hypotheses in results]

    def beams(self, texts, beam_size, top_beams, alpha):
        """[B] str -> ([B, K] translations, [B, K] scores), best first (CTranslate2's search
        and length penalty: log P / length ** alpha)."""
        results = self._translate(texts, beam_size=beam_size, num_hypotheses=top_beams,
                                  length_penalty=alpha)
        flat = self._detokenize([ids for hypotheses in results for ids, _ in hypotheses])
        translations, start = [], 0
        for hypotheses in results:
            translations.append(flat[start:start + len(hypotheses)])
            start += len(hypotheses)
        return translations, [[score for _, score in hypotheses] for hypotheses in results]
