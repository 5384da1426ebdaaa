"""Position-wise linear maps as 2-D matmuls, shared by attention and the feed-forward network.

Keras's Dense and EinsumDense run a [B, T, D] input through tensordot or einsum. On CPU,
TensorFlow's einsum kernel costs several times a matmul on a decoding step's small tensors,
and tensordot keeps the bias add (and an activation) as separate passes over the output.
Flattening the positions into one 2-D matmul gives the same product, and lets TensorFlow fuse
the bias and a ReLU into the matmul kernel.
"""

import tensorflow as tf


def positionwise(inputs, kernel, bias, output_dims):
    """`inputs` [B, T, I] times `kernel` [I, O] (+ `bias` [O]), as [B, T, *output_dims].

    Args:
        inputs: [B, T, I] tensor, I static.
        kernel: [I, O] tensor.
        bias: [O] tensor or None.
        output_dims: list of ints whose product is O.

    Returns:
        [B, T, *output_dims] tensor.
    """
    flat = tf.matmul(tf.reshape(inputs, [-1, inputs.shape[-1]]), kernel)  # [B*T, O]
    if bias is not None:
        flat = tf.nn.bias_add(flat, bias)
    return tf.reshape(flat, shape_with_leading(inputs, output_dims))  # [B, T, *output_dims]


def shape_with_leading(x, dims):
    """[B, T, *dims] for reshaping into, B and T those of `x` [B, T, ...].

    A constant when T is static (a decoding step's 1): no shape ops to run at every step.
    """
    if x.shape[1] is not None:
        return [-1, x.shape[1], *dims]
    return tf.concat([tf.shape(x)[:2], dims], 0)
