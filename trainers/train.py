"""`tft-train`: trains a Transformer with Keras `fit` under any `tf.distribute` strategy.

    tft-train --model-dir runs/anki --preset small --epochs 10 --batch-tokens 4096

Everything goes into --model-dir (see `trainers.model_dir`); running the same command again
resumes where the last run stopped. `train(...)` is the same thing as a function.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
import time

# Quiet TensorFlow's C++ start-up logging unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_transformer  # noqa: E402
from tf_transformer import data as data_lib  # noqa: E402
from tf_transformer.config import POSITION_ENCODINGS  # noqa: E402
from tf_transformer.model_dir import ModelDir, read_best, read_model_config  # noqa: E402
from tf_transformer.text import (  # noqa: E402
    TokenizerPair,
    load_or_train_tokenizers,
    reservoir_sample,
)
from trainers import callbacks as callbacks_lib  # noqa: E402
from trainers import model_dir as model_dir_lib  # noqa: E402
from trainers import strategy as strategy_lib  # noqa: E402
from trainers.config import MIXED_PRECISION_POLICIES, STRATEGIES, TrainingConfig  # noqa: E402
from trainers.multi_worker import MultiWorkerTransformer  # noqa: E402
from trainers.steps import (  # noqa: E402
    TokenWeightedTransformer,
    group_micro_batches,
    input_options,
)

logger = logging.getLogger("trainers.train")

# Epoch e of a run with seed s shuffles with seed s * EPOCH_SEED_STRIDE + e, so every epoch's
# data is a function of (seed, epoch) alone and a resumed run sees what it would have seen.
EPOCH_SEED_STRIDE = 100_003


def epoch_seed(seed, epoch):
    """The shuffle seed of `epoch` (0-based) for run seed `seed`."""
    return seed * EPOCH_SEED_STRIDE + epoch


def train(model_dir, training=None, preset="small", model_overrides=None, strategy=None,
          extra_callbacks=()):
    """Trains (or resumes training) a Transformer and returns a summary.

    Args:
        model_dir: str. Where config, vocabularies, checkpoints and logs go; a folder from an
            earlier run of the same configuration is resumed.
        training: `TrainingConfig`, default `TrainingConfig()`.
        preset: str, default "small". `TransformerConfig` preset.
        model_overrides: dict or None. `TransformerConfig` fields to override (vocabulary
            sizes and `share_embeddings` come from the tokenizers unless given).
        strategy: `tf.distribute.Strategy` or None. None creates `training.strategy`.
        extra_callbacks: Keras callbacks appended after the trainer's own.

    Returns:
        dict with "epochs_run", "epoch", "loss", "accuracy", "val_loss", "val_accuracy",
        "val_bleu", "best_epoch", "best_val_bleu", "seconds", "tokens_per_second",
        "steps_per_epoch", "optimizer_steps", "train_tokens" (target tokens trained on in
        this run), "accumulate_steps", "stopped" (None, "time
        budget" or "early stopping"), "replicas", "strategy", "model_dir", "samples" (a few
        (source, reference, translation) triples) and "history" (per-epoch logs of this run).

    Raises:
        ValueError: a bad setting, or a model directory holding a different model.
    """
    training = training or TrainingConfig()
    started = time.perf_counter()
    if strategy is None:
        strategy = strategy_lib.create_strategy(training.strategy, training.tpu)
    chief = strategy_lib.is_chief(strategy)
    paths = ModelDir(model_dir)
    # Workers other than the chief write their own copies elsewhere (Keras' multi-worker rule).
    own = paths if chief else paths.for_worker(strategy_lib.worker_index(strategy))
    num_pipelines = _num_workers(strategy)
    replicas_per_pipeline = strategy.num_replicas_in_sync // num_pipelines
    keras.utils.set_random_seed(training.seed)

    splits = data_lib.load_splits(training.data, training.source_lang, training.target_lang,
                                  data_dir=training.data_dir)
    train_pairs = splits.train
    if training.max_train_examples:
        train_pairs = train_pairs.take(training.max_train_examples)
    tokenizers = _tokenizers(strategy, chief, paths,
                             lambda: _vocabulary_pairs(training, splits, train_pairs), training)
    model_config = _model_config(preset, model_overrides, tokenizers, training)
    _check_resumable(paths, model_config)

    batch_options = dict(max_tokens=training.batch_tokens, max_length=training.max_length)
    count_settings = {
        "data": training.data, "source_lang": splits.source_lang,
        "target_lang": splits.target_lang, "max_train_examples": training.max_train_examples,
        "batch_tokens": training.batch_tokens, "max_length": training.max_length,
        "input_pipelines": num_pipelines, "replicas_per_pipeline": replicas_per_pipeline,
        "accumulate_steps": training.accumulate_steps}
    epochs, steps_per_epoch = _run_length(training, paths, chief, count_settings, lambda: (
        _count_epoch_steps(train_pairs, tokenizers, num_pipelines,
                           # An optimizer step takes accumulate_steps batches per replica.
                           replicas_per_pipeline * training.accumulate_steps,
                           shuffle_buffer=training.shuffle_buffer,
                           seed=epoch_seed(training.seed, 0), **batch_options)))
    validation_steps = training.validation_steps or _stored_count(
        paths, chief, "validation", count_settings, lambda: _steps_per_pass(
            splits.validation, tokenizers, num_pipelines, replicas_per_pipeline,
            shuffle_buffer=0, **batch_options))
    data_info = {
        "name": training.data, "source_lang": splits.source_lang,
        "target_lang": splits.target_lang, "shared_vocab": tokenizers.shared,
        "lowercase": training.lowercase, "source_vocab_size": tokenizers.source.vocab_size,
        "target_vocab_size": tokenizers.target.vocab_size, "steps_per_epoch": steps_per_epoch,
        "validation_steps": validation_steps,
    }
    if chief:
        model_dir_lib.write_configs(paths, model_dir_lib.Configs(model_config, training,
                                                                 data_info))
    initial_epoch = model_dir_lib.resume_epoch(own)
    if initial_epoch > epochs:
        requested = (f"--train-steps {training.train_steps}" if training.train_steps
                     else f"--epochs {training.epochs}")
        raise ValueError(
            f"{paths.root} has already run {initial_epoch} epochs of {steps_per_epoch} steps, "
            f"more than the {epochs} of {requested}; ask for more or use another "
            "--model-dir.")

    if training.train_steps:
        stream = _step_stream(train_pairs, tokenizers, training, initial_epoch, batch_options)
    else:
        stream = _training_stream(train_pairs, tokenizers, training, steps_per_epoch,
                                  initial_epoch, batch_options)
    train_data = strategy.distribute_datasets_from_function(
        stream, options=input_options(training.accumulate_steps))
    validation_data = strategy.distribute_datasets_from_function(_validation_stream(
        splits.validation, tokenizers, validation_steps, batch_options))

    model_class = MultiWorkerTransformer if num_pipelines > 1 else TokenWeightedTransformer
    with strategy.scope():
        model = model_class(model_config, accumulate_steps=training.accumulate_steps,
                            dtype=training.dtype_policy)
        schedule = tf_transformer.WarmupInverseSqrtSchedule(
            model_config.d_model, training.warmup_steps, training.learning_rate_scale)
        optimizer = keras.optimizers.Adam(schedule, beta_1=training.adam_beta_1,
                                          beta_2=training.adam_beta_2,
                                          epsilon=training.adam_epsilon)
        model.compile(
            optimizer=optimizer,
            loss=tf_transformer.MaskedSparseCategoricalCrossentropy(training.label_smoothing),
            metrics=[tf_transformer.MaskedAccuracy(name="accuracy"),
                     callbacks_lib.TargetTokenCount(name="tokens")],
            jit_compile=training.jit_compile)
    _build_training_state(model, strategy, splits.validation, tokenizers, batch_options)

    validation_sample = list(splits.validation.take(
        max(training.bleu_samples, training.attention_probes)).as_numpy_iterator())
    sources = [source.decode("utf-8") for source, _ in validation_sample]
    references = [target.decode("utf-8") for _, target in validation_sample]
    callbacks, throughput, bleu, budget = _callbacks(
        paths, own, chief, tokenizers, training, sources, references, initial_epoch, started)
    callbacks.insert(0, callbacks_lib.FirstStepTimer(logger, started))
    if training.train_steps:
        # The last interval ends at exactly train_steps optimizer steps.
        callbacks.insert(0, callbacks_lib.StopAtStep(training.train_steps))
    callbacks += list(extra_callbacks)

    history = model.fit(
        train_data, validation_data=validation_data, epochs=epochs,
        steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
        callbacks=callbacks, verbose=training.verbose, shuffle=False)
    epochs_run = len(history.epoch)

    if epochs_run:
        last = {key: values[-1] for key, values in history.history.items()}
    else:
        # Nothing left to train: report the restored model's validation figures.
        last = {f"val_{key}": value for key, value in model.evaluate(
            validation_data, steps=validation_steps, verbose=0, return_dict=True).items()}
        if bleu is not None:
            last["val_bleu"] = bleu.bleu()
    best = read_best(own)
    stopped = None
    if budget is not None and budget.stopped:
        stopped = "time budget"
    elif epochs_run and initial_epoch + epochs_run < epochs:
        stopped = "early stopping"
    samples = []
    if bleu is not None:
        samples = list(zip(sources, references, bleu.last_translations))[:5]
    return {
        "epochs_run": epochs_run,
        "epoch": initial_epoch + epochs_run,
        "loss": last.get("loss"),
        "accuracy": last.get("accuracy"),
        "val_loss": last.get("val_loss"),
        "val_accuracy": last.get("val_accuracy"),
        "val_bleu": last.get("val_bleu"),
        "best_epoch": best and best["epoch"],
        "best_val_bleu": best["value"] if best and best["monitor"] == "val_bleu" else None,
        "seconds": time.perf_counter() - started,
        "tokens_per_second": throughput.tokens_per_second,
        "steps_per_epoch": steps_per_epoch,
        "optimizer_steps": int(model.optimizer.iterations.numpy()),
        "train_tokens": float(sum(history.history.get("tokens", []))),
        "accumulate_steps": training.accumulate_steps,
        "stopped": stopped,
        "replicas": strategy.num_replicas_in_sync,
        "strategy": strategy_lib.strategy_name(strategy),
        "model_dir": paths.root,
        "samples": samples,
        "history": history.history,
    }


def _build_training_state(model, strategy, pairs, tokenizers, batch_options):
    """Creates the weights, compiled loss and metrics (on one real batch, in every replica)
    and the optimizer's slots before `fit`.

    The compiled metrics are built from real int32 batches rather than symbolic copies of
    `fit`'s first distributed batch. With every variable already there, `fit` traces its train
    function once instead of twice (`tf.function` traces again after a trace that created
    variables), which saves seconds of start-up per run.
    """
    (source, target_input), target_output = next(iter(
        data_lib.make_batches(pairs, tokenizers, shuffle_buffer=0, **batch_options).take(1)))

    def build():
        predictions = model((source, target_input))  # [B, T, V]
        model.compute_loss(x=(source, target_input), y=target_output, y_pred=predictions)
        model.compute_metrics((source, target_input), target_output, predictions)

    strategy.run(build)
    model.reset_metrics()
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)


def _num_workers(strategy):
    """Input pipelines of the strategy: one per worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def _vocabulary_pairs(training, splits, train_pairs):
    """The pairs the vocabulary is fitted on: all training pairs, or `vocab_sample_size` of
    them drawn uniformly from the whole training split (from the first `max_train_examples`
    when the run trains on those only)."""
    size = training.vocab_sample_size
    if size is None:
        return train_pairs
    if training.max_train_examples:
        sources, targets = reservoir_sample(train_pairs, size, seed=training.seed)
    else:
        sources, targets = data_lib.sample_parallel(
            training.data, "train", size, seed=training.seed, source_lang=splits.source_lang,
            target_lang=splits.target_lang, data_dir=training.data_dir)
    return list(zip(sources, targets))


