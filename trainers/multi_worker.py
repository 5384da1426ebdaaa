"""The Transformer as Keras `fit`/`evaluate` can run it under `MultiWorkerMirroredStrategy`.

Keras 3 (3.15 at the time of writing) reduces what a train or test step returns, in every
worker, with `strategy.reduce("MEAN", value, axis=0)` when the strategy spans several workers
(`keras/src/backend/tensorflow/trainer.py`, `reduce_per_replica`). A step returns its metric
results, which are scalars, and a scalar has no axis 0, so the first step fails with "Invalid
reduction dimension 0 for input with 0 dimensions" (tensorflow/tensorflow#72388). Giving every
result a leading axis of length 1 makes that reduction the mean over replicas, the same value
Keras computes on one machine (`tf.reduce_mean` of the replicas' results).
"""

import tensorflow as tf

from trainers.steps import TokenWeightedTransformer


def _with_replica_axis(logs):
    """`logs` with every scalar reshaped to [1]; other values unchanged."""
    return {name: tf.reshape(value, [1]) if value.shape.rank == 0 else value
            for name, value in logs.items()}


class MultiWorkerTransformer(TokenWeightedTransformer):
    """`TokenWeightedTransformer` whose train and test steps return results of shape [1].

    Same layers, weights and checkpoints as `tf_transformer.Transformer` (weights saved by one
    load into the other); use it only to `fit`/`evaluate` under `MultiWorkerMirroredStrategy`.
    """

    def train_step(self, data):
        return _with_replica_axis(super().train_step(data))

    def test_step(self, data):
        return _with_replica_axis(super().test_step(data))
