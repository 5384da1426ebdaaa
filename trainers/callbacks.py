"""Keras callbacks of the trainer: BLEU, throughput, attention and embedding summaries.

Shape letters: B batch, S source length, T target length, C decoded length, L layers, N heads.

Callbacks that add to `logs` (`BleuCallback`: "val_bleu", `ThroughputCallback`:
"tokens_per_second") must come before `ModelCheckpoint` and `keras.callbacks.TensorBoard` in
the callback list, which then see the values (Keras hands every callback the same `logs`).
"""

import os
import time

import keras
import numpy as np
import sacrebleu
import tensorflow as tf

from tf_transformer import checkpoints as checkpoints_lib
from tf_transformer.decoding import END_ID, START_ID, greedy_decode
from tf_transformer.layers.masks import PAD_ID
from tf_transformer.tensorboard import summaries
from trainers import model_dir as model_dir_lib


def make_translate_fn(model, tokenizers, max_length):
    """Returns a `tf.function` translating a batch of strings greedily, all in the graph.

    Args:
        model: `tf_transformer.Transformer`.
        tokenizers: `TokenizerPair`.
        max_length: int. Longest source (longer ones are cut) and longest translation.

    Returns:
        callable: strings tf.string [B] -> (source_ids int32 [B, S], output_ids int32 [B, C],
        translations tf.string [B]).
    """
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def translate(strings):
        source_ids = tokenizers.source.tokenize_padded(strings, max_length)  # [B, S]
        output_ids = greedy_decode(model, source_ids, max_length=max_length).ids  # [B, C]
        return source_ids, output_ids, tokenizers.target.detokenize(output_ids)

    return translate


def corpus_bleu(hypotheses, references, lowercase=False):
    """Corpus sacreBLEU (13a tokenization) of `hypotheses` against one reference each."""
    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)],
                                 lowercase=lowercase).score


def _texts(tensor):
    return [value.decode("utf-8") for value in tensor.numpy()]


