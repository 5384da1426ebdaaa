"""Greedy decoding, sampling and beam search on the model's key/value cache.

Everything runs as TensorFlow ops in a `tf.while_loop` (no Python loop over tokens), so it
traces into `tf.function`s, SavedModel signatures and, with static sizes, XLA.

Shape letters: B batch, S source length, C maximum decoded length, V vocabulary, K beam size.
"""

from typing import NamedTuple

import tensorflow as tf

from tf_transformer.layers.masks import PAD_ID

START_ID = 2
END_ID = 3

# Stands for log(0) in scores. Finite, so that sums and length penalties never give NaN.
NEG_INF = -1.0e9


class DecodeResult(NamedTuple):
    """Output of `greedy_decode` and `beam_search`.

    ids: int32 [B, C] (greedy) or [B, top_beams, C] (beam search): generated tokens without
        START; END is kept where generated and everything after it is PAD.
    scores: float32 [B] or [B, top_beams]: greedy: the sum of token log-probabilities; beam
        search: that sum divided by the GNMT length penalty.
    """

    ids: tf.Tensor
    scores: tf.Tensor


def decode_limits(source_ids, max_length, length_ratio=2.0, length_offset=10):
    """Per-sentence decoding budgets: min(max_length, ceil(ratio * source_length + offset)).

    Args:
        source_ids: [B, S] int tensor.
        max_length: int or int32 scalar, the hard cap C.
        length_ratio: float, default 2.0.
        length_offset: int, default 10.

    Returns:
        int32 [B], the number of tokens each sentence may generate (END included).
    """
    source_length = tf.reduce_sum(tf.cast(tf.not_equal(source_ids, PAD_ID), tf.float32), axis=1)
    limit = tf.cast(tf.math.ceil(length_ratio * source_length + length_offset), tf.int32)  # [B]
    return tf.minimum(limit, tf.cast(max_length, tf.int32))  # [B]


def _cache_length(model, max_length):
    return model.transformer_config.max_length if max_length is None else max_length


def greedy_decode(model, source_ids, max_length=None, length_ratio=2.0, length_offset=10,
                  temperature=0.0, top_k=0, seed=None):
    """Decodes token by token with the key/value cache, picking the most likely token.

    With `temperature > 0` it samples instead, from the softmax at that temperature,
    optionally restricted to the `top_k` most likely tokens.

    Args:
        model: a `tf_transformer.Transformer`.
        source_ids: [B, S] int tensor.
        max_length: int or None. Hard cap C on generated tokens; config.max_length if None.
        length_ratio, length_offset: per-sentence budget, see `decode_limits`.
        temperature: float, default 0.0 (greedy).
        top_k: int, default 0 (no restriction). Only with `temperature > 0`.
        seed: int or None. Sampling seed.

    Returns:
        `DecodeResult` with ids [B, C] and scores [B] (sum of log-probabilities of the chosen
        tokens under the model, temperature 1).
    """
    source_ids = tf.convert_to_tensor(source_ids)
    cache_length = _cache_length(model, max_length)
    batch = tf.shape(source_ids)[0]
    limits = decode_limits(source_ids, cache_length, length_ratio, length_offset)  # [B]
    memory = model.encode(source_ids, training=False)  # [B, S, D]
    cache = model.init_cache(memory, source_ids, cache_length)

    def pick(logits, step):
        if temperature <= 0.0:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)  # [B]
        scaled = logits / temperature  # [B, V]
        if top_k:
            kth_best = tf.math.top_k(scaled, k=top_k).values[:, -1:]  # [B, 1]
            scaled = tf.where(scaled < kth_best, NEG_INF, scaled)
        step_seed = None if seed is None else [seed, step]
        if step_seed is None:
            return tf.random.categorical(scaled, 1, dtype=tf.int32)[:, 0]
        return tf.random.stateless_categorical(scaled, 1, step_seed, dtype=tf.int32)[:, 0]

    def body(step, tokens, cache, finished, scores, outputs):
        logits, cache = model.decode_step(tokens, step, cache)  # [B, V]
        log_probs = tf.nn.log_softmax(logits)  # [B, V]
        chosen = tf.where(finished, PAD_ID, pick(logits, step))  # [B]
        chosen_log_prob = tf.gather(log_probs, chosen, batch_dims=1)  # [B]
        scores += tf.where(finished, 0.0, chosen_log_prob)
        outputs = outputs.write(step, chosen)
        finished = finished | tf.equal(chosen, END_ID) | (step + 1 >= limits)
        return step + 1, chosen, cache, finished, scores, outputs

    def cond(step, tokens, cache, finished, scores, outputs):
        return tf.logical_and(step < cache_length, tf.logical_not(tf.reduce_all(finished)))

    initial = (tf.constant(0), tf.fill([batch], START_ID), cache, tf.zeros([batch], tf.bool),
               tf.zeros([batch]), tf.TensorArray(tf.int32, size=cache_length,
                                                 element_shape=[None]))
    steps, _, _, _, scores, outputs = tf.while_loop(cond, body, initial)
    ids = tf.transpose(outputs.stack()[:steps])  # [B, steps]
    return DecodeResult(ids=ids, scores=scores)


