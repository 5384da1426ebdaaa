"""Keras callbacks of the trainer: BLEU, throughput, attention and embedding summaries.

The BLEU and attention callbacks translate with `tf_transformer.translator.Translator`, the
module the export saves, so what they report is what the SavedModel answers.

Callbacks that add to `logs` (`BleuCallback`: "val_bleu", `ThroughputCallback`:
"tokens_per_second") must come before `ModelCheckpoint` and `keras.callbacks.TensorBoard` in
the callback list, which then see the values (Keras hands every callback the same `logs`).
"""

import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_transformer import checkpoints as checkpoints_lib
from tf_transformer.layers.masks import PAD_ID
from tf_transformer.metrics import corpus_bleu
from tf_transformer.tensorboard import summaries
from tf_transformer.translator import (
    DEFAULT_BATCH_TOKENS,
    Translator,
    split_attention,
    translate_texts,
)
from trainers import model_dir as model_dir_lib


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


class StopAtStep(keras.callbacks.Callback):
    """Ends training once the optimizer has made `steps` steps (mid-epoch if need be; Keras
    still evaluates and runs the epoch-end callbacks, so the last checkpoint is written).

    Args:
        steps: int, optimizer steps of the whole run.
    """

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) >= self.steps:
            self.model.stop_training = True


class FirstStepTimer(keras.callbacks.Callback):
    """Logs when the first training step of the run has finished, which measures the run's
    start-up (vocabulary, data counting, tracing), as seconds since `started` and as Unix time.

    Args:
        logger: `logging.Logger` to write to.
        started: float, `time.perf_counter()` when the run started.
    """

    def __init__(self, logger, started):
        super().__init__()
        self.logger = logger
        self.started = started
        self._logged = False

    def on_train_batch_end(self, batch, logs=None):
        if not self._logged:
            self._logged = True
            self.logger.info("First training step finished %.1f s after the run started "
                             "(unix time %.3f).", time.perf_counter() - self.started,
                             time.time())


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
        batch_tokens: int, default 4096. Padded source words decoded at once (see
            `tf_transformer.translator.translate_in_batches`).
        lowercase: bool, default False. Case-insensitive BLEU (for lowercased vocabularies).
        log_dir: str or None. TensorBoard folder for the text summaries; None writes none.
        text_samples: int, default 3. Translations written as text summaries.
    """

    def __init__(self, tokenizers, sources, references, max_length,
                 batch_tokens=DEFAULT_BATCH_TOKENS, lowercase=False, log_dir=None,
                 text_samples=3):
        super().__init__()
        if len(sources) != len(references):
            raise ValueError(f"Got {len(sources)} sources but {len(references)} references.")
        self.tokenizers = tokenizers
        self.sources = list(sources)
        self.references = list(references)
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.lowercase = lowercase
        self.log_dir = log_dir
        self.text_samples = text_samples
        self.last_translations = []
        self._translator = None
        self._writer = None

    def translate(self, sentences):
        """Greedy translations of `sentences` (list of str) with the current weights."""
        if self._translator is None:
            self._translator = Translator(self.model, self.tokenizers, self.max_length)
        return translate_texts(self._translator, sentences, batch_tokens=self.batch_tokens)

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

    Each probe is translated greedily and the model's attention on (source, START +
    translation) is written with `tf_transformer.tensorboard.summaries.write_attention` as
    probe `probe_{i}`, for the Attention dashboard (and as heatmap images if `images`): the
    same as `tft-inspect` writes from the export's `attention` signature.

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
        self._translator = None
        self._writer = None

    def write(self, step):
        """Writes the probes' attention with the current weights at `step`."""
        if self._translator is None:
            self._translator = Translator(self.model, self.tokenizers, self.max_length)
            self._writer = tf.summary.create_file_writer(self.log_dir)
        probes = split_attention(self._translator.attention(tf.constant(self.sentences)))
        with self._writer.as_default():
            for row, probe in enumerate(probes):
                summaries.write_attention(
                    step, f"probe_{row}", probe["source_tokens"], probe["target_tokens"],
                    probe["attention"], translation=probe["translation"], images=self.images)
        self._writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        self.write(epoch)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


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
            vocabulary = [piece.decode("utf-8") for piece in
                          tokenizer.id_to_string(tf.range(tokenizer.vocab_size)).numpy()]
            matrix = np.asarray(embedding.embeddings, np.float32)  # [V, D]
            summaries.write_embeddings(os.path.join(self.log_dir, folder), matrix, vocabulary)