class TargetTokenCount(keras.metrics.Metric):
    """Counts non-padding target tokens seen since the last reset (summed over replicas).

    Compiled as a metric so that the count comes out of the same step that trains on the
    batch; `ThroughputCallback` turns it into tokens per second.
    """

    def __init__(self, name="tokens", **kwargs):
        super().__init__(name=name, **kwargs)
        self.count = self.add_variable(shape=(), initializer="zeros", name="count",
                                       dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        del y_pred, sample_weight
        self.count.assign_add(tf.reduce_sum(tf.cast(tf.not_equal(y_true, PAD_ID), tf.float32)))

    def result(self):
        # A copy: Keras keeps the training epoch's result in the epoch logs while `evaluate`
        # resets and reuses this variable for the validation count.
        return tf.identity(self.count)

    def reset_state(self):
        self.count.assign(0.0)


class ThroughputCallback(keras.callbacks.Callback):
    """Puts "tokens_per_second" (target tokens trained on per second) into the epoch logs.

    The time runs from the start of the epoch to the end of its last training batch, so
    validation is not counted; the first epoch includes tracing and compilation.
    """

    def __init__(self):
        super().__init__()
        self.epochs = []  # (tokens, seconds) of each epoch of this run
        self._epoch_start = None
        self._last_batch_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._last_batch_end = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or "tokens" not in logs:
            return
        seconds = max(self._last_batch_end - self._epoch_start, 1e-9)
        self.epochs.append((float(logs["tokens"]), seconds))
        logs["tokens_per_second"] = float(logs["tokens"]) / seconds

    @property
    def tokens_per_second(self):
        """Throughput over this run's epochs, leaving out the first one (tracing and
        compilation) when there are more (0 before the first epoch ends)."""
        if len(self.epochs) > 1:
            tokens, seconds = map(sum, zip(*self.epochs[1:]))
        elif self.epochs:
            tokens, seconds = self.epochs[0]
        else:
            return 0.0
        return tokens / seconds


class BleuCallback(keras.callbacks.Callback):
    """Greedy-decodes a fixed sample of validation sentences each epoch and reports BLEU.

    Adds "val_bleu" (corpus sacreBLEU) to the epoch logs, so that
    `ModelCheckpoint(monitor="val_bleu", mode="max")` and TensorBoard see it, and writes the
    first sample translations (with source and reference) as text summaries.

    Args:
        tokenizers: `TokenizerPair`.
        sources: list of str, the source sentences.
        references: list of str, their reference translations.
        max_length: int. Longest source and translation in tokens.
        batch_size: int, default 64. Sentences decoded at once.
        lowercase: bool, default False. Case-insensitive BLEU (for lowercased vocabularies).
        log_dir: str or None. TensorBoard folder for the text summaries; None writes none.
        text_samples: int, default 3. Translations written as text summaries.
    """

    def __init__(self, tokenizers, sources, references, max_length, batch_size=64,
                 lowercase=False, log_dir=None, text_samples=3):
        super().__init__()
        if len(sources) != len(references):
            raise ValueError(f"Got {len(sources)} sources but {len(references)} references.")
        self.tokenizers = tokenizers
        self.sources = list(sources)
        self.references = list(references)
        self.max_length = max_length
        self.batch_size = batch_size
        self.lowercase = lowercase
        self.log_dir = log_dir
        self.text_samples = text_samples
        self.last_translations = []
        self._translate = None
        self._writer = None

    def translate(self, sentences):
        """Greedy translations of `sentences` (list of str) with the current weights."""
        if self._translate is None:
            self._translate = make_translate_fn(self.model, self.tokenizers, self.max_length)
        translations = []
        for start in range(0, len(sentences), self.batch_size):
            batch = tf.constant(sentences[start:start + self.batch_size])
            translations += _texts(self._translate(batch)[2])
        return translations

    def bleu(self):
        """Corpus BLEU of the sample with the current weights (also keeps the translations)."""
        self.last_translations = self.translate(self.sources)
        return corpus_bleu(self.last_translations, self.references, self.lowercase)

    def on_epoch_end(self, epoch, logs=None):
        score = self.bleu()
        if logs is not None:
            logs["val_bleu"] = score
        if self.log_dir is None:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=epoch):
            for index in range(min(self.text_samples, len(self.sources))):
                tf.summary.text(
                    f"translation/sample_{index}",
                    f"**source:** {self.sources[index]}  \n"
                    f"**reference:** {self.references[index]}  \n"
                    f"**model:** {self.last_translations[index]}")
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class BestRecordCallback(keras.callbacks.Callback):
    """Keeps checkpoints/best.json in step with `ModelCheckpoint(save_best_only=True)`.

    Records the epoch and score whenever the monitored value beats the best so far (strictly,
    as ModelCheckpoint does), so that a restarted run can hand the best score to
    `ModelCheckpoint(initial_value_threshold=...)` instead of overwriting a better checkpoint.

    Args:
        model_dir: str, the model directory.
        monitor: str, default "val_bleu".
        mode: str, default "max". "max" or "min".
        best: float or None. Best value of earlier runs.
    """

    def __init__(self, model_dir, monitor="val_bleu", mode="max", best=None):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"`mode` must be 'max' or 'min'; received mode={mode!r}.")
        self.model_dir = model_dir
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if self.best is None or self.sign * value > self.sign * self.best:
            self.best = float(value)
            model_dir_lib.write_best(self.model_dir, epoch + 1, self.monitor, value)


