"""tf.data pipeline from (source, target) text to padded id batches for the Transformer.

Shape letters: B batch, S source length, T target length.

Each batch is `((source_ids [B, S], target_input_ids [B, T]), target_output_ids [B, T])`,
int32, padded with PAD_ID=0, where target_input = [START] + ids and target_output = ids + [END];
the source carries no START/END.

Two ways to form batches:
- token budget (`max_tokens`, the default way to train): pairs are bucketed by length and each
  bucket's batch size is chosen so that batch size x longest sentence of the bucket stays
  within `max_tokens` on each side, as in Tensor2Tensor and fairseq. Batches of short sentences
  are large and batches of long sentences small, with little padding.
- fixed size (`batch_size`): a fixed number of pairs padded to the longest one, for comparison
  and for evaluation.

Under tf.distribute, `max_tokens` and `batch_size` of `make_batches` are per replica: give
`make_distributed_batches_fn(...)` to `strategy.distribute_datasets_from_function`.
"""

import tensorflow as tf

from tf_transformer.text.tokenizer import END_ID, PAD_ID, START_ID

_TOO_LONG = ("drop", "truncate")
# Sentences are tokenized this many at a time (vectorized), then unbatched for bucketing.
_TOKENIZE_BATCH = 256


def bucket_boundaries(max_length, min_length=8, step=1.1):
    """Geometric bucket boundaries (Tensor2Tensor's rule): 8, 9, ..., each ~10% above the last.

    Args:
        max_length: int, the longest sequence; boundaries stay at or below it.
        min_length: int, default 8. First boundary.
        step: float, default 1.1. Growth factor between boundaries.

    Returns:
        list of int, strictly increasing. Bucket i holds lengths in
        [boundaries[i-1], boundaries[i]); the last bucket holds lengths >= boundaries[-1].
    """
    if step <= 1.0:
        raise ValueError(f"step must be > 1, got {step!r}")
    boundaries = []
    length = min_length
    while length <= max_length:
        boundaries.append(length)
        length = max(length + 1, int(length * step))
    return boundaries


