"""Loss, metric and learning-rate schedule."""

import keras
import numpy as np
import pytest

import tf_transformer as tft


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_label_smoothed_loss_ignores_padding():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 7)).astype(np.float32)
    labels = np.array([[3, 5, 0, 0], [1, 2, 6, 0]])
    eps = 0.1
    loss = tft.MaskedSparseCategoricalCrossentropy(label_smoothing=eps)(labels, logits)
    log_probs = _log_softmax(logits.astype(np.float64))
    target = np.full((2, 4, 7), eps / 7) + (1 - eps) * np.eye(7)[labels]
    per_token = -(target * log_probs).sum(-1)
    mask = labels != 0
    assert float(loss) == pytest.approx(per_token[mask].mean(), rel=1e-5)
    # Same as Keras's own smoothed cross-entropy on the non-padding tokens.
    reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=eps)(
        np.eye(7)[labels[mask]], logits[mask])
    assert float(loss) == pytest.approx(float(reference), rel=1e-5)


def test_masked_accuracy_counts_only_real_tokens():
    metric = tft.MaskedAccuracy()
    logits = np.eye(5)[np.array([[1, 2, 3, 4]])] * 5.0
    metric.update_state(np.array([[1, 2, 0, 0]]), logits)  # 2 of 2 right
    metric.update_state(np.array([[1, 3, 3, 1]]), logits)  # 2 of 4 right
    assert float(metric.result()) == pytest.approx(4 / 6)


def test_schedule_matches_the_paper():
    schedule = tft.WarmupInverseSqrtSchedule(512, warmup_steps=4000)
    for step in (1, 100, 4000, 10000):
        expected = 512 ** -0.5 * min(step ** -0.5, step * 4000 ** -1.5)
        assert float(schedule(step - 1)) == pytest.approx(expected, rel=1e-5)
    peak = float(schedule(3999))
    assert float(schedule(2000)) < peak and float(schedule(8000)) < peak


def test_pieces_serialize():
    for obj in (tft.MaskedSparseCategoricalCrossentropy(0.2), tft.MaskedAccuracy(),
                tft.WarmupInverseSqrtSchedule(256, 100, 2.0)):
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
        assert type(clone) is type(obj)
        assert clone.get_config() == obj.get_config()
