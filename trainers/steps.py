"""Train and test steps in which every target token weighs the same, wherever it was computed.

A step's loss is the sum of the per-token losses over every replica, every worker and every
micro-batch of the step, divided by the number of real target tokens in all of them:

    loss = sum over replicas r, micro-batches k, tokens t of loss(r, k, t) / N,
    N = all-reduced count of non-padding target tokens of the step.

Keras's own `train_step` instead takes each replica's token mean (the compiled loss) and
divides it by the number of replicas, so a token's weight depends on how many tokens its
replica held; its `gradient_accumulation_steps` likewise averages the per-step means. With
token-budget batches the replicas' and micro-batches' token counts differ, so neither equals
one batch holding all the tokens. Here every replica divides its own token-loss sum by the
global N (one scalar all-reduce before the forward passes); the optimizer then sums the
replicas' gradients, which gives the gradient of the token mean over the whole step.

Gradient accumulation (`accumulate_steps` K > 1): the input pipeline groups K consecutive
batches of each replica into one element (`group_micro_batches`), and one train step runs the
K forward and backward passes one after the other, summing gradients, then applies them once.
So one Keras step is one optimizer step: `optimizer.iterations`, the learning rate schedule,
`steps_per_epoch` and the progress bar all count optimizer steps. Under fp16 the gradients of
the scaled losses are summed and `LossScaleOptimizer.apply_gradients` unscales them (and skips
the step if any micro-batch overflowed).

Metrics follow the same rule: the logged "loss" is Keras's loss `Mean` fed with every token's
loss and a weight of 1 per real token, and the values each step reports are computed from the
metric variables summed over all replicas and workers, so per-step and per-epoch figures are
token means of everything seen so far, the same on one device as on many.
"""

import tensorflow as tf

import tf_transformer
from tf_transformer.layers.masks import PAD_ID


def group_micro_batches(dataset, accumulate_steps):
    """Groups `accumulate_steps` consecutive batches into one element (a ragged batch of
    batches, [K, (B), (T)]) for `TokenWeightedTransformer(accumulate_steps=K)`; K = 1 returns
    `dataset` unchanged."""
    if accumulate_steps == 1:
        return dataset
    return dataset.ragged_batch(accumulate_steps, drop_remainder=True)


def input_options(accumulate_steps):
    """`tf.distribute.InputOptions` for `distribute_datasets_from_function` of a training
    stream grouped by `group_micro_batches`: ragged groups stay on the host (prefetching them
    to the devices fails under `MultiWorkerMirroredStrategy`); None for K = 1."""
    if accumulate_steps == 1:
        return None
    return tf.distribute.InputOptions(experimental_fetch_to_device=False)


class TokenWeightedTransformer(tf_transformer.Transformer):
    """`tf_transformer.Transformer` whose `fit`/`evaluate` steps weigh every target token
    alike across replicas, workers and accumulated micro-batches (see the module docstring).

    Compile it with a `tf_transformer.MaskedSparseCategoricalCrossentropy` loss (its
    `token_losses` gives the per-token values) and metrics whose variables all sum across
    replicas (Keras metrics do, e.g. `tf_transformer.MaskedAccuracy`). The model adds no
    other losses (no `add_loss`, no regularizers). Same layers, weights and checkpoints as
    `Transformer`.

    Args:
        config: `TransformerConfig` (or its dict form).
        accumulate_steps: int, default 1. Micro-batches per optimizer step; with K > 1 each
            training element must be a group made by `group_micro_batches(dataset, K)`.
        **kwargs: passed to `Transformer`.
    """

    def __init__(self, config, accumulate_steps=1, **kwargs):
        if (not isinstance(accumulate_steps, int) or isinstance(accumulate_steps, bool)
                or accumulate_steps < 1):
            raise ValueError(f"`accumulate_steps` must be a positive integer; received "
                             f"accumulate_steps={accumulate_steps!r}.")
        super().__init__(config, **kwargs)
        self.accumulate_steps = accumulate_steps

    def get_config(self):
        return {**super().get_config(), "accumulate_steps": self.accumulate_steps}

    def _micro_batches(self, data):
        if self.accumulate_steps == 1:
            return [data]
        return [tf.nest.map_structure(lambda group, k=k: group[k].to_tensor(), data)
                for k in range(self.accumulate_steps)]

    def _token_losses(self, x, y, training):
        y_pred = self(x, training=training)  # [B, T, V]
        losses, mask = self.loss.token_losses(y, y_pred)  # [B, T]
        self._loss_tracker.update_state(tf.reshape(losses, [-1]),
                                        sample_weight=tf.reshape(mask, [-1]))
        self._compile_metrics.update_state(y, y_pred)
        return losses

    def train_step(self, data):
        micro_batches = self._micro_batches(data)
        local_tokens = tf.add_n([tf.reduce_sum(tf.cast(tf.not_equal(y, PAD_ID), tf.float32))
                                 for _, y in micro_batches])
        step_tokens = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, local_tokens)
        variables = self.trainable_variables
        gradients = None
        for x, y in micro_batches:
            if gradients is not None:
                # One micro-batch at a time: the next forward pass waits for these gradients,
                # so only one micro-batch's activations are alive at once.
                with tf.control_dependencies(gradients):
                    x = tf.nest.map_structure(tf.identity, x)
            with tf.GradientTape() as tape:
                losses = self._token_losses(x, y, training=True)  # [B, T]
                loss = tf.reduce_sum(losses) / tf.maximum(step_tokens, 1.0)
                loss = self.optimizer.scale_loss(loss)
            micro_gradients = tape.gradient(loss, variables)
            gradients = micro_gradients if gradients is None else [
                total + gradient for total, gradient in zip(gradients, micro_gradients)]
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._global_metric_results()

    def test_step(self, data):
        x, y = data
        self._token_losses(x, y, training=False)
        return self._global_metric_results()

    def _global_metric_results(self):
        """The metric results of everything every replica has seen, in every replica."""
        metrics = self.metrics
        for metric in metrics:
            for variable in metric.variables:
                if variable.aggregation != "sum":
                    raise ValueError(
                        f"Metric {metric.name!r} has a variable {variable.path!r} that does "
                        f"not sum across replicas (aggregation={variable.aggregation!r}); "
                        "TokenWeightedTransformer needs summing metrics.")
        # One all-reduce of every metric variable (a flat list: collectives across workers
        # reject empty groups, and some metrics hold no variables).
        # Read on this replica's device: reads of sync-on-read variables carry no device
        # under MultiWorkerMirroredStrategy, and its all-reduce needs one.
        with tf.device(self.trainable_variables[0].value.device):
            local = [tf.identity(tf.convert_to_tensor(variable)) for metric in metrics
                     for variable in metric.variables]
        summed = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, local)
        results, start = {}, 0
        for metric in metrics:
            end = start + len(metric.variables)
            result = metric.stateless_result(summed[start:end])
            results.update(result if isinstance(result, dict) else {metric.name: result})
            start = end
        return results
