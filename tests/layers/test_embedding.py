import math

import numpy as np
import pytest

from tests.layers.harness import check_layer
from tf_transformer.layers import TokenEmbedding


def test_scaled_by_sqrt_width_and_tied_logits():
    layer = TokenEmbedding(10, 16)
    ids = np.array([[1, 2, 0], [9, 9, 3]])
    out = layer(ids).numpy()
    table = layer.embeddings.numpy()
    np.testing.assert_allclose(out, table[ids] * math.sqrt(16), rtol=1e-6)
    hidden = np.random.default_rng(0).normal(size=(2, 3, 16)).astype(np.float32)
    np.testing.assert_allclose(layer.logits(hidden), hidden @ table.T, rtol=1e-5, atol=1e-5)


def test_harness(tmp_path):
    ids = np.array([[1, 2, 0], [9, 9, 3]], np.int32)
    check_layer(lambda **kw: TokenEmbedding(10, 16, **kw), [ids], lambda layer, x: layer(x[0]),
                tmp_path)


def test_invalid_vocab_size():
    with pytest.raises(ValueError, match="vocab_size=0"):
        TokenEmbedding(0, 16)