def _tokenizers(strategy, chief, paths, vocabulary_pairs, training):
    """Loads the run's vocabularies, training them first (on the chief) if there are none.

    `vocabulary_pairs` is a function returning the pairs to fit them on (called only then)."""
    if chief:
        started = time.perf_counter()
        tokenizers = load_or_train_tokenizers(
            paths.tokenizer_dir, vocabulary_pairs, vocab_size=training.vocab_size,
            shared=training.shared_vocab, lowercase=training.lowercase, seed=training.seed)
        logger.info("Vocabulary ready in %.1f s.", time.perf_counter() - started)
    if _num_workers(strategy) > 1:
        _barrier(strategy)  # the chief has written the vocabularies
    if not chief:
        tokenizers = TokenizerPair.load(paths.tokenizer_dir)
    return tokenizers


def _barrier(strategy):
    """Returns once every worker got here (an all-reduce needs all of them)."""
    @tf.function
    def all_reduce():
        ones = strategy.run(lambda: tf.constant(1.0))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

    all_reduce()


def _model_config(preset, overrides, tokenizers, training):
    values = {"source_vocab_size": tokenizers.source.vocab_size,
              "target_vocab_size": tokenizers.target.vocab_size,
              "share_embeddings": tokenizers.shared}
    values.update(overrides or {})
    config = tf_transformer.TransformerConfig.preset(preset, **values)
    if training.max_length > config.max_length:
        raise ValueError(
            f"The training max_length={training.max_length} exceeds the model's "
            f"max_length={config.max_length} (preset {preset!r}); lower --max-length or raise "
            "the model's max_length.")
    return config


