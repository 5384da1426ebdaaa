"""train(): resuming after an interruption, the best checkpoint, mixed precision."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.trainers.helpers import read_weights, synthetic_training
from tests.trainers.recorder import Interrupt, InterruptAfterEpoch, Recorder
from tf_transformer import checkpoints
from tf_transformer.model_dir import read_best
from trainers import callbacks as callbacks_lib
from trainers import model_dir as model_dir_lib
from trainers.train import train

DEFAULT = tf.distribute.get_strategy()


def test_interrupted_run_resumes_from_next_epoch_and_matches_uninterrupted(corpus_dir, tmp_path):
    training = synthetic_training(corpus_dir, epochs=3, steps_per_epoch=4)

    reference = Recorder()
    reference_dir = str(tmp_path / "reference")
    reference_summary = train(reference_dir, training, preset="tiny", strategy=DEFAULT,
                              extra_callbacks=[reference])
    # The best checkpoint is the first epoch with the highest BLEU (strict improvements).
    bleu = reference_summary["history"]["val_bleu"]
    best = read_best(reference_dir)
    assert best["monitor"] == "val_bleu" and best["epoch"] == int(np.argmax(bleu)) + 1
    assert best["value"] == pytest.approx(max(bleu))

    interrupted_dir = str(tmp_path / "interrupted")
    first = Recorder()
    with pytest.raises(Interrupt):
        train(interrupted_dir, training, preset="tiny", strategy=DEFAULT,
              extra_callbacks=[first, InterruptAfterEpoch(0)])
    assert first.epochs == [0]
    assert model_dir_lib.resume_epoch(interrupted_dir) == 1
    tokenizer_model = os.path.join(interrupted_dir, "tokenizer", "shared", "sentencepiece.model")
    vocabulary_written = os.path.getmtime(tokenizer_model)

    second = Recorder()
    summary = train(interrupted_dir, training, preset="tiny", strategy=DEFAULT,
                    extra_callbacks=[second])

    # Epoch 0 is not repeated, no step is lost, the vocabulary is reused.
    assert second.epochs == [1, 2]
    assert summary["epochs_run"] == 2 and summary["epoch"] == 3
    assert second.iterations_at_begin == 4
    assert second.iterations_at_end == reference.iterations_at_end == 12
    assert os.path.getmtime(tokenizer_model) == vocabulary_written
    # Same data per epoch + restored weights and optimizer state = the uninterrupted run.
    np.testing.assert_allclose(second.batch_losses, reference.batch_losses[1:], rtol=1e-5)
    resumed = read_weights(os.path.join(interrupted_dir, "checkpoints", "last.weights.h5"))
    uninterrupted = read_weights(str(tmp_path / "reference" / "checkpoints" / "last.weights.h5"))
    assert resumed.keys() == uninterrupted.keys() and resumed
    for name, value in uninterrupted.items():
        np.testing.assert_allclose(resumed[name], value, atol=1e-5, err_msg=name)

    # Starting the finished run again trains nothing and reports the restored model.
    again = train(interrupted_dir, training, preset="tiny", strategy=DEFAULT)
    assert again["epochs_run"] == 0 and again["epoch"] == 3
    assert again["val_loss"] == pytest.approx(summary["val_loss"], rel=1e-4)


@pytest.mark.parametrize("precision,compute_dtype,optimizer,accumulate_steps", [
    ("fp16", "float16", "LossScaleOptimizer", 1),
    ("fp16", "float16", "LossScaleOptimizer", 3),
    ("bf16", "bfloat16", "Adam", 2),
])
def test_mixed_precision_trains(corpus_dir, tmp_path, precision, compute_dtype, optimizer,
                                accumulate_steps):
    recorder = Recorder()
    summary = train(str(tmp_path / precision),
                    synthetic_training(corpus_dir, mixed_precision=precision, epochs=2,
                                       steps_per_epoch=10, warmup_steps=10, bleu_samples=0,
                                       accumulate_steps=accumulate_steps),
                    preset="tiny", strategy=DEFAULT, extra_callbacks=[recorder])
    # Optimizer steps, not micro-batches (no step was skipped for overflowing).
    assert recorder.iterations_at_end == summary["optimizer_steps"] == 20
    assert recorder.compute_dtype == compute_dtype
    # Not only the model: every sublayer computes in the policy's dtype.
    assert len(recorder.layer_compute_dtypes) > 20
    assert set(recorder.layer_compute_dtypes.values()) == {compute_dtype}, \
        recorder.layer_compute_dtypes
    # Keras' compile wraps the optimizer in dynamic loss scaling for float16 only.
    assert recorder.optimizer_class == optimizer
    first_step_loss = recorder.batch_losses[0][0]
    assert np.isfinite(summary["loss"])
    assert summary["loss"] < 0.8 * first_step_loss
    # Weights stay float32 and finite.
    with open(os.path.join(tmp_path, precision, "config.json")) as f:
        assert json.load(f)["training"]["mixed_precision"] == precision
    for value in read_weights(str(tmp_path / precision / "checkpoints" / "last.weights.h5")
                              ).values():
        assert value.dtype == np.float32 and np.all(np.isfinite(value))


def test_accumulating_4_batches_equals_one_batch_of_4x_the_tokens(corpus_dir, tmp_path):
    # Every synthetic pair has 6 target tokens: 4 consecutive batches of 10 pairs (70 tokens)
    # hold the same 40 pairs as one batch of 280 tokens.
    runs = {}
    for name, batch_tokens, accumulate_steps in (("one", 280, 1), ("accumulated", 70, 4)):
        recorder = Recorder()
        summary = train(str(tmp_path / name),
                        synthetic_training(corpus_dir, batch_tokens=batch_tokens,
                                           accumulate_steps=accumulate_steps, bleu_samples=0),
                        preset="tiny", strategy=DEFAULT, extra_callbacks=[recorder])
        runs[name] = (recorder, summary)
    (one, one_summary), (accumulated, summary) = runs["one"], runs["accumulated"]
    # The schedule and the step counts follow optimizer steps: 2 epochs of 6.
    assert accumulated.iterations_at_end == one.iterations_at_end == 12
    assert summary["train_tokens"] == one_summary["train_tokens"] == 2 * 6 * 40 * 6
    np.testing.assert_allclose(accumulated.batch_losses, one.batch_losses, rtol=1e-5)
    assert one.batch_losses[1][-1] < one.batch_losses[0][0]
    weights = [read_weights(str(tmp_path / name / "checkpoints" / "last.weights.h5"))
               for name in ("one", "accumulated")]
    assert weights[0].keys() == weights[1].keys() and weights[0]
    for name, value in weights[0].items():
        np.testing.assert_allclose(weights[1][name], value, atol=1e-5, err_msg=name)


def test_early_stopping_stops_after_patience_epochs_without_better_bleu(
        corpus_dir, tmp_path, monkeypatch):
    scores = iter([1.0, 3.0, 2.0, 2.5, 2.9, 5.0])

    def scripted_bleu(self):
        self.last_translations = [""] * len(self.sources)
        return next(scores)

    monkeypatch.setattr(callbacks_lib.BleuCallback, "bleu", scripted_bleu)
    summary = train(str(tmp_path / "run"),
                    synthetic_training(corpus_dir, epochs=6, steps_per_epoch=2,
                                       early_stopping_patience=2),
                    preset="tiny", strategy=DEFAULT)
    # Best at epoch 2 (3.0); epochs 3 and 4 do not beat it: stop after epoch 4.
    assert summary["epochs_run"] == 4 and summary["stopped"] == "early stopping"
    assert summary["best_epoch"] == 2 and summary["best_val_bleu"] == 3.0
    assert summary["history"]["val_bleu"] == [1.0, 3.0, 2.0, 2.5]


def test_time_budget_ends_with_a_resumable_checkpoint(corpus_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    training = synthetic_training(corpus_dir, epochs=3, steps_per_epoch=4, bleu_samples=0)
    first = train(model_dir, training.replace(max_minutes=0.05), preset="tiny",
                  strategy=DEFAULT)
    # 3 seconds: start-up alone takes longer, so exactly one epoch runs (at least one does).
    assert first["epochs_run"] == 1 and first["stopped"] == "time budget"
    assert model_dir_lib.resume_epoch(model_dir) == 1
    assert [step for step, _ in checkpoints.list_interval_checkpoints(
        os.path.join(model_dir, "checkpoints"))] == [4]
    recorder = Recorder()
    second = train(model_dir, training, preset="tiny", strategy=DEFAULT,
                   extra_callbacks=[recorder])
    assert recorder.epochs == [1, 2] and second["stopped"] is None
    assert recorder.iterations_at_begin == 4 and recorder.iterations_at_end == 12
    assert [step for step, _ in checkpoints.list_interval_checkpoints(
        os.path.join(model_dir, "checkpoints"))] == [4, 8, 12]


def _numbered_dir(directory, count):
    """train/validation/test .en/.es files whose line i says "s i" / "t i"."""
    os.makedirs(directory, exist_ok=True)
    for split in ("train", "validation", "test"):
        for lang, prefix in (("en", "s"), ("es", "t")):
            with open(os.path.join(directory, f"{split}.{lang}"), "w", encoding="utf-8") as f:
                f.write("".join(f"{prefix} {i}\n" for i in range(count)))
    return directory


@pytest.mark.parametrize("max_train_examples", [None, 100])
def test_vocabulary_sample_comes_from_the_pairs_the_run_trains_on(tmp_path, max_train_examples):
    from tf_transformer import data as data_lib
    from trainers.config import TrainingConfig
    from trainers.train import _vocabulary_pairs

    directory = _numbered_dir(str(tmp_path / "corpus"), 4_000)
    training = TrainingConfig(data=f"dir:{directory}", source_lang="en", target_lang="es",
                              vocab_sample_size=400, max_train_examples=max_train_examples)
    splits = data_lib.load_splits(training.data, "en", "es")
    train_pairs = splits.train.take(max_train_examples) if max_train_examples else splits.train
    pairs = [(str(source, "utf-8") if isinstance(source, bytes) else source,
              str(target, "utf-8") if isinstance(target, bytes) else target)
             for source, target in _vocabulary_pairs(training, splits, train_pairs)]
    numbers = [int(source.split()[1]) for source, _ in pairs]
    assert all(target == f"t {i}" for (_, target), i in zip(pairs, numbers))
    if max_train_examples:  # the first 100 pairs are all the run trains on
        assert sorted(numbers) == list(range(100))
    else:  # 400 distinct pairs from the whole file, its second half included
        assert len(set(numbers)) == 400 and max(numbers) >= 3_000
