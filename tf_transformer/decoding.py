"""Greedy decoding, sampling and beam search on the model's key/value cache.

Everything runs as TensorFlow ops in a `tf.while_loop` (no Python loop over tokens), so it
traces into `tf.function`s and SavedModel signatures. Four things keep a step cheap:
- the self-attention cache grows by one position per step, so a step attends to the positions
  decoded so far, not to a `max_length` buffer;
- a sentence that is done leaves the working batch (its rows of the cache with it), so the
  last long sentence of a batch does not drag the finished ones along;
- beam search's K hypotheses of a sentence share one copy of its encoder keys/values;
- a step runs few, cheap kernels: 2-D matmuls for the projections and logits (no einsum),
  and with few query rows (batch 1) attention as broadcast products instead of batch-matmul
  and softmax kernels, whose fixed cost per call outweighs their work there.

The special ids (PAD, START, END) are the model's, read from its `TransformerConfig`.

Shape letters: B batch, W working sentences (not done yet), S source length, C maximum decoded
length, T positions decoded so far, V vocabulary, K beam size.
"""

from typing import NamedTuple

import tensorflow as tf

# The default special ids, for callers without a model at hand; decoding itself reads the
# model's own (`model.transformer_config.start_id` ...).
from tf_transformer.config import END_ID, START_ID  # noqa: F401

# Stands for log(0) in scores. Finite, so that sums and length penalties never give NaN.
NEG_INF = -1.0e9


class DecodeResult(NamedTuple):
    """Output of `greedy_decode` and `beam_search`.

    ids: int32 [B, C'] (greedy) or [B, top_beams, C'] (beam search), C' <= C the longest
        output: generated tokens without START; END is kept where generated and everything
        after it is PAD.
    scores: float32 [B] or [B, top_beams]: greedy: the sum of token log-probabilities; beam
        search: that sum divided by the GNMT length penalty.

    A source without tokens (only PAD) gets no output tokens (all PAD, not even END) and score
    0, whatever its batch.
    """

    ids: tf.Tensor
    scores: tf.Tensor


def decode_limits(source_ids, max_length, length_ratio=2.0, length_offset=10, pad_id=0):
    """Per-sentence decoding budgets: min(max_length, ceil(ratio * source_length + offset)).

    Args:
        source_ids: [B, S] int tensor.
        max_length: int or int32 scalar, the hard cap C.
        length_ratio: float, default 2.0.
        length_offset: int, default 10.
        pad_id: int, default 0. Not counted in the source length.

    Returns:
        int32 [B], the number of tokens each sentence may generate (END included).
    """
    source_length = tf.reduce_sum(tf.cast(tf.not_equal(source_ids, pad_id), tf.float32), axis=1)
    limit = tf.cast(tf.math.ceil(length_ratio * source_length + length_offset), tf.int32)  # [B]
    return tf.minimum(limit, tf.cast(max_length, tf.int32))  # [B]


def _without_source(ids, scores, source_ids, pad_id):
    """`ids` and `scores` with the rows of sources that hold no token (only PAD: an empty or
    blank sentence) cleared: no output tokens, score 0.

    The decoder would otherwise answer them by attending evenly to padding, so what it wrote
    would depend on how long the batch's other sentences are. Cleared, an empty source gets
    an empty translation whatever its batch, as in CTranslate2.

    Args:
        ids: int32 [B, C] or [B, K, C].
        scores: float32 [B] or [B, K].
        source_ids: [B, S].
        pad_id: int.

    Returns:
        (ids, scores) of the same shapes.
    """
    empty = tf.reduce_all(tf.equal(source_ids, pad_id), axis=1)  # [B]

    def rows(tensor):  # [B] -> [B, 1, ...] broadcasting against `tensor`
        return tf.reshape(empty, [-1] + [1] * (tensor.shape.rank - 1))

    return (tf.where(rows(ids), tf.cast(pad_id, ids.dtype), ids),
            tf.where(rows(scores), tf.zeros_like(scores), scores))