def greedy_decode_uncached(model, source_ids, max_length=None, length_ratio=2.0,
                           length_offset=10):
    """Greedy decoding that re-runs the decoder on the whole prefix at every step.

    This is what the TensorFlow tutorial does; it does O(C^2) decoder work instead of O(C).
    Kept as the reference that `greedy_decode` must equal and as the benchmark baseline.

    Args and Returns: as `greedy_decode` without sampling.
    """
    source_ids = tf.convert_to_tensor(source_ids)
    cache_length = _cache_length(model, max_length)
    batch = tf.shape(source_ids)[0]
    limits = decode_limits(source_ids, cache_length, length_ratio, length_offset)  # [B]
    memory = model.encode(source_ids, training=False)  # [B, S, D]

    def body(step, prefix, finished, scores):
        logits = model.decode(prefix, memory, source_ids)[:, -1]  # [B, V]
        log_probs = tf.nn.log_softmax(logits)  # [B, V]
        chosen = tf.where(finished, PAD_ID, tf.argmax(logits, axis=-1, output_type=tf.int32))
        scores += tf.where(finished, 0.0, tf.gather(log_probs, chosen, batch_dims=1))
        prefix = tf.concat([prefix, chosen[:, None]], axis=1)  # [B, step + 2]
        finished = finished | tf.equal(chosen, END_ID) | (step + 1 >= limits)
        return step + 1, prefix, finished, scores

    def cond(step, prefix, finished, scores):
        return tf.logical_and(step < cache_length, tf.logical_not(tf.reduce_all(finished)))

    initial = (tf.constant(0), tf.fill([batch, 1], START_ID), tf.zeros([batch], tf.bool),
               tf.zeros([batch]))
    _, prefix, _, scores = tf.while_loop(
        cond, body, initial,
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]),
                          tf.TensorShape([None]), tf.TensorShape([None])))
    return DecodeResult(ids=prefix[:, 1:], scores=scores)


