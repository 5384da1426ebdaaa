"""Training SentencePiece vocabularies, alone or as a source/target pair."""

import dataclasses
import json
import os
import tempfile

import numpy as np
import sentencepiece
import tensorflow as tf

from tf_transformer.text.normalization import normalize_text
from tf_transformer.text.tokenizer import (
    END_ID,
    MODEL_FILENAME,
    PAD_ID,
    START_ID,
    UNK_ID,
    SubwordTokenizer,
)

PAIR_FILENAME = "tokenizers.json"
_MODEL_TYPES = ("unigram", "bpe")
# Batch size used when normalizing training sentences with the graph ops.
_NORMALIZE_BATCH = 1024
# Pairs read at once while sampling a corpus.
_SAMPLE_BATCH = 4096


def _normalized_lines(sentences, lowercase):
    """Yields normalized, non-empty sentences from an iterable of str/bytes or a tf.data
    dataset of scalar strings."""
    if isinstance(sentences, tf.data.Dataset):
        batches = sentences.batch(_NORMALIZE_BATCH)
    else:
        batches = _python_batches(sentences)
    for batch in batches:
        for line in normalize_text(batch, lowercase=lowercase).numpy():
            if line:
                yield line.decode("utf-8")


def _python_batches(sentences):
    batch = []
    for sentence in sentences:
        batch.append(sentence)
        if len(batch) == _NORMALIZE_BATCH:
            yield tf.constant(batch)
            batch = []
    if batch:
        yield tf.constant(batch)


def train_subword_tokenizer(
    sentences,
    directory,
    vocab_size=8000,
    lowercase=False,
    model_type="unigram",
    character_coverage=1.0,
    max_sentences=None,
    seed=0,
):
    """Trains a SentencePiece vocabulary and returns the tokenizer saved in `directory`.

    Sentences are normalized with the tokenizer's own graph ops before training. The model
    reserves PAD=0, UNK=1, START=2 ("<s>"), END=3 ("</s>") and applies SentencePiece's
    `nmt_nfkc` rules; characters not seen in training (beyond `character_coverage`) map to UNK.

    Args:
        sentences: iterable of str/bytes, or a `tf.data.Dataset` of scalar tf.string.
        directory: str, where `sentencepiece.model` and `tokenizer.json` are written.
        vocab_size: int, default 8000. Number of pieces including the 4 reserved ones.
        lowercase: bool, default False. Lowercase text (in training and when tokenizing).
        model_type: str, default "unigram". "unigram" or "bpe".
        character_coverage: float, default 1.0. Share of characters the vocabulary must cover.
        max_sentences: int, default None. Train on at most this many sentences (a random
            sample chosen by SentencePiece with `seed`); None uses them all.
        seed: int, default 0. Seed of SentencePiece's sampling, for reproducible vocabularies.

    Returns:
        `SubwordTokenizer` loaded from `directory`.

    Raises:
        ValueError: for a bad argument, no sentences, or a vocabulary larger than the text
            allows.
    """
    if model_type not in _MODEL_TYPES:
        raise ValueError(f"model_type must be one of {_MODEL_TYPES}, got {model_type!r}")
    if not isinstance(vocab_size, int) or vocab_size <= len((PAD_ID, UNK_ID, START_ID, END_ID)):
        raise ValueError(f"vocab_size must be an int larger than 4, got {vocab_size!r}")
    if not 0.0 < character_coverage <= 1.0:
        raise ValueError(f"character_coverage must be in (0, 1], got {character_coverage!r}")
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)

    # SentencePiece reads a text file; one sentence per line (normalization removed newlines).
    with tempfile.TemporaryDirectory() as scratch:
        corpus_path = os.path.join(scratch, "corpus.txt")
        count = 0
        with open(corpus_path, "w", encoding="utf-8") as corpus:
            for line in _normalized_lines(sentences, lowercase):
                corpus.write(line + "\n")
                count += 1
        if count == 0:
            raise ValueError("No non-empty sentences to train a vocabulary on.")
        model_prefix = os.path.join(directory, os.path.splitext(MODEL_FILENAME)[0])
        sentencepiece.set_random_generator_seed(seed)
        try:
            sentencepiece.SentencePieceTrainer.train(
                input=corpus_path,
                model_prefix=model_prefix,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                input_sentence_size=max_sentences or 0,
                shuffle_input_sentence=True,
                normalization_rule_name="nmt_nfkc",
                pad_id=PAD_ID, unk_id=UNK_ID, bos_id=START_ID, eos_id=END_ID,
                pad_piece="<pad>", unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>",
                byte_fallback=False,
                num_threads=os.cpu_count() or 1,
                minloglevel=2,
            )
        except RuntimeError as error:
            raise ValueError(
                f"SentencePiece could not train a vocabulary of vocab_size={vocab_size} on "
                f"{count} sentences: {error}"
            ) from error
    # The .vocab listing is not needed: the .model file holds the pieces.
    os.remove(model_prefix + ".vocab")
    tokenizer = SubwordTokenizer(model_prefix + ".model", lowercase=lowercase)
    tokenizer.save(directory)
    return tokenizer