def _cache_length(model, max_length):
    longest = model.transformer_config.max_length
    if max_length is None:
        return longest
    if isinstance(max_length, int) and max_length < 1:
        raise ValueError(f"`max_length` must be at least 1; received max_length={max_length}.")
    if isinstance(max_length, int) and max_length > longest:
        raise ValueError(f"`max_length`={max_length} exceeds the model's max_length={longest}; "
                         f"decode at most {longest} tokens.")
    return max_length


def _loop_shapes(cache):
    """The while-loop shapes of a cache: the first (batch) axis shrinks as sentences finish and
    the time axis of [B, N, T, H] keys/values grows."""
    def relax(tensor):
        dims = tensor.shape.as_list()
        dims[0] = None
        if len(dims) == 4:
            dims[2] = None
        return tf.TensorShape(dims)

    return tf.nest.map_structure(relax, cache)


def _log_normalizer(logits, row_max, argmax):
    """logsumexp over the last axis of [R, V] logits, as [R, 1], given their maxima [R, 1] and
    where those are, `argmax` [R, 1].

    Through the softmax kernel rather than `tf.reduce_logsumexp`: one fused kernel (oneDNN's on
    CPU) in place of a max, subtract, exp and sum over the whole [R, V], a third of the cost at
    a decoding step's [128, 8000]. The largest probability, 1 / sum(exp(logits - max)), is read
    at the argmax rather than by another pass over [R, V]; it is at least 1/V, so its log,
    which is max - logsumexp, loses no precision.
    """
    largest = tf.gather(tf.nn.softmax(logits), argmax, batch_dims=1)  # [R, 1]
    return row_max - tf.math.log(largest)  # [R, 1]


def _select_if(condition, select, cache):
    """`select(cache)` when `condition` holds, else the cache as it is (no copy)."""
    return tf.cond(condition, lambda: select(cache), lambda: cache)


