"""The one translation path: text -> ids -> decoding -> text, and attention maps.

`Translator` holds a trained model and its tokenizers and translates raw strings entirely in
the graph. It is the module that `serving/export.py` saves as a SavedModel, so the three
`tf.function`s below are the export's signatures and the exported model equals the
in-process one by construction. `tf.saved_model.load(EXPORT_DIR)` gives back an object with
the same `translate`, `translate_beams` and `attention` methods, and every host-side function
of this module takes either.

    translator = Translator.from_model_dir("runs/anki", checkpoint="best")
    translator.translate(tf.constant(["Hello."]))     # {"translation", "score"}
    translate_texts(translator, sentences, batch_tokens=4096, progress=True)  # list of str
    split_attention(translator.attention(tf.constant(["Hello."])))  # per sentence, trimmed

In-graph (`tf.function`s, also the SavedModel signatures):

- `translate(text [B])` -> {"translation": [B] string, "score": [B] float32}: greedy
  decoding (score = sum of the token log-probabilities).
- `translate_beams(text [B], beam_size [], top_beams [], alpha [])` -> {"translations":
  [B, K] string, "scores": [B, K] float32}: beam search, best first (log-probability / GNMT
  length penalty).
- `attention(text [B])` -> tokens, greedy translation and every attention weight of
  (source, START + translation), padded to dense tensors (see `Translator.attention`).

Host-side (Python lists of strings):

- `translate_in_batches(sentences, translate_batch, batch_tokens, length, progress)`: sorts
  by length, cuts batches of at most `batch_tokens` padded tokens, calls `translate_batch` on
  each and returns the results in the original order.
- `translate_texts(translator, sentences, ...)`: translations of a list of strings (greedy
  or the best of a beam search).
- `split_attention(outputs)`: the dense `attention` outputs split per sentence and trimmed
  to the real tokens, as `tf_transformer.tensorboard.summaries.write_attention` takes them.

Sources longer than `max_length` subword tokens are cut to it; translations are at most
`max_length` tokens (and at most 2 x source length + 10).

Shape letters: B batch, S source length, T target length, C decoded length, L layers,
N heads, K top beams.
"""

import sys

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

from tf_transformer import decoding
from tf_transformer import model_dir as model_dir_lib

TEXT_SPEC = tf.TensorSpec([None], tf.string, name="text")
# Default padded-token budget of one batch in `translate_in_batches`.
DEFAULT_BATCH_TOKENS = 4096
# Attention kind (as in `tf_transformer.tensorboard.summaries.KINDS`) -> output of `attention`.
ATTENTION_OUTPUTS = {
    "encoder_self": "encoder_self_attention",
    "decoder_self": "decoder_self_attention",
    "cross": "cross_attention",
}


