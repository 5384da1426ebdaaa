import numpy as np
import pytest

from tests.layers.harness import check_layer
from tf_transformer.layers import FeedForward


def test_is_relu_between_two_linear_maps(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 3, 8)).astype(np.float32)
    layer = FeedForward(32)
    out = layer(x).numpy()
    w1, b1 = layer.inner.kernel.numpy(), layer.inner.bias.numpy()
    w2, b2 = layer.outer.kernel.numpy(), layer.outer.bias.numpy()
    np.testing.assert_allclose(out, np.maximum(x @ w1 + b1, 0) @ w2 + b2, atol=1e-5)


def test_harness(tmp_path):
    x = np.random.default_rng(1).normal(size=(2, 3, 8)).astype(np.float32)
    check_layer(lambda **kw: FeedForward(32, dropout=0.1, **kw), [x],
                lambda layer, inputs: layer(inputs[0]), tmp_path)


def test_invalid_inner_dim():
    with pytest.raises(ValueError, match="inner_dim=0"):
        FeedForward(0)