def length_penalty(length, alpha):
    """GNMT's length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016, section 7)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def beam_search(model, source_ids, beam_size=4, top_beams=1, alpha=0.6, max_length=None,
                length_ratio=2.0, length_offset=10):
    """Beam search with GNMT length normalization on the key/value cache.

    Each step extends the K alive hypotheses of every sentence by every token and keeps the 2K
    best extensions, so that K which do not end remain to continue even if K of them end.
    Extensions that end (END, or the sentence's length budget) among the K best are scored
    log P / length_penalty and join the sentence's finished set; the K best that do not end
    stay alive. A sentence is done once it has K finished hypotheses (as in fairseq), and a
    done sentence no longer changes, so results do not depend on what else is in the batch.
    With K=1 this is exactly greedy decoding.

    Args:
        model: a `tf_transformer.Transformer`.
        source_ids: [B, S] int tensor.
        beam_size: int or int32 scalar K, default 4.
        top_beams: int or int32 scalar, default 1; at most `beam_size`.
        alpha: float or float32 scalar, default 0.6; 0 ranks by raw log-probability.
        max_length, length_ratio, length_offset: as in `greedy_decode`.

    Returns:
        `DecodeResult` with ids [B, top_beams, C'] and scores [B, top_beams], best first.

    References:
        Wu et al., "Google's Neural Machine Translation System", 2016; Tensor2Tensor and Flax
        beam search.
    """
    source_ids = tf.convert_to_tensor(source_ids)
    cache_length = _cache_length(model, max_length)
    beam_size = tf.convert_to_tensor(beam_size, tf.int32)
    top_beams = tf.minimum(tf.convert_to_tensor(top_beams, tf.int32), beam_size)
    alpha = tf.cast(alpha, tf.float32)
    batch = tf.shape(source_ids)[0]
    limits = decode_limits(source_ids, cache_length, length_ratio, length_offset)  # [B]
    memory = model.encode(source_ids, training=False)  # [B, S, D]
    tiled_source = tf.repeat(source_ids, beam_size, axis=0)  # [B*K, S]
    cache = model.init_cache(tf.repeat(memory, beam_size, axis=0), tiled_source, cache_length)
    batch_offsets = (tf.range(batch) * beam_size)[:, None]  # [B, 1]
    seq_length = cache_length + 1  # START + up to C tokens

    def gather_beams(values, beam_indices):
        return tf.gather(values, beam_indices, batch_dims=1)  # [B, k, ...]

    def is_done(finished_scores):
        return finished_scores[:, -1] > NEG_INF / 2  # [B]: K finished hypotheses

    def body(step, alive_seqs, alive_log_probs, finished_seqs, finished_scores, cache):
        tokens = tf.reshape(alive_seqs[:, :, step], [-1])  # [B*K]
        logits, cache = model.decode_step(tokens, step, cache)  # [B*K, V]
        vocab_size = tf.shape(logits)[-1]
        log_probs = tf.reshape(tf.nn.log_softmax(logits), [batch, beam_size, vocab_size])
        candidates = alive_log_probs[:, :, None] + log_probs  # [B, K, V]
        flat = tf.reshape(candidates, [batch, beam_size * vocab_size])  # [B, K*V]
        # 2K candidates: at most K of them can end here, so K alive ones always remain.
        top_log_probs, top_indices = tf.math.top_k(flat, k=2 * beam_size)  # [B, 2K]
        source_beams = top_indices // vocab_size  # [B, 2K]
        top_tokens = top_indices % vocab_size  # [B, 2K]
        top_seqs = gather_beams(alive_seqs, source_beams)  # [B, 2K, C+1]
        write = tf.one_hot(step + 1, seq_length, dtype=tf.int32)  # [C+1]
        top_seqs = top_seqs + top_tokens[:, :, None] * write  # [B, 2K, C+1]
        ended = tf.equal(top_tokens, END_ID) | (step + 1 >= limits)[:, None]  # [B, 2K]

        # Alive: the K best that did not end.
        alive_candidates = top_log_probs + tf.where(ended, NEG_INF, 0.0)  # [B, 2K]
        alive_log_probs, alive_order = tf.math.top_k(alive_candidates, k=beam_size)  # [B, K]
        alive_seqs = gather_beams(top_seqs, alive_order)  # [B, K, C+1]
        cache_indices = tf.reshape(batch_offsets + gather_beams(source_beams, alive_order), [-1])
        cache = tf.nest.map_structure(lambda t: tf.gather(t, cache_indices), cache)  # [B*K, ...]

        # Finished: merge the ones that ended now among the K best into the K best so far.
        in_top_k = tf.range(2 * beam_size)[None, :] < beam_size  # [1, 2K]
        accepted = ended & in_top_k & tf.logical_not(is_done(finished_scores))[:, None]
        ended_scores = top_log_probs / length_penalty(step + 1, alpha)  # [B, 2K]
        ended_scores += tf.where(accepted, 0.0, NEG_INF)
        merged_scores = tf.concat([finished_scores, ended_scores], axis=1)  # [B, 3K]
        merged_seqs = tf.concat([finished_seqs, top_seqs], axis=1)  # [B, 3K, C+1]
        finished_scores, finished_order = tf.math.top_k(merged_scores, k=beam_size)  # [B, K]
        finished_seqs = gather_beams(merged_seqs, finished_order)  # [B, K, C+1]
        return step + 1, alive_seqs, alive_log_probs, finished_seqs, finished_scores, cache

    def cond(step, alive_seqs, alive_log_probs, finished_seqs, finished_scores, cache):
        undecided = tf.logical_not(tf.reduce_all(is_done(finished_scores)))
        return tf.logical_and(step < cache_length, undecided)

    initial_log_probs = tf.concat([[0.0], tf.fill([beam_size - 1], NEG_INF)], axis=0)  # [K]
    initial = (
        tf.constant(0),
        tf.fill([batch, beam_size, seq_length], PAD_ID) + START_ID * tf.one_hot(
            0, seq_length, dtype=tf.int32),  # [B, K, C+1]
        tf.tile(initial_log_probs[None], [batch, 1]),  # [B, K]
        tf.zeros([batch, beam_size, seq_length], tf.int32),  # [B, K, C+1]
        tf.fill([batch, beam_size], NEG_INF),  # [B, K]
        cache,
    )
    # The beam axis may be a run-time value (a signature input), so leave it unknown.
    invariants = (tf.TensorShape([]), tf.TensorShape([None, None, None]),
                  tf.TensorShape([None, None]), tf.TensorShape([None, None, None]),
                  tf.TensorShape([None, None]),
                  tf.nest.map_structure(lambda t: tf.TensorShape([None] + t.shape[1:]), cache))
    steps, alive_seqs, alive_log_probs, finished_seqs, finished_scores, _ = tf.while_loop(
        cond, body, initial, shape_invariants=invariants)
    # A sentence with no finished hypothesis (only when C is reached first) returns its alive ones.
    none_finished = tf.reduce_all(finished_scores <= NEG_INF / 2, axis=1)  # [B]
    alive_scores = alive_log_probs / length_penalty(steps, alpha)  # [B, K]
    seqs = tf.where(none_finished[:, None, None], alive_seqs, finished_seqs)  # [B, K, C+1]
    scores = tf.where(none_finished[:, None], alive_scores, finished_scores)  # [B, K]
    return DecodeResult(ids=seqs[:, :top_beams, 1:steps + 1], scores=scores[:, :top_beams])