class Translator(tf.Module):
    """A trained model with its tokenizers: raw text in, translations and attention out.

    Args:
        model: a trained `tf_transformer.Transformer`.
        tokenizers: its `TokenizerPair`.
        max_length: int or None, default None (the model's `max_length`). Longest source (longer
            ones are cut) and longest translation, in subword tokens.
        name: str, default "translator". Module name.
    """

    def __init__(self, model, tokenizers, max_length=None, name="translator"):
        super().__init__(name=name)
        model_max_length = model.transformer_config.max_length
        if max_length is None:
            max_length = model_max_length
        if not 1 <= max_length <= model_max_length:
            raise ValueError(f"`max_length` must be between 1 and the model's max_length="
                             f"{model_max_length}; received max_length={max_length}.")
        self.model = model
        self.source_tokenizer = tokenizers.source
        self.target_tokenizer = tokenizers.target
        self.max_length = int(max_length)

    @classmethod
    def from_model_dir(cls, model_dir, checkpoint="best", dtype=None):
        """The `Translator` of a model directory written by `tft-train`.

        Args:
            model_dir: str, the model directory.
            checkpoint: str, default "best". "best", "last" or a `.weights.h5` path.
            dtype: Keras dtype policy for the rebuilt model, default None (float32).

        Raises:
            ValueError: the folder is not a model directory or the checkpoint does not exist.
        """
        model, tokenizers = model_dir_lib.load_model(model_dir, checkpoint=checkpoint,
                                                     dtype=dtype)
        return cls(model, tokenizers)

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
        flat_ids = tf.reshape(result.ids, [batch * beams, -1])  # [B*K, C]
        texts = self.target_tokenizer.detokenize(flat_ids)  # [B*K]
        return {"translations": tf.reshape(texts, [batch, beams]),  # [B, K]
                "scores": result.scores}  # [B, K]

    @tf.function(input_signature=[TEXT_SPEC])
    def attention(self, text):
        """Tokens, greedy translation and attention weights, as dense padded tensors.

        The attention is the model's on (source, START + greedy translation without END), the
        decoder input that produced the translation.

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
        # The decoder's input: START, then the translation without END, within the model's
        # positions (a translation that never ended fills all of them).
        config = self.model.transformer_config  # where the special token ids live
        pad_id = config.pad_id
        tokens = tf.where(output_ids == config.end_id, pad_id, output_ids)  # [B, C]
        start = tf.fill([tf.shape(tokens)[0], 1], config.start_id)
        target_ids = tf.concat([start, tokens], axis=1)[:, :self.max_length]  # [B, T]
        maps = self.model.attention_maps(source_ids, target_ids)

        def pieces(tokenizer, ids):
            return tf.where(ids == pad_id, "", tokenizer.id_to_string(ids))

        def length(ids):
            return tf.reduce_sum(tf.cast(ids != pad_id, tf.int32), axis=1)  # [B]

        outputs = {
            "source_tokens": pieces(self.source_tokenizer, source_ids),
            "target_tokens": pieces(self.target_tokenizer, target_ids),
            "source_length": length(source_ids),
            "target_length": length(target_ids),
            "translation": self.target_tokenizer.detokenize(output_ids),
        }
        for kind, output in ATTENTION_OUTPUTS.items():
            outputs[output] = tf.cast(maps[kind], tf.float32)
        return outputs

    def signatures(self):
        """The SavedModel signatures: {"serving_default", "translate_beams", "attention"}."""
        return {"serving_default": self.translate.get_concrete_function(),
                "translate_beams": self.translate_beams.get_concrete_function(),
                "attention": self.attention.get_concrete_function()}


def word_count(sentence):
    """Default length of `translate_in_batches`: whitespace-separated words (at least 1)."""
    return max(len(sentence.split()), 1)


def translate_in_batches(sentences, translate_batch, batch_tokens=DEFAULT_BATCH_TOKENS,
                         length=None, progress=None, max_sentences=None):
    """Translates a list of strings in length-sorted batches and restores their order.

    Sentences are sorted by length (longest first, so the largest batch comes first) and cut
    into batches whose padded size, sentences x longest length, stays within `batch_tokens`;
    a sentence longer than the budget goes alone. `max_sentences` caps the sentences per batch
    too (a server limits the rows of a request; short sentences would exceed it).

    Args:
        sentences: list of str.
        translate_batch: callable, list of str -> sequence of the same length (one result per
            sentence, of any type: a translation, a list of beams, ...).
        batch_tokens: int, default 4096. Padded-token budget of a batch, in units of `length`.
        length: callable str -> int or None, default None (`word_count`). Length of a sentence
            for sorting and budgeting; a tokenizer's subword count is exact, words are close.
        progress: None (silent), True (a tqdm bar on stderr) or a callable (done, total)
            called after each batch with the numbers of sentences.
        max_sentences: int or None, default None (no limit). Most sentences in a batch.

    Returns:
        list, the results of `translate_batch` in the order of `sentences`.

    Raises:
        ValueError: `batch_tokens` or `max_sentences` is not positive, or `translate_batch`
            returned a wrong number of results.
    """
    if batch_tokens < 1:
        raise ValueError(
            f"`batch_tokens` must be at least 1; received batch_tokens={batch_tokens}.")
    if max_sentences is not None and max_sentences < 1:
        raise ValueError(
            f"`max_sentences` must be at least 1; received max_sentences={max_sentences}.")
    sentences = list(sentences)
    length = word_count if length is None else length
    lengths = [length(sentence) for sentence in sentences]
    order = sorted(range(len(sentences)), key=lambda index: -lengths[index])
    batches, batch = [], []
    for index in order:
        # Sorted longest first, so the batch's first sentence sets its padded length.
        if batch and ((len(batch) + 1) * lengths[batch[0]] > batch_tokens
                      or len(batch) == max_sentences):
            batches.append(batch)
            batch = []
        batch.append(index)
    if batch:
        batches.append(batch)

    report, bar = progress, None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=len(sentences), unit="sentence", file=sys.stderr)

        def report(done, total):
            bar.update(done - bar.n)
    results = [None] * len(sentences)
    done = 0
    try:
        for batch in batches:
            outputs = list(translate_batch([sentences[index] for index in batch]))
            if len(outputs) != len(batch):
                raise ValueError(f"`translate_batch` returned {len(outputs)} results for a "
                                 f"batch of {len(batch)} sentences; it must return one each.")
            for index, output in zip(batch, outputs):
                results[index] = output
            done += len(batch)
            if report:
                report(done, len(sentences))
    finally:
        if bar is not None:
            bar.close()
    return results


def translate_texts(translator, sentences, batch_tokens=DEFAULT_BATCH_TOKENS, beam_size=None,
                    alpha=0.6, progress=None):
    """Translations of a list of strings, batched by `translate_in_batches`.

    Args:
        translator: a `Translator`, or a SavedModel of one loaded with `tf.saved_model.load`.
        sentences: list of str.
        batch_tokens: int, default 4096. Padded-token budget of a batch, in words.
        beam_size: int or None, default None. None decodes greedily (`translate`); an int runs
            `translate_beams` with that beam and keeps the best translation.
        alpha: float, default 0.6. GNMT length penalty of beam search.
        progress: see `translate_in_batches`.

    Returns:
        list of str, the translations in the order of `sentences`.
    """
    def translate_batch(batch):
        text = tf.constant(batch, tf.string)
        if beam_size is None:
            return _strings(translator.translate(text)["translation"])
        outputs = translator.translate_beams(text, tf.constant(beam_size, tf.int32),
                                             tf.constant(1, tf.int32),
                                             tf.constant(alpha, tf.float32))
        return _strings(outputs["translations"][:, 0])

    return translate_in_batches(sentences, translate_batch, batch_tokens=batch_tokens,
                                progress=progress)


def split_attention(outputs):
    """Splits the outputs of `attention` per sentence, trimmed to the real tokens.

    Args:
        outputs: dict of tensors or arrays returned by `Translator.attention` (or the
            `attention` signature of its SavedModel) for B sentences.

    Returns:
        list of B dicts: "source_tokens" [S_b] and "target_tokens" [T_b] (lists of str),
        "translation" (str) and "attention" (kind -> float32 array [L, N, Tq, Tk]: kinds
        "encoder_self" [L, N, S_b, S_b], "decoder_self" [L, N, T_b, T_b], "cross"
        [L, N, T_b, S_b]).

    Raises:
        ValueError: an output is missing.
    """
    required = {"source_tokens", "target_tokens", "translation", "source_length",
                "target_length", *ATTENTION_OUTPUTS.values()}
    missing = sorted(required - set(outputs))
    if missing:
        raise ValueError(f"The attention outputs lack {missing}; expected the outputs of "
                         "`Translator.attention`.")
    outputs = {name: np.asarray(value) for name, value in outputs.items()}
    results = []
    for index in range(len(outputs["translation"])):
        source_length = int(outputs["source_length"][index])
        target_length = int(outputs["target_length"][index])
        sizes = {"encoder_self": (source_length, source_length),
                 "decoder_self": (target_length, target_length),
                 "cross": (target_length, source_length)}
        attention = {}
        for kind, output in ATTENTION_OUTPUTS.items():
            queries, keys = sizes[kind]
            attention[kind] = outputs[output][index, :, :, :queries, :keys].astype(np.float32)
        results.append({
            "source_tokens": _strings(outputs["source_tokens"][index, :source_length]),
            "target_tokens": _strings(outputs["target_tokens"][index, :target_length]),
            "translation": outputs["translation"][index].decode("utf-8"),
            "attention": attention,  # kind -> [L, N, Tq, Tk]
        })
    return results


def _strings(values):
    return [value.decode("utf-8") for value in np.asarray(values).tolist()]
