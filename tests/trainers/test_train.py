"""train(): resuming after an interruption, the best checkpoint, mixed precision."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.trainers.helpers import read_weights, synthetic_training
from tests.trainers.recorder import Interrupt, InterruptAfterEpoch, Recorder
from tf_transformer.model_dir import read_best
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


@pytest.mark.parametrize("precision,compute_dtype,optimizer", [
    ("fp16", "float16", "LossScaleOptimizer"),
    ("bf16", "bfloat16", "Adam"),
])
def test_mixed_precision_trains(corpus_dir, tmp_path, precision, compute_dtype, optimizer):
    recorder = Recorder()
    summary = train(str(tmp_path / precision),
                    synthetic_training(corpus_dir, mixed_precision=precision, epochs=2,
                                       steps_per_epoch=10, warmup_steps=10, bleu_samples=0),
                    preset="tiny", strategy=DEFAULT, extra_callbacks=[recorder])
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