def reservoir_sample(pairs, size, seed=0):
    """Draws `size` pairs uniformly from the whole of a corpus in one streaming pass.

    Reservoir sampling (Vitter's Algorithm R, one batch of pairs at a time): memory holds
    `size` pairs whatever the corpus size, and every pair of the corpus has the same chance to
    be drawn, so a corpus whose second half differs from its first is represented in full.

    Args:
        pairs: `tf.data.Dataset` of (source, target) scalar tf.string, or an iterable of
            (source, target) str/bytes pairs.
        size: int, pairs to draw. A corpus of at most `size` pairs is returned whole, in order.
        seed: int, default 0. The same seed and corpus give the same sample.

    Returns:
        (sources, targets): two lists of bytes/str of equal length min(size, corpus pairs).
    """
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    rng = np.random.default_rng(seed)
    reservoir = np.empty((size, 2), dtype=object)
    seen = 0
    for batch in _pair_batches(pairs):
        # Fill the reservoir first; then pair number i (0-based) replaces a random slot j with
        # probability size / (i + 1), by drawing j uniformly in [0, i].
        fill = min(size - seen, len(batch)) if seen < size else 0
        reservoir[seen:seen + fill] = batch[:fill]
        rest = batch[fill:]
        numbers = np.arange(seen + fill, seen + len(batch))
        slots = rng.integers(0, numbers + 1)
        replacing = slots < size
        slots, rest = slots[replacing], rest[replacing]
        # When two pairs of the batch draw the same slot, the later one wins, as in the
        # one-at-a-time algorithm.
        _, last = np.unique(slots[::-1], return_index=True)
        last = len(slots) - 1 - last
        reservoir[slots[last]] = rest[last]
        seen += len(batch)
    kept = reservoir[:min(seen, size)]
    return list(kept[:, 0]), list(kept[:, 1])


def _pair_batches(pairs):
    """Yields object arrays [N, 2] of (source, target) from a dataset or an iterable."""
    if isinstance(pairs, tf.data.Dataset):
        for sources, targets in pairs.batch(_SAMPLE_BATCH).as_numpy_iterator():
            batch = np.empty((len(sources), 2), dtype=object)
            batch[:, 0], batch[:, 1] = list(sources), list(targets)
            yield batch
        return
    batch = []
    for pair in pairs:
        batch.append(tuple(pair))
        if len(batch) == _SAMPLE_BATCH:
            yield _object_array(batch)
            batch = []
    if batch:
        yield _object_array(batch)


def _object_array(pairs):
    array = np.empty((len(pairs), 2), dtype=object)
    array[:] = pairs
    return array


