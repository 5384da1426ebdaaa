"""Interval checkpoints: the trainer keeps the last N, `tft-export --average-last N` exports
their average (tf_transformer/checkpoints.py)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from serving.export import main as export_main
from tests.trainers.conftest import write_corpus
from tests.trainers.helpers import read_weights, synthetic_training
from tf_transformer import checkpoints
from tf_transformer.model_dir import load_model
from tf_transformer.translator import Translator
from trainers.train import train

SENTENCES = ["apple river stone cloud green", "night plant sound table water"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    corpus = write_corpus(str(tmp_path_factory.mktemp("corpus")))
    directory = str(tmp_path_factory.mktemp("model") / "run")
    train(directory, synthetic_training(corpus, epochs=3, steps_per_epoch=3, keep_checkpoints=2,
                                        bleu_samples=0),
          preset="tiny", strategy=tf.distribute.get_strategy())
    return directory


def test_the_trainer_keeps_the_last_n_interval_checkpoints(model_dir):
    found = checkpoints.list_interval_checkpoints(f"{model_dir}/checkpoints")
    assert [step for step, _ in found] == [6, 9]


def test_averaging_more_checkpoints_than_exist_says_how_many_there_are(model_dir, capsys):
    with pytest.raises(ValueError, match=r"holds 2 interval checkpoint\(s\) \(steps: 6, 9\)"):
        checkpoints.last_interval_checkpoints(f"{model_dir}/checkpoints", 3)
    assert export_main(["--model-dir", model_dir, "--export-dir", "/nonexistent/x/1",
                        "--average-last", "3"]) == 2
    assert "Cannot average the last 3 checkpoints" in capsys.readouterr().err


def test_averaged_export_equals_the_hand_averaged_checkpoint(model_dir, tmp_path):
    paths = checkpoints.last_interval_checkpoints(f"{model_dir}/checkpoints", 2)
    files = [read_weights(path) for path in paths]
    hand = {name: np.mean([weights[name] for weights in files], axis=0) for name in files[0]}
    # The two checkpoints differ, so the average is neither of them.
    assert max(np.max(np.abs(files[0][name] - files[1][name])) for name in hand) > 1e-4

    model, tokenizers = load_model(model_dir, checkpoint=paths[-1])
    checkpoints.average_checkpoints(model, paths)
    model.save_weights(str(tmp_path / "average.weights.h5"))
    averaged = read_weights(str(tmp_path / "average.weights.h5"))
    assert averaged.keys() == hand.keys()
    for name, value in hand.items():
        np.testing.assert_allclose(averaged[name], value, rtol=1e-6, atol=1e-7, err_msg=name)

    export_dir = str(tmp_path / "exports" / "model" / "1")
    assert export_main(["--model-dir", model_dir, "--export-dir", export_dir,
                        "--average-last", "2"]) == 0
    loaded = tf.saved_model.load(export_dir)
    # The SavedModel's variables, as stored in its variables/ checkpoint.
    reader = tf.train.load_checkpoint(os.path.join(export_dir, "variables", "variables"))
    exported = [reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
                if "OBJECT_GRAPH" not in key]
    for name, value in hand.items():
        assert any(other.shape == value.shape and np.allclose(other, value, rtol=1e-6,
                                                              atol=1e-7)
                   for other in exported), name
    # The export translates as the in-process averaged model does.
    text = tf.constant(SENTENCES)
    translator = Translator(model, tokenizers)
    expected = translator.translate(text)["translation"].numpy()
    answer = loaded.signatures["serving_default"](text=text)["translation"].numpy()
    assert list(answer) == list(expected), (answer, expected)