class IntervalCheckpoint(keras.callbacks.Callback):
    """Saves the weights at the end of every epoch as `step_STEP.weights.h5` (STEP: the
    optimizer step reached) and deletes all but the last `keep`.

    Each file is written under a temporary name and renamed into place, so a process killed
    while saving leaves either the whole checkpoint or none. Put it before
    `BackupAndRestore`: a run killed between the two redoes the epoch and writes the same file.

    Args:
        checkpoints_dir: str, the model directory's checkpoints folder.
        keep: int. Checkpoints kept (the newest); must be positive.
    """

    def __init__(self, checkpoints_dir, keep):
        super().__init__()
        if keep < 1:
            raise ValueError(f"`keep` must be positive; received keep={keep!r}.")
        self.checkpoints_dir = checkpoints_dir
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.checkpoints_dir, exist_ok=True)
        path = checkpoints_lib.interval_checkpoint_path(
            self.checkpoints_dir, int(self.model.optimizer.iterations.numpy()))
        partial = path[:-len(".weights.h5")] + ".partial.weights.h5"
        self.model.save_weights(partial, overwrite=True)
        os.replace(partial, path)
        for _, old in checkpoints_lib.list_interval_checkpoints(self.checkpoints_dir)[
                :-self.keep]:
            os.remove(old)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` on validation BLEU that a resumed run continues.

    A restarted run starts from the best score of the earlier runs (checkpoints/best.json)
    and from the epochs already waited since it, instead of from nothing.

    Args:
        patience: int. Epochs without a strictly better BLEU before stopping.
        best: dict or None. `model_dir.read_best(...)` of the earlier runs.
        initial_epoch: int, default 0. Epochs finished before this run.
    """

    def __init__(self, patience, best=None, initial_epoch=0):
        super().__init__(monitor="val_bleu", mode="max", patience=patience)
        self.previous_best = best if best and best["monitor"] == "val_bleu" else None
        self.initial_epoch = initial_epoch

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.previous_best is not None:
            self.best = self.previous_best["value"]
            self.wait = self.initial_epoch - self.previous_best["epoch"]


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of an epoch when the next one would overrun a time budget.

    The next epoch is assumed to last as long as the longest so far (callbacks placed before
    this one included), so the run ends on a finished epoch whose checkpoints and backup are
    written. At least one epoch runs.

    Args:
        seconds: float, the budget.
        started: float or None. `time.perf_counter()` when the budget began; None: when
            training begins.
    """

    def __init__(self, seconds, started=None):
        super().__init__()
        self.seconds = seconds
        self.started = started
        self.stopped = False
        self._epoch_started = None
        self._longest_epoch = 0.0

    def on_train_begin(self, logs=None):
        if self.started is None:
            self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self._longest_epoch = max(self._longest_epoch, now - self._epoch_started)
        if now - self.started + self._longest_epoch > self.seconds:
            self.stopped = True
            self.model.stop_training = True


class AttentionCallback(keras.callbacks.Callback):
    """Writes the attention of a few probe sentences to TensorBoard after every epoch.

    Each probe is translated greedily; the model's `attention_maps` on (source, START +
    translation) is trimmed to the real tokens and written with
    `tf_transformer.tensorboard.summaries.write_attention` as probe `probe_{i}`, for the
    Attention dashboard (and as heatmap images if `images`).

    Args:
        tokenizers: `TokenizerPair`.
        sentences: list of str, the probe sentences.
        log_dir: str, TensorBoard folder to write into.
        max_length: int. Longest source and translation in tokens.
        images: bool, default True. Also write heatmap images (slower).
    """

    def __init__(self, tokenizers, sentences, log_dir, max_length, images=True):
        super().__init__()
        self.tokenizers = tokenizers
        self.sentences = list(sentences)
        self.log_dir = log_dir
        self.max_length = max_length
        self.images = images
        self._translate = None
        self._attention = None
        self._writer = None

    def _attention_maps(self, source_ids, target_ids):
        maps = self.model.attention_maps(source_ids, target_ids)
        return {kind: maps[kind] for kind in summaries.KINDS}

    def write(self, step):
        """Writes the probes' attention with the current weights at `step`."""
        if self._translate is None:
            self._translate = make_translate_fn(self.model, self.tokenizers, self.max_length)
            self._attention = tf.function(self._attention_maps, reduce_retracing=True)
            self._writer = tf.summary.create_file_writer(self.log_dir)
        source_ids, output_ids, translations = self._translate(tf.constant(self.sentences))
        output_ids = output_ids.numpy()  # [B, C]
        # Decoder input: START, then the translation up to (not including) END, within the
        # model's positions (a translation that never ended fills all of them).
        longest = self.model.transformer_config.max_length - 1
        lengths = [min(_length_before_end(row), longest) for row in output_ids]
        target_ids = np.full([len(self.sentences), max(lengths) + 1], PAD_ID, np.int32)
        target_ids[:, 0] = START_ID
        for row, length in enumerate(lengths):
            target_ids[row, 1:length + 1] = output_ids[row, :length]  # [B, T]
        maps = {kind: np.asarray(value, np.float32) for kind, value in
                self._attention(source_ids, tf.constant(target_ids)).items()}
        source_ids = source_ids.numpy()  # [B, S]
        with self._writer.as_default():
            for row, translation in enumerate(_texts(translations)):
                source_length = int(np.sum(source_ids[row] != PAD_ID))
                target_length = lengths[row] + 1
                source_tokens = _texts(self.tokenizers.source.id_to_string(
                    source_ids[row, :source_length]))
                target_tokens = _texts(self.tokenizers.target.id_to_string(
                    target_ids[row, :target_length]))
                summaries.write_attention(
                    step, f"probe_{row}", source_tokens, target_tokens,
                    {"encoder_self": maps["encoder_self"][row, :, :, :source_length,
                                                          :source_length],
                     "decoder_self": maps["decoder_self"][row, :, :, :target_length,
                                                          :target_length],
                     "cross": maps["cross"][row, :, :, :target_length, :source_length]},
                    translation=translation, images=self.images)
        self._writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        self.write(epoch)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _length_before_end(ids):
    """Number of tokens of a decoded row before its END (or PAD, or the end of the row)."""
    for index, token in enumerate(ids):
        if token in (END_ID, PAD_ID):
            return index
    return len(ids)


class GraphSummaryCallback(keras.callbacks.Callback):
    """Writes the graph of the model's forward pass to TensorBoard's Graphs dashboard.

    (Keras 3's `TensorBoard(write_graph=True)` finds no graph in the TensorFlow trainer's
    train function, so the forward pass is traced here once, at the start of training.)

    Args:
        log_dir: str, the folder to write into (the model directory's logs/train).
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir

    def on_train_begin(self, logs=None):
        ids = tf.TensorSpec([None, None], tf.int32)
        forward = tf.function(lambda source, target: self.model((source, target)))
        graph = forward.get_concrete_function(ids, ids).graph
        writer = tf.summary.create_file_writer(self.log_dir)
        with writer.as_default():
            tf.summary.graph(graph)
        writer.close()


class EmbeddingSummaryCallback(keras.callbacks.Callback):
    """Once per run, at its end: the position encoding image and the embedding projector.

    Writes the `position_encoding` image summary (positions x dimensions, as the model adds
    them to the source embeddings) into `log_dir`, and the token embeddings for the Projector
    dashboard into `log_dir/embeddings` (shared vocabulary) or `log_dir/embeddings_source`
    and `log_dir/embeddings_target`.

    Args:
        tokenizers: `TokenizerPair`.
        log_dir: str, the TensorBoard folder (the model directory's logs/).
    """

    def __init__(self, tokenizers, log_dir):
        super().__init__()
        self.tokenizers = tokenizers
        self.log_dir = log_dir

    def on_train_end(self, logs=None):
        self.write()

    def write(self):
        config = self.model.transformer_config
        positions = self.model.source_position(
            tf.zeros([1, config.max_length, config.d_model], self.model.compute_dtype))
        writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "position"))
        with writer.as_default():
            summaries.write_position_encoding(np.asarray(positions[0], np.float32))  # [P, D]
        writer.close()
        tables = [("embeddings", self.tokenizers.source, self.model.source_embedding)]
        if not config.share_embeddings:
            tables = [("embeddings_source", self.tokenizers.source, self.model.source_embedding),
                      ("embeddings_target", self.tokenizers.target, self.model.target_embedding)]
        for folder, tokenizer, embedding in tables:
            vocabulary = _texts(tokenizer.id_to_string(tf.range(tokenizer.vocab_size)))
            matrix = np.asarray(embedding.embeddings, np.float32)  # [V, D]
            summaries.write_embeddings(os.path.join(self.log_dir, folder), matrix, vocabulary)