def top_k(values, k, block=64):
    """`tf.math.top_k` over the last axis of [R, V], in two passes for a large V.

    TensorFlow's CPU top-k walks every one of the R*V values through a heap. Here a cheap
    vectorized max over blocks of `block` values comes first; the k largest values lie in the k
    blocks with the largest maxima, so top-k runs on those k*block values only. Equal values
    may come in another order than `tf.math.top_k`'s.

    Args:
        values: [R, V] float tensor.
        k: int or int32 scalar.
        block: int, default 64.

    Returns:
        (values [R, k], indices [R, k] int32), largest first, as `tf.math.top_k`.
    """
    vocab = values.shape[-1]
    def one_pass():
        return tuple(tf.math.top_k(values, k=k))

    if vocab is None or vocab < 16 * block:  # small: one pass is as fast
        return one_pass()
    rows = tf.shape(values)[0]
    num_blocks = -(-vocab // block)
    if num_blocks * block > vocab:
        values = tf.pad(values, [[0, 0], [0, num_blocks * block - vocab]],
                        constant_values=values.dtype.min)  # [R, V']
    blocks = tf.reshape(values, [rows, num_blocks, block])  # [R, V'/b, b]

    def two_passes():
        _, best_blocks = tf.math.top_k(tf.reduce_max(blocks, axis=-1), k=k)  # [R, k]
        candidates = tf.reshape(tf.gather(blocks, best_blocks, batch_dims=1),
                                [rows, -1])  # [R, k*b]
        top_values, positions = tf.math.top_k(candidates, k=k)  # [R, k]
        block_ids = tf.gather(best_blocks, positions // block, batch_dims=1)  # [R, k]
        return top_values, block_ids * block + positions % block

    static_k = tf.get_static_value(k)
    if static_k is not None:  # no run-time branch
        return two_passes() if static_k <= num_blocks else one_pass()
    return tf.cond(k <= num_blocks, two_passes, one_pass)


def greedy_decode(model, source_ids, max_length=None, length_ratio=2.0, length_offset=10,
                  temperature=0.0, top_k=0, seed=None):
    """Decodes token by token with the key/value cache, picking the most likely token.

    With `temperature > 0` it samples instead, from the softmax at that temperature,
    optionally restricted to the `top_k` most likely tokens.

    Args:
        model: a `tf_transformer.Transformer`.
        source_ids: [B, S] int tensor.
        max_length: int (at least 1) or None. Hard cap C on generated tokens; config.max_length
            if None.
        length_ratio, length_offset: per-sentence budget, see `decode_limits`.
        temperature: float, default 0.0 (greedy).
        top_k: int, default 0 (no restriction). Only with `temperature > 0`.
        seed: int or None. Sampling seed.

    Returns:
        `DecodeResult` with ids [B, C'] and scores [B] (sum of log-probabilities of the chosen
        tokens under the model, temperature 1).
    """
    config = model.transformer_config
    source_ids = tf.convert_to_tensor(source_ids)
    cache_length = _cache_length(model, max_length)
    batch = tf.shape(source_ids)[0]
    limits = decode_limits(source_ids, cache_length, length_ratio, length_offset,
                           config.pad_id)  # [B]
    cache = model.init_cache(model.encode(source_ids, training=False), source_ids)

    def pick(logits, step):
        if temperature <= 0.0:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)  # [W]
        scaled = logits / temperature  # [W, V]
        if top_k:
            kth_best = tf.math.top_k(scaled, k=top_k).values[:, -1:]  # [W, 1]
            scaled = tf.where(scaled < kth_best, NEG_INF, scaled)
        if seed is None:
            return tf.random.categorical(scaled, 1, dtype=tf.int32)[:, 0]
        return tf.random.stateless_categorical(scaled, 1, [seed, step], dtype=tf.int32)[:, 0]

    def body(step, rows, tokens, cache, scores, outputs):
        # rows [W]: which sentences of the batch the working rows are.
        logits, cache = model.decode_step(tokens, step, cache)  # [W, V]
        chosen = pick(logits, step)  # [W]
        # Only the chosen token's log-probability is needed: its logit minus the normalizer.
        best = chosen if temperature <= 0.0 else tf.argmax(logits, axis=-1,
                                                           output_type=tf.int32)  # [W]
        normalizer = _log_normalizer(logits, tf.gather(logits, best[:, None], batch_dims=1),
                                     best[:, None])  # [W, 1]
        chosen_log_prob = tf.gather(logits, chosen, batch_dims=1) - normalizer[:, 0]  # [W]
        scores = tf.tensor_scatter_nd_add(scores, rows[:, None], chosen_log_prob)  # [B]
        outputs = outputs.write(step, tf.tensor_scatter_nd_update(
            tf.fill([batch], config.pad_id), rows[:, None], chosen))  # [B]
        done = tf.equal(chosen, config.end_id) | (step + 1 >= tf.gather(limits, rows))  # [W]
        live = tf.where(tf.logical_not(done))[:, 0]  # [W']
        cache = _select_if(tf.reduce_any(done),
                           lambda c: model.select_cache(c, hypotheses=live, sentences=live),
                           cache)
        return step + 1, tf.gather(rows, live), tf.gather(chosen, live), cache, scores, outputs

    def cond(step, rows, tokens, cache, scores, outputs):
        return tf.logical_and(step < cache_length, tf.size(rows) > 0)

    initial = (tf.constant(0), tf.range(batch), tf.fill([batch], config.start_id), cache,
               tf.zeros([batch]), tf.TensorArray(tf.int32, size=cache_length,
                                                 element_shape=[None]))
    invariants = (tf.TensorShape([]), tf.TensorShape([None]), tf.TensorShape([None]),
                  _loop_shapes(cache), tf.TensorShape([None]),
                  tf.TensorShape(None))
    steps, _, _, _, scores, outputs = tf.while_loop(cond, body, initial,
                                                    shape_invariants=invariants)
    ids = tf.transpose(outputs.stack()[:steps])  # [B, steps]
    return DecodeResult(*_without_source(ids, scores, source_ids, config.pad_id))


def greedy_decode_uncached(model, source_ids, max_length=None, length_ratio=2.0,
                           length_offset=10):
    """Greedy decoding that re-runs the decoder on the whole prefix at every step.

    This is what the TensorFlow tutorial does; it does O(C^2) decoder work instead of O(C).
    Kept as the reference that `greedy_decode` must equal and as the benchmark baseline.

    Args and Returns: as `greedy_decode` without sampling.
    """
    config = model.transformer_config
    source_ids = tf.convert_to_tensor(source_ids)
    cache_length = _cache_length(model, max_length)
    batch = tf.shape(source_ids)[0]
    limits = decode_limits(source_ids, cache_length, length_ratio, length_offset,
                           config.pad_id)  # [B]
    memory = model.encode(source_ids, training=False)  # [B, S, D]

    def body(step, prefix, finished, scores):
        logits = model.decode(prefix, memory, source_ids)[:, -1]  # [B, V]
        log_probs = tf.nn.log_softmax(logits)  # [B, V]
        chosen = tf.where(finished, config.pad_id,
                          tf.argmax(logits, axis=-1, output_type=tf.int32))  # [B]
        scores += tf.where(finished, 0.0, tf.gather(log_probs, chosen, batch_dims=1))
        prefix = tf.concat([prefix, chosen[:, None]], axis=1)  # [B, step + 2]
        finished = finished | tf.equal(chosen, config.end_id) | (step + 1 >= limits)
        return step + 1, prefix, finished, scores

    def cond(step, prefix, finished, scores):
        return tf.logical_and(step < cache_length, tf.logical_not(tf.reduce_all(finished)))

    initial = (tf.constant(0), tf.fill([batch, 1], config.start_id), tf.zeros([batch], tf.bool),
               tf.zeros([batch]))
    _, prefix, _, scores = tf.while_loop(
        cond, body, initial,
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]),
                          tf.TensorShape([None]), tf.TensorShape([None])))
    return DecodeResult(*_without_source(prefix[:, 1:], scores, source_ids, config.pad_id))


