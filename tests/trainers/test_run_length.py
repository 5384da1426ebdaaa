"""How long a run is: --train-steps without counting the data, --epochs counted once."""

import json
import os

import pytest
import tensorflow as tf

from tests.trainers.helpers import synthetic_training
from tests.trainers.recorder import Recorder
from trainers import model_dir as model_dir_lib
from trainers import train as train_module
from trainers.train import train

DEFAULT = tf.distribute.get_strategy()


@pytest.fixture
def epoch_counts(monkeypatch):
    """Records every counting pass over the training data (and still counts)."""
    calls = []
    count = train_module._count_epoch_steps

    def spy(*args, **kwargs):
        calls.append(count(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(train_module, "_count_epoch_steps", spy)
    return calls


def test_train_steps_run_counts_nothing_and_stops_at_exactly_n_steps(corpus_dir, tmp_path,
                                                                    epoch_counts):
    recorder = Recorder()
    training = synthetic_training(corpus_dir, train_steps=7, steps_per_epoch=3,
                                  bleu_samples=0, epochs=1)
    summary = train(str(tmp_path / "run"), training, preset="tiny", strategy=DEFAULT,
                    extra_callbacks=[recorder])
    assert epoch_counts == []
    # Intervals of 3, 3 and 1 steps, each evaluated and checkpointed (`epochs` is ignored).
    assert recorder.epochs == [0, 1, 2]
    assert [len(losses) for losses in recorder.batch_losses] == [3, 3, 1]
    assert recorder.iterations_at_end == 7
    assert summary["epochs_run"] == 3 and len(summary["history"]["val_loss"]) == 3
    assert "epoch" not in _step_counts(tmp_path / "run")

    # Without --steps-per-epoch the interval is the whole (short) run.
    assert train_module._run_length(training.replace(steps_per_epoch=None), None, True, {},
                                    None) == (1, 7)
    assert train_module._run_length(training.replace(train_steps=2500, steps_per_epoch=None),
                                    None, True, {}, None) == (3, 1000)

    # Asking for fewer steps than the model directory has done is an error.
    with pytest.raises(ValueError, match=r"already run 3 epochs of 3 steps.*--train-steps 4"):
        train(str(tmp_path / "run"), training.replace(train_steps=4), preset="tiny",
              strategy=DEFAULT)


def test_epochs_count_once_store_the_count_and_a_resume_reads_it(corpus_dir, tmp_path,
                                                                epoch_counts):
    model_dir = str(tmp_path / "run")
    training = synthetic_training(corpus_dir, epochs=1, steps_per_epoch=None, bleu_samples=0)
    first = train(model_dir, training, preset="tiny", strategy=DEFAULT)
    assert len(epoch_counts) == 1
    steps = epoch_counts[0]
    # 384 pairs of 5 source and 6 target tokens, at most 70 // 6 = 11 pairs per batch.
    assert 384 // 11 <= steps <= 384 // 6
    assert first["steps_per_epoch"] == steps
    assert _step_counts(model_dir)["epoch"]["steps"] == steps

    recorder = Recorder()
    second = train(model_dir, training.replace(epochs=2), preset="tiny", strategy=DEFAULT,
                   extra_callbacks=[recorder])
    assert len(epoch_counts) == 1  # the resume did not count again
    assert second["steps_per_epoch"] == steps and recorder.epochs == [1]
    assert recorder.iterations_at_end == 2 * steps

    # Other batching makes another epoch: the stored count is not reused.
    settings = {"batch_tokens": 70}
    model_dir_lib.write_step_count(model_dir, "epoch", settings, 5)
    assert model_dir_lib.read_step_count(model_dir, "epoch", settings) == 5
    assert model_dir_lib.read_step_count(model_dir, "epoch", {"batch_tokens": 140}) is None


def _step_counts(model_dir):
    path = os.path.join(model_dir, model_dir_lib.STEP_COUNTS_FILENAME)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)
