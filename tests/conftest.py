import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def trained_copy_model():
    """A tiny Transformer trained on the copy task, and its held-out evaluation."""
    from tests.copy_task import train_copy_model
    return train_copy_model(epochs=20)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory):
    """A tiny model trained for 500 steps on the 20,000 shortest English-Spanish training pairs.

    A narrow domain (pairs of at most 16 tokens, mostly 1-4 words), many batches of 2,048
    tokens, a low peak learning rate (about 0.004) and no label smoothing: at this budget it
    translates short sentences (held-out BLEU in tests/test_trained_fixture.py).
    """
    from trainers.config import TrainingConfig
    from trainers.train import train

    root = tmp_path_factory.mktemp("trained")
    training = TrainingConfig(
        data_dir=str(root / "tensorflow_datasets"), max_train_examples=20_000, vocab_size=600,
        batch_tokens=2048, max_length=16, train_steps=500, steps_per_epoch=250,
        warmup_steps=100, learning_rate_scale=0.3, label_smoothing=0.0, shuffle_buffer=20_000,
        validation_steps=2, bleu_samples=16, attention_probes=1, attention_images=False,
        strategy="default", verbose=0)
    train(str(root / "model"), training, preset="tiny")
    return str(root / "model")


@pytest.fixture(scope="session")
def exported_translator(trained_model_dir, tmp_path_factory):
    """(export_dir, model, tokenizers): the trained tiny model exported as version 1."""
    from serving.export import export
    from tf_transformer.model_dir import load_model

    model, tokenizers = load_model(trained_model_dir)
    base = tmp_path_factory.mktemp("exports") / "translator"
    return export(model, tokenizers, str(base / "1")), model, tokenizers