def length_penalty(length, alpha):
    """GNMT's length penalty ((5 + length) / 6) ** alpha (Wu et al., 2016, section 7)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def beam_search(model, source_ids, beam_size=4, top_beams=1, alpha=0.6, max_length=None,
                length_ratio=2.0, length_offset=10):
    """Beam search with GNMT length normalization on the key/value cache.

    Each step extends the K alive hypotheses of every sentence by every token and keeps the 2K
    best extensions, so that K which do not end remain to continue even if K of them end.
    Extensions that end (END, or the sentence's length budget) among the K best are scored
    log P / length_penalty and join the sentence's K best finished ones; the K best that do
    not end stay alive. With K=1 and alpha=0 this is exactly greedy decoding.

    Stopping rule. A sentence is done when no alive hypothesis can still enter its K best
    finished ones: log-probabilities only fall as a hypothesis grows, so the best score any
    extension of an alive hypothesis with log-probability p can reach is p / lp(L) at the
    length L, between the next one and the sentence's budget, with the largest penalty lp(L)
    (the budget when alpha > 0, as the penalty grows with length). So a sentence with K
    finished hypotheses stops once that bound of its best alive one is no better than its
    worst finished one. fairseq instead stops as soon as K hypotheses have finished, which
    with alpha > 0 can miss a longer hypothesis that the penalty would have ranked first.
    A done sentence leaves the working batch, so results do not depend on the batch.

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
        beam search; fairseq's `SequenceGenerator` for the rule it does not follow.
    """
    config = model.transformer_config
    source_ids = tf.convert_to_tensor(source_ids)
    cache_length = _cache_length(model, max_length)
    beam_size = tf.convert_to_tensor(beam_size, tf.int32)
    static_beam = tf.get_static_value(beam_size)  # None when a signature input
    top_beams = tf.minimum(tf.convert_to_tensor(top_beams, tf.int32), beam_size)
    alpha = tf.cast(alpha, tf.float32)
    batch = tf.shape(source_ids)[0]
    limits = decode_limits(source_ids, cache_length, length_ratio, length_offset,
                           config.pad_id)  # [B]
    # One row per sentence: the first step runs before the K hypotheses exist (see `body`).
    cache = model.init_cache(model.encode(source_ids, training=False), source_ids)
    output_length = cache_length + 1  # START + up to C tokens
    in_top_k = tf.range(2 * beam_size)[None, :] < beam_size  # [1, 2K]

    def gather_beams(values, beam_indices):
        return tf.gather(values, beam_indices, batch_dims=1)  # [W, k, ...]

    def body(step, rows, alive_seqs, alive_log_probs, alive_valid, finished_seqs,
             finished_scores, finished_valid, cache, out_seqs, out_scores, first=False):
        # rows [W]: which sentences of the batch the working ones are. *_valid [W, K] say
        # which hypotheses exist (at step 0 one per sentence, not K).
        width = tf.shape(rows)[0]
        if first:
            # Step 0, run once before the loop: the K hypotheses of a sentence would all be
            # START, so the decoder runs on one row per sentence (the cache has those rows).
            tokens = tf.fill([width], config.start_id)  # [W]
        else:
            tokens = tf.reshape(alive_seqs[:, :, -1], [-1])  # [W*K]
        logits, cache = model.decode_step(tokens, step, cache)  # [W*K, V] ([W, V] first)
        # The 2K best extensions of a sentence are among the 2K best tokens of each of its
        # hypotheses, so only those need log-probabilities (a top-k is unchanged by the
        # log-softmax normalizer, which shifts a whole row).
        per_beam = (min(2 * static_beam, logits.shape[-1])
                    if static_beam is not None and logits.shape[-1] is not None
                    else tf.minimum(2 * beam_size, tf.shape(logits)[-1]))
        best_logits, best_tokens = top_k(logits, per_beam)  # [W*K, 2K]
        best_log_probs = best_logits - _log_normalizer(
            logits, best_logits[:, :1], best_tokens[:, :1])  # [W*K, 2K]
        if first:  # the same for the K hypotheses; all but one are masked out below
            best_log_probs = tf.repeat(best_log_probs, beam_size, axis=0)  # [W*K, 2K]
            best_tokens = tf.repeat(best_tokens, beam_size, axis=0)  # [W*K, 2K]
        candidates = alive_log_probs[:, :, None] + tf.reshape(
            best_log_probs, [width, beam_size, per_beam])  # [W, K, 2K]
        candidates = tf.where(alive_valid[:, :, None], candidates, NEG_INF)
        flat = tf.reshape(candidates, [width, beam_size * per_beam])  # [W, K*2K]
        # 2K candidates: at most K of them can end here, so K alive ones always remain.
        top_log_probs, top_indices = tf.math.top_k(flat, k=2 * beam_size)  # [W, 2K]
        parents = top_indices // per_beam  # [W, 2K]
        top_tokens = tf.gather(tf.reshape(best_tokens, [width, -1]), top_indices,
                               batch_dims=1)  # [W, 2K]
        top_valid = gather_beams(alive_valid, parents)  # [W, 2K]
        top_seqs = tf.concat([gather_beams(alive_seqs, parents), top_tokens[:, :, None]],
                             axis=2)  # [W, 2K, T+2]
        limit = tf.gather(limits, rows)  # [W]
        ended = tf.equal(top_tokens, config.end_id) | (step + 1 >= limit)[:, None]  # [W, 2K]

        # Alive: the K best that did not end.
        stays = top_valid & tf.logical_not(ended)  # [W, 2K]
        alive_log_probs, alive_order = tf.math.top_k(
            tf.where(stays, top_log_probs, NEG_INF), k=beam_size)  # [W, K]
        alive_valid = gather_beams(stays, alive_order)  # [W, K]
        alive_seqs = gather_beams(top_seqs, alive_order)  # [W, K, T+2]
        alive_parents = gather_beams(parents, alive_order)  # [W, K]

        # Finished: merge the ones that ended now among the K best into the K best so far.
        accepted = ended & top_valid & in_top_k  # [W, 2K]
        ended_scores = top_log_probs / length_penalty(step + 1, alpha)  # [W, 2K]
        merged_valid = tf.concat([finished_valid, accepted], axis=1)  # [W, 3K]
        merged_scores = tf.where(merged_valid, tf.concat([finished_scores, ended_scores], 1),
                                 NEG_INF)  # [W, 3K]
        merged_seqs = tf.concat([tf.pad(finished_seqs, [[0, 0], [0, 0], [0, 1]],
                                        constant_values=config.pad_id), top_seqs],
                                axis=1)  # [W, 3K, T+2]
        finished_scores, finished_order = tf.math.top_k(merged_scores, k=beam_size)  # [W, K]
        finished_valid = gather_beams(merged_valid, finished_order)  # [W, K]
        finished_seqs = gather_beams(merged_seqs, finished_order)  # [W, K, T+2]

        # The stopping rule (see the docstring): the best score an alive hypothesis can reach.
        best_alive = alive_log_probs[:, 0]  # [W]
        bound = tf.maximum(best_alive / length_penalty(step + 2, alpha),
                           best_alive / length_penalty(limit, alpha))  # [W]
        settled = tf.reduce_all(finished_valid, axis=1) & (bound <= finished_scores[:, -1])
        done = tf.logical_not(alive_valid[:, 0]) | settled  # [W]

        # Done sentences write their results and leave the working batch.
        done_rows = tf.where(done)[:, 0]  # [W - W']
        width_now = tf.shape(finished_seqs)[2]
        out_seqs = tf.tensor_scatter_nd_update(
            out_seqs, tf.gather(rows, done_rows)[:, None],
            tf.pad(tf.gather(finished_seqs, done_rows),
                   [[0, 0], [0, 0], [0, output_length - width_now]],
                   constant_values=config.pad_id))  # [B, K, C+1]
        out_scores = tf.tensor_scatter_nd_update(
            out_scores, tf.gather(rows, done_rows)[:, None],
            tf.gather(finished_scores, done_rows))  # [B, K]
        live = tf.where(tf.logical_not(done))[:, 0]  # [W']
        hypotheses = tf.reshape(tf.gather(
            alive_parents + (tf.range(width) * beam_size)[:, None], live), [-1])  # [W'*K]
        # Copy the cache only when a hypothesis changes parent or a sentence leaves.
        any_done = tf.reduce_any(done)
        reordered = tf.reduce_any(tf.not_equal(alive_parents, tf.range(beam_size)[None, :]))
        if first:  # the cache has one row per sentence: each of its K hypotheses copies it
            hypotheses //= beam_size
            reordered = tf.constant(True)
        cache = _select_if(reordered | any_done,
                           lambda c: model.select_cache(c, hypotheses=hypotheses), cache)
        cache = _select_if(any_done, lambda c: model.select_cache(c, sentences=live), cache)
        kept = [tf.gather(t, live) for t in (rows, alive_seqs, alive_log_probs, alive_valid,
                                             finished_seqs, finished_scores, finished_valid)]
        return (step + 1, *kept, cache, out_seqs, out_scores)

    def cond(step, rows, *_):
        # Every sentence is done by its budget, which is at most C.
        return tf.logical_and(step < cache_length, tf.size(rows) > 0)

    first = tf.range(beam_size)[None, :] < 1  # [1, K]: one hypothesis per sentence at first
    initial = (
        tf.constant(0),
        tf.range(batch),
        tf.fill([batch, beam_size, 1], config.start_id),  # [B, K, 1]
        tf.tile(tf.where(first, 0.0, NEG_INF), [batch, 1]),  # [B, K]
        tf.tile(first, [batch, 1]),  # [B, K]
        tf.fill([batch, beam_size, 1], config.pad_id),  # [B, K, 1]
        tf.fill([batch, beam_size], NEG_INF),  # [B, K]
        tf.zeros([batch, beam_size], tf.bool),  # [B, K]
        cache,
        tf.fill([batch, beam_size, output_length], config.pad_id),  # [B, K, C+1]
        tf.fill([batch, beam_size], NEG_INF),  # [B, K]
    )
    # The beam axis may be a run-time value (a signature input), so leave it unknown.
    seqs, scores = tf.TensorShape([None, None, None]), tf.TensorShape([None, None])
    invariants = (tf.TensorShape([]), tf.TensorShape([None]), seqs, scores, scores, seqs,
                  scores, scores, _loop_shapes(cache), seqs, scores)
    steps, *_, out_seqs, out_scores = tf.while_loop(cond, body, body(*initial, first=True),
                                                    shape_invariants=invariants)
    return DecodeResult(*_without_source(out_seqs[:, :top_beams, 1:steps + 1],
                                         out_scores[:, :top_beams], source_ids, config.pad_id))
