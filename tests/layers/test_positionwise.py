import numpy as np
import tensorflow as tf

from tf_transformer.layers.positionwise import positionwise, shape_with_leading


def test_positionwise_is_the_product_at_every_position():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(2, 3, 4)).astype(np.float32)
    kernel = rng.normal(size=(4, 6)).astype(np.float32)
    bias = rng.normal(size=6).astype(np.float32)
    out = positionwise(tf.constant(inputs), kernel, bias, [2, 3]).numpy()
    assert out.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(out, (inputs @ kernel + bias).reshape(2, 3, 2, 3), atol=1e-5)
    no_bias = positionwise(tf.constant(inputs), kernel, None, [6]).numpy()
    np.testing.assert_allclose(no_bias, inputs @ kernel, atol=1e-5)


def test_shape_with_leading_static_and_run_time_length():
    assert shape_with_leading(tf.zeros([5, 1, 8]), [2, 4]) == [-1, 1, 2, 4]

    @tf.function(input_signature=[tf.TensorSpec([None, None, 8])])
    def reshaped(x):  # the length axis is only known at run time here
        return tf.reshape(x, shape_with_leading(x, [2, 4]))

    assert reshaped(tf.zeros([3, 5, 8])).shape == (3, 5, 2, 4)