@dataclasses.dataclass(frozen=True)
class TokenizerPair:
    """The source and target tokenizers of a translation task.

    With a shared vocabulary `source` and `target` are the same `SubwordTokenizer` object.
    """

    source: SubwordTokenizer
    target: SubwordTokenizer

    @property
    def shared(self):
        """bool: True when one tokenizer serves both languages."""
        return self.source is self.target

    def save(self, directory):
        """Writes `tokenizers.json` and `shared/` or `source/` + `target/` under `directory`."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        if self.shared:
            self.source.save(os.path.join(directory, "shared"))
        else:
            self.source.save(os.path.join(directory, "source"))
            self.target.save(os.path.join(directory, "target"))
        with open(os.path.join(directory, PAIR_FILENAME), "w", encoding="utf-8") as f:
            json.dump({"shared": self.shared}, f, indent=2)

    @classmethod
    def load(cls, directory):
        """Reads a pair written by `save` (or by `train_tokenizers`)."""
        directory = os.fspath(directory)
        path = os.path.join(directory, PAIR_FILENAME)
        if not os.path.isfile(path):
            raise ValueError(f"No tokenizers in {directory!r}: {PAIR_FILENAME} is missing.")
        with open(path, encoding="utf-8") as f:
            shared = json.load(f)["shared"]
        if shared:
            tokenizer = SubwordTokenizer.load(os.path.join(directory, "shared"))
            return cls(tokenizer, tokenizer)
        return cls(
            SubwordTokenizer.load(os.path.join(directory, "source")),
            SubwordTokenizer.load(os.path.join(directory, "target")),
        )


def train_tokenizers(
    pairs,
    directory,
    vocab_size=8000,
    shared=True,
    target_vocab_size=None,
    lowercase=False,
    sample_size=None,
    seed=0,
    **options,
):
    """Trains a shared vocabulary or one per language from parallel text.

    The pairs are read once: with `sample_size`, a uniform sample of that many pairs is drawn
    from the whole corpus while streaming (`reservoir_sample`), so memory and training time
    stay bounded on corpora of any size.

    Args:
        pairs: `tf.data.Dataset` of (source, target) scalar strings, or an iterable of
            (source, target) str pairs.
        directory: str, where the pair is saved (see `TokenizerPair.save`).
        vocab_size: int, default 8000. Size of the shared vocabulary, or of the source one.
        shared: bool, default True. One vocabulary for both languages (trained on both sides).
        target_vocab_size: int, default None (= `vocab_size`). Target size when not shared.
        lowercase: bool, default False. Lowercase text in both tokenizers.
        sample_size: int, default None. Pairs drawn from the whole corpus (so sentences per
            side; a shared vocabulary trains on both sides of them); None uses every pair.
        seed: int, default 0. Seeds the sample and SentencePiece.
        **options: further arguments of `train_subword_tokenizer` (model_type,
            character_coverage, max_sentences).

    Returns:
        `TokenizerPair`.
    """
    if shared and target_vocab_size not in (None, vocab_size):
        raise ValueError(
            f"target_vocab_size={target_vocab_size} needs shared=False "
            f"(a shared vocabulary has one size, vocab_size={vocab_size})"
        )
    directory = os.fspath(directory)
    if sample_size is not None:
        sources, targets = reservoir_sample(pairs, sample_size, seed=seed)
    elif isinstance(pairs, tf.data.Dataset):
        sources = pairs.map(lambda source, target: source)
        targets = pairs.map(lambda source, target: target)
    else:
        pairs = list(pairs)
        sources = [source for source, _ in pairs]
        targets = [target for _, target in pairs]

    def train(sentences, name, size):
        return train_subword_tokenizer(
            sentences, os.path.join(directory, name), vocab_size=size, lowercase=lowercase,
            seed=seed, **options,
        )

    if shared:
        if isinstance(sources, tf.data.Dataset):
            both = sources.concatenate(targets)
        else:
            both = sources + targets
        tokenizer = train(both, "shared", vocab_size)
        result = TokenizerPair(tokenizer, tokenizer)
    else:
        result = TokenizerPair(
            train(sources, "source", vocab_size),
            train(targets, "target", target_vocab_size or vocab_size),
        )
    result.save(directory)
    return result


def load_or_train_tokenizers(directory, pairs, **training_options):
    """Loads the tokenizers saved in `directory`, or trains and saves them there first.

    Typical use: `load_or_train_tokenizers(MODEL_DIR + "/tokenizer", splits.train, ...)`, so a
    resumed run reuses the vocabulary of the first one.

    Args:
        directory: str, the tokenizer folder (e.g. MODEL_DIR/tokenizer).
        pairs: training pairs, as for `train_tokenizers`, or a function without arguments
            that returns them (called only when training: e.g. one that draws a sample).
        **training_options: arguments of `train_tokenizers`.

    Returns:
        `TokenizerPair`.
    """
    if os.path.isfile(os.path.join(os.fspath(directory), PAIR_FILENAME)):
        return TokenizerPair.load(directory)
    if callable(pairs):
        pairs = pairs()
    return train_tokenizers(pairs, directory, **training_options)
