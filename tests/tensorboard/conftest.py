"""Fixtures shared by the TensorBoard tests."""

import pytest

from tests.tensorboard.attention_data import RUN, write_run


@pytest.fixture(scope="session")
def attention_logdir(tmp_path_factory):
    """A logdir with one run `train` holding both probes at both steps, and its arrays."""
    logdir = tmp_path_factory.mktemp("attention_logdir")
    written = write_run(logdir / RUN)
    return logdir, written