def bucket_batch_sizes(boundaries, max_length, max_tokens):
    """Batch size per bucket so that batch size x longest length <= max_tokens.

    Args:
        boundaries: list of int from `bucket_boundaries`.
        max_length: int, longest length (upper end of the last bucket).
        max_tokens: int, token budget per batch and side.

    Returns:
        list of int of length len(boundaries) + 1.
    """
    if max_tokens < max_length:
        raise ValueError(
            f"max_tokens={max_tokens} is smaller than max_length={max_length}: a sentence of "
            "the maximum length would not fit in a batch."
        )
    longest = [boundary - 1 for boundary in boundaries] + [max_length]
    return [max(1, max_tokens // length) for length in longest]


def _tokenize_pairs(dataset, tokenizers):
    """(source text, target text) -> (source ids [(S)], target ids [(T)]), tokenized in batches."""
    def tokenize(sources, targets):
        return tokenizers.source.tokenize(sources), tokenizers.target.tokenize(targets)

    return (
        dataset.batch(_TOKENIZE_BATCH)
        .map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
    )


def _fit_length(dataset, max_length, too_long):
    """Drops empty pairs, then drops or truncates pairs longer than max_length."""
    def non_empty(source, target):
        return tf.logical_and(tf.size(source) > 0, tf.size(target) > 0)

    dataset = dataset.filter(non_empty)
    if too_long == "drop":
        # The target gains one token (START or END), the source none.
        return dataset.filter(
            lambda source, target: tf.logical_and(
                tf.size(source) <= max_length, tf.size(target) < max_length
            )
        )
    return dataset.map(
        lambda source, target: (source[:max_length], target[:max_length - 1]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _add_start_end(source, target):
    start = tf.constant([START_ID], tf.int32)
    end = tf.constant([END_ID], tf.int32)
    return source, tf.concat([start, target], 0), tf.concat([target, end], 0)


def _to_model_inputs(source, target_input, target_output):
    return (source, target_input), target_output


def make_batches(
    dataset,
    tokenizers,
    max_length=128,
    max_tokens=None,
    batch_size=None,
    too_long="drop",
    shuffle_buffer=20_000,
    seed=None,
    boundaries=None,
    cache=False,
    drop_remainder=False,
):
    """Turns (source, target) text pairs into padded id batches for training.

    Tokenization runs in the graph. Exactly one of `max_tokens` (token-budget bucketing) and
    `batch_size` (fixed-size padded batches) must be given. With a `seed`, the sequence of
    batches is the same on every run of a fresh pipeline (each epoch shuffles differently).

    Args:
        dataset: `tf.data.Dataset` of (source, target) scalar tf.string.
        tokenizers: `tf_transformer.text.TokenizerPair` (anything with `.source` and
            `.target` `SubwordTokenizer`s).
        max_length: int, default 128. Longest source and longest target sequence (target
            counted with its START or END token).
        max_tokens: int, default None. Token budget per batch: batch size x padded length
            stays <= max_tokens for the source and for the target. Per replica under
            tf.distribute.
        batch_size: int, default None. Fixed number of pairs per batch (per replica), padded
            to the longest pair of the batch.
        too_long: str, default "drop". "drop" pairs longer than max_length, or "truncate" them.
        shuffle_buffer: int, default 20000. Shuffle buffer in pairs; None or 0 keeps the order.
        seed: int, default None. Shuffle seed; fixing it makes the pipeline deterministic.
        boundaries: list of int, default None (`bucket_boundaries(max_length)`). Bucket
            boundaries for `max_tokens` batching.
        cache: bool, default False. Keep the tokenized pairs in memory after the first epoch.
        drop_remainder: bool, default False. Drop incomplete batches (per bucket).

    Returns:
        `tf.data.Dataset` of `((source [B, S], target_input [B, T]), target_output [B, T])`
        int32, padded with PAD_ID.
    """
    if (max_tokens is None) == (batch_size is None):
        raise ValueError(
            f"Give exactly one of max_tokens (got {max_tokens!r}) and batch_size "
            f"(got {batch_size!r})."
        )
    if too_long not in _TOO_LONG:
        raise ValueError(f"too_long must be one of {_TOO_LONG}, got {too_long!r}")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")

    pairs = _fit_length(_tokenize_pairs(dataset, tokenizers), max_length, too_long)
    if cache:
        pairs = pairs.cache()
    if shuffle_buffer:
        pairs = pairs.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    examples = pairs.map(_add_start_end, num_parallel_calls=tf.data.AUTOTUNE)

    padded_shapes = ([None], [None], [None])
    if batch_size is not None:
        batches = examples.padded_batch(
            batch_size, padded_shapes=padded_shapes, padding_values=PAD_ID,
            drop_remainder=drop_remainder,
        )
    else:
        if boundaries is None:
            boundaries = bucket_boundaries(max_length)
        batches = examples.bucket_by_sequence_length(
            element_length_func=lambda source, target_input, target_output: tf.maximum(
                tf.size(source), tf.size(target_input)
            ),
            bucket_boundaries=boundaries,
            bucket_batch_sizes=bucket_batch_sizes(boundaries, max_length, max_tokens),
            padded_shapes=padded_shapes,
            padding_values=(PAD_ID, PAD_ID, PAD_ID),
            drop_remainder=drop_remainder,
        )
    return batches.map(_to_model_inputs).prefetch(tf.data.AUTOTUNE)


def make_distributed_batches_fn(
    dataset, tokenizers, max_tokens=None, global_batch_size=None, **options
):
    """Returns a `dataset_fn(input_context)` for `strategy.distribute_datasets_from_function`.

    Each input pipeline reads its own shard of `dataset` and produces per-replica batches:
    with `max_tokens` every replica gets batches of up to `max_tokens` tokens per side (the
    global batch is `max_tokens` x the number of replicas); with `global_batch_size` each
    replica gets `global_batch_size / num_replicas_in_sync` pairs.

    Args:
        dataset: `tf.data.Dataset` of (source, target) scalar tf.string.
        tokenizers: `TokenizerPair`.
        max_tokens: int, default None. Token budget per batch and replica.
        global_batch_size: int, default None. Fixed batch size summed over replicas.
        **options: further arguments of `make_batches` (max_length, too_long, seed, ...).

    Returns:
        callable taking a `tf.distribute.InputContext` and returning a `tf.data.Dataset`.
    """
    if (max_tokens is None) == (global_batch_size is None):
        raise ValueError(
            f"Give exactly one of max_tokens (got {max_tokens!r}) and global_batch_size "
            f"(got {global_batch_size!r})."
        )

    def dataset_fn(input_context):
        shard = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        batch_size = None
        if global_batch_size is not None:
            batch_size = input_context.get_per_replica_batch_size(global_batch_size)
        return make_batches(
            shard, tokenizers, max_tokens=max_tokens, batch_size=batch_size, **options
        )

    return dataset_fn


def distribute_batches(strategy, dataset, tokenizers, **options):
    """Distributes `make_batches` over the replicas of a strategy the caller created.

    Args:
        strategy: a `tf.distribute.Strategy`.
        dataset: `tf.data.Dataset` of (source, target) scalar tf.string.
        tokenizers: `TokenizerPair`.
        **options: arguments of `make_distributed_batches_fn` (max_tokens per replica or
            global_batch_size, max_length, seed, ...).

    Returns:
        `tf.distribute.DistributedDataset` of per-replica batches.
    """
    return strategy.distribute_datasets_from_function(
        make_distributed_batches_fn(dataset, tokenizers, **options)
    )
