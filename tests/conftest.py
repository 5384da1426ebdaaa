import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def trained_copy_model():
    """A tiny Transformer trained on the copy task, and its held-out evaluation."""
    from tests.copy_task import train_copy_model
    return train_copy_model(epochs=20)
