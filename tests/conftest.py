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
    """A tiny model trained for a few epochs on 3,000 bundled English-Spanish pairs."""
    from trainers.config import TrainingConfig
    from trainers.train import train

    root = tmp_path_factory.mktemp("trained")
    training = TrainingConfig(
        data_dir=str(root / "tensorflow_datasets"), max_train_examples=3000, vocab_size=600,
        batch_tokens=1024, max_length=32, epochs=3, warmup_steps=60, learning_rate_scale=2.0,
        shuffle_buffer=3000, validation_steps=2, bleu_samples=16, attention_probes=1,
        attention_images=False, strategy="default", verbose=0)
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
