import numpy as np

from tf_transformer.layers import causal_mask, merge_masks, padding_mask


def test_padding_and_causal_masks():
    np.testing.assert_array_equal(padding_mask(np.array([[5, 3, 0]])), [[True, True, False]])
    np.testing.assert_array_equal(causal_mask(3), np.tril(np.ones((3, 3), bool)))
    np.testing.assert_array_equal(causal_mask(1, 4, offset=2), [[True, True, True, False]])


def test_merge_masks_broadcasts_over_heads():
    merged = merge_masks(np.array([[True, False]]), causal_mask(2)).numpy()
    assert merged.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(merged[0, 0], [[True, False], [True, False]])
    assert merge_masks(None, None) is None