def _check_resumable(paths, model_config):
    if not os.path.isfile(paths.config_path):
        return
    existing = read_model_config(paths)
    if existing != model_config:
        old, new = existing.to_dict(), model_config.to_dict()
        changed = {key: (old[key], new[key]) for key in old if old[key] != new[key]}
        raise ValueError(
            f"{paths.root} holds a model with a different configuration {changed} "
            "(field: (saved, requested)); use another --model-dir or the saved settings.")


# Steps between evaluations and checkpoints of a --train-steps run, by default.
DEFAULT_INTERVAL_STEPS = 1000


def _run_length(training, paths, chief, count_settings, count_epoch_steps):
    """(Keras epochs, steps per Keras epoch) of the run.

    With `train_steps` nothing is counted: an epoch is an interval of `steps_per_epoch`
    (default min(train_steps, DEFAULT_INTERVAL_STEPS)) steps, the last one cut short at
    train_steps by `StopAtStep`. With `epochs` alone an epoch is one pass over the data:
    counted once (`count_epoch_steps()`) and stored in the model directory.
    """
    if training.train_steps:
        interval = training.steps_per_epoch or min(training.train_steps,
                                                   DEFAULT_INTERVAL_STEPS)
        return -(-training.train_steps // interval), interval
    steps = training.steps_per_epoch or _stored_count(paths, chief, "epoch", count_settings,
                                                      count_epoch_steps)
    return training.epochs, steps


def _stored_count(paths, chief, name, settings, count):
    """A step count stored in the model directory, or `count()` (stored by the chief)."""
    steps = model_dir_lib.read_step_count(paths, name, settings)
    if steps is None:
        steps = count()
        if chief:
            model_dir_lib.write_step_count(paths, name, settings, steps)
    return steps


def _count_epoch_steps(pairs, tokenizers, num_pipelines, replicas_per_pipeline, **options):
    """Steps in one pass over the training pairs (a tokenized pass over the whole corpus)."""
    logger.info("Counting the steps of one pass over the training data (once per model "
                "directory; --train-steps or --steps-per-epoch skip it).")
    return _steps_per_pass(pairs, tokenizers, num_pipelines, replicas_per_pipeline, **options)


def _steps_per_pass(pairs, tokenizers, num_pipelines, replicas_per_pipeline, **options):
    """Steps in one pass over `pairs`: the fewest over the input pipelines, so that every
    worker runs the same number of steps (collectives need all of them)."""
    batches = []
    for pipeline in range(num_pipelines):
        context = tf.distribute.InputContext(num_pipelines, pipeline,
                                             num_pipelines * replicas_per_pipeline)
        dataset = data_lib.make_distributed_batches_fn(pairs, tokenizers, **options)(context)
        batches.append(int(dataset.reduce(0, lambda count, _: count + 1)))
    steps = min(batches) // replicas_per_pipeline
    if steps == 0:
        raise ValueError(f"Too little data: {min(batches)} batches for "
                         f"{replicas_per_pipeline} replicas per worker.")
    return steps


def _training_stream(pairs, tokenizers, training, steps_per_epoch, initial_epoch,
                     batch_options):
    """`dataset_fn` of the epochs from `initial_epoch` on, each exactly `steps_per_epoch`
    steps long and shuffled with `epoch_seed(seed, epoch)`."""
    def dataset_fn(context):
        # Each optimizer step takes accumulate_steps batches per replica.
        batches_per_epoch = steps_per_epoch * training.accumulate_steps * (
            context.num_replicas_in_sync // context.num_input_pipelines)
        epochs = []
        # At least one epoch, so that a finished run (nothing left) still has a dataset.
        for epoch in range(initial_epoch, max(training.epochs, initial_epoch + 1)):
            epoch_batches = data_lib.make_distributed_batches_fn(
                pairs, tokenizers, shuffle_buffer=training.shuffle_buffer,
                seed=epoch_seed(training.seed, epoch), **batch_options)(context)
            epochs.append(epoch_batches.repeat().take(batches_per_epoch))
        stream = epochs[0]
        for epoch_batches in epochs[1:]:
            stream = stream.concatenate(epoch_batches)
        return group_micro_batches(stream, training.accumulate_steps).prefetch(
            tf.data.AUTOTUNE)

    return dataset_fn


def _step_stream(pairs, tokenizers, training, initial_epoch, batch_options):
    """`dataset_fn` of an endless stream of batches for a `train_steps` run: pass after pass
    over the data, each shuffled differently. Nothing is counted, so an interval may end
    anywhere in a pass; a resumed run starts a fresh pass shuffled with
    `epoch_seed(seed, initial_epoch)`."""
    def dataset_fn(context):
        batches = data_lib.make_distributed_batches_fn(
            pairs, tokenizers, shuffle_buffer=training.shuffle_buffer,
            seed=epoch_seed(training.seed, initial_epoch), **batch_options)(context)
        return group_micro_batches(batches.repeat(), training.accumulate_steps).prefetch(
            tf.data.AUTOTUNE)

    return dataset_fn


def _validation_stream(pairs, tokenizers, validation_steps, batch_options):
    """`dataset_fn` repeating the same `validation_steps` steps of unshuffled batches, so
    every epoch's evaluation sees the same data."""
    def dataset_fn(context):
        batches = validation_steps * (context.num_replicas_in_sync //
                                      context.num_input_pipelines)
        return data_lib.make_distributed_batches_fn(
            pairs, tokenizers, shuffle_buffer=0, **batch_options)(context).take(
                batches).repeat()

    return dataset_fn


def _callbacks(paths, own, chief, tokenizers, training, sources, references, initial_epoch,
               started):
    """The trainer's callbacks, in the order they must run at the end of an epoch; also
    returns the throughput, BLEU (or None) and time budget (or None) callbacks."""
    throughput = callbacks_lib.ThroughputCallback()
    callbacks = [throughput]
    bleu = None
    if training.bleu_samples:
        bleu = callbacks_lib.BleuCallback(
            tokenizers, sources[:training.bleu_samples], references[:training.bleu_samples],
            max_length=training.max_length, batch_tokens=training.bleu_batch_tokens,
            lowercase=training.lowercase,
            log_dir=os.path.join(own.logs_dir, "validation") if chief else None)
        callbacks.append(bleu)
    if training.early_stopping_patience:
        callbacks.append(callbacks_lib.ResumableEarlyStopping(
            training.early_stopping_patience, read_best(own), initial_epoch))
    if chief and training.attention_probes:
        callbacks.append(callbacks_lib.AttentionCallback(
            tokenizers, sources[:training.attention_probes],
            os.path.join(own.logs_dir, "attention"), max_length=training.max_length,
            images=training.attention_images))
    monitor, mode = ("val_bleu", "max") if bleu else ("val_loss", "min")
    best = read_best(own)
    best_value = best["value"] if best and best["monitor"] == monitor else None
    os.makedirs(own.checkpoints_dir, exist_ok=True)
    callbacks += [
        keras.callbacks.ModelCheckpoint(
            own.checkpoint("best"), monitor=monitor, mode=mode, save_best_only=True,
            save_weights_only=True, initial_value_threshold=best_value),
        callbacks_lib.BestRecordCallback(own, monitor=monitor, mode=mode, best=best_value),
        keras.callbacks.ModelCheckpoint(own.checkpoint("last"), save_weights_only=True),
    ]
    if training.keep_checkpoints:
        callbacks.append(callbacks_lib.IntervalCheckpoint(own.checkpoints_dir,
                                                          training.keep_checkpoints))
    callbacks += [
        keras.callbacks.BackupAndRestore(
            own.backup_dir, save_freq=training.backup_every_steps or "epoch",
            delete_checkpoint=False),
    ]
    if chief:
        callbacks += [
            keras.callbacks.TensorBoard(own.logs_dir, write_graph=False, update_freq="epoch"),
            callbacks_lib.GraphSummaryCallback(os.path.join(own.logs_dir, "train")),
            callbacks_lib.EmbeddingSummaryCallback(tokenizers, own.logs_dir),
        ]
    budget = None
    if training.max_minutes:
        # Last, so that the epoch it times includes every other callback's work.
        budget = callbacks_lib.TimeBudget(training.max_minutes * 60, started=started)
        callbacks.append(budget)
    return callbacks, throughput, bleu, budget


def format_summary(summary):
    """The end-of-run report printed by `tft-train`, as text."""
    def number(key, digits=4):
        value = summary.get(key)
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = [
        f"Trained {summary['epochs_run']} epoch(s) (now at epoch {summary['epoch']}, "
        f"{summary['steps_per_epoch']} steps each) on {summary['replicas']} replica(s) "
        f"with {summary['strategy']} in {summary['seconds']:.1f} s.",
        f"  train  loss {number('loss')}  accuracy {number('accuracy')}",
        f"  valid  loss {number('val_loss')}  accuracy {number('val_accuracy')}  "
        f"BLEU {number('val_bleu', 2)}",
        f"  best   BLEU {number('best_val_bleu', 2)} (epoch {summary['best_epoch']})",
        f"  speed  {summary['tokens_per_second']:.0f} target tokens/s (training steps only)",
        f"  model dir {summary['model_dir']}",
    ]
    for source, reference, translation in summary["samples"][:3]:
        lines += [f"  > {source}", f"  = {reference}", f"  < {translation}"]
    return "\n".join(lines)


def _field_type(field):
    """int/float/str/bool from a dataclass field annotation such as "int | None"."""
    name = str(field.type).split("|")[0].strip()
    return {"int": int, "float": float, "str": str, "bool": bool}[name]


def _field_help(cls):
    """Field name -> its description in the class docstring's `Args:` section."""
    helps, name = {}, None
    lines = (cls.__doc__ or "").split("Args:", 1)[-1].splitlines()
    for line in lines:
        match = re.match(r"^ {8}(\w+): (.*)$", line)
        if match:
            name = match.group(1)
            helps[name] = match.group(2)
        elif name and line.startswith(" " * 12):
            helps[name] += " " + line.strip()
        elif line.strip():
            name = None
    return {key: value.replace("%", "%%") for key, value in helps.items()}


def _add_dataclass_options(parser, cls, skip=(), choices=None, flags=None, prefix=""):
    """One --option per dataclass field (underscores become dashes unless `flags` names it)."""
    choices = choices or {}
    flags = flags or {}
    helps = _field_help(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = flags.get(field.name, "--" + field.name.replace("_", "-"))
        kind = _field_type(field)
        dest = prefix + field.name
        if kind is bool:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction,
                                default=None, help=helps.get(field.name))
        else:
            parser.add_argument(flag, dest=dest, type=kind, default=None,
                                choices=choices.get(field.name), help=helps.get(field.name))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tft-train",
        description="Train a Transformer (Attention Is All You Need) on a parallel corpus. "
                    "Everything is written under --model-dir; rerunning with the same "
                    "--model-dir resumes.")
    parser.add_argument("--model-dir", required=True,
                        help="Config, vocabularies, checkpoints and TensorBoard logs go here.")
    parser.add_argument("--preset", default="small",
                        choices=sorted(tf_transformer.PRESETS),
                        help="Model size preset (default small).")
    training = parser.add_argument_group("training (TrainingConfig fields)")
    _add_dataclass_options(training, TrainingConfig, choices={
        "strategy": STRATEGIES, "mixed_precision": tuple(MIXED_PRECISION_POLICIES)})
    model = parser.add_argument_group(
        "model overrides (TransformerConfig fields; defaults come from --preset)")
    model.add_argument("--num-layers", dest="override_num_layers", type=int, default=None,
                       help="Encoder and decoder layers (sets both).")
    _add_dataclass_options(model, tf_transformer.TransformerConfig,
                           skip=("source_vocab_size", "target_vocab_size"),
                           choices={"position_encoding": POSITION_ENCODINGS},
                           # --max-length is the training one (longest sentence kept).
                           flags={"max_length": "--model-max-length"}, prefix="override_")
    return parser


def configs_from_args(args):
    """(TrainingConfig, preset, model_overrides) from parsed arguments."""
    values = vars(args)
    training = TrainingConfig(**{
        field.name: values[field.name] for field in dataclasses.fields(TrainingConfig)
        if values.get(field.name) is not None})
    overrides = {key[len("override_"):]: value for key, value in values.items()
                 if key.startswith("override_") and value is not None}
    layers = overrides.pop("num_layers", None)
    if layers is not None:
        overrides.setdefault("num_encoder_layers", layers)
        overrides.setdefault("num_decoder_layers", layers)
    return training, args.preset, overrides


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("trainers").setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    try:
        training, preset, overrides = configs_from_args(args)
        summary = train(args.model_dir, training, preset=preset, model_overrides=overrides)
    except (ValueError, strategy_lib.NoTPUError) as error:
        print(f"tft-train: error: {error}", file=sys.stderr)
        return 2
    except tf.errors.InvalidArgumentError as error:
        # Bad input found while streaming the data (the file and line are in the message).
        print(f"tft-train: error: {data_lib.data_error_message(error)}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    print(json.dumps({key: value for key, value in summary.items()
                      if key not in ("history", "samples")}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
