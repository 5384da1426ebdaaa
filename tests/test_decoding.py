import itertools

import numpy as np
import pytest
import tensorflow as tf

import tf_transformer as tft
from tests.copy_task import copy_config, copy_examples
from tf_transformer import decoding
from tf_transformer.model import with_compute_dtype

SOURCE = np.array([[5, 6, 7, 8, 9, 10, 0, 0], [11, 4, 12, 13, 14, 15, 6, 7],
                   [9, 9, 9, 0, 0, 0, 0, 0]], np.int32)


@pytest.fixture(scope="module")
def random_model():
    tf.keras.utils.set_random_seed(3)
    return tft.Transformer(copy_config(norm_first=True))


def _strip(ids):
    """Tokens up to and including END, as a list per sentence."""
    out = []
    for row in np.atleast_2d(np.asarray(ids)):
        row = list(row)
        out.append(row[:row.index(decoding.END_ID) + 1] if decoding.END_ID in row else
                   [t for t in row if t != 0])
    return out


@pytest.mark.parametrize("dtype, norm_first", [("float32", True), ("bfloat16", True),
                                               ("bfloat16", False)])
@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_the_decoding_loop_casts_no_weight(random_model, dtype, norm_first, method):
    # In reduced precision, reading a float32 weight means casting it: a pass over the kernel.
    # Decoding casts every weight once per call, before the loop, not at every step.
    if not norm_first:
        tf.keras.utils.set_random_seed(4)
        random_model = tft.Transformer(copy_config(norm_first=False))
    model = with_compute_dtype(random_model, dtype)
    decode = (lambda s: decoding.greedy_decode(model, s, max_length=4)) if method == "greedy" \
        else (lambda s: decoding.beam_search(model, s, beam_size=2, max_length=4))
    graph = tf.function(decode).get_concrete_function(tf.TensorSpec([None, None], tf.int32)).graph
    functions = graph.as_graph_def().library.function
    assert any("while_body" in f.signature.name for f in functions)
    casts = []
    for function in functions:  # the loop's body and the conditionals inside it
        producers = {node.name: node.op for node in function.node_def}
        casts += [(function.signature.name, node.name) for node in function.node_def
                  if node.op == "Cast"
                  and producers.get(node.input[0].split(":")[0]) == "ReadVariableOp"]
    assert not casts
    ids = tf.function(decode)(SOURCE).ids  # and it still decodes
    assert ids.shape[0] == SOURCE.shape[0]


# 3 rows: a step attends with broadcast products; 24: with broadcast products up to 16 cached
# positions, then with matmul kernels (attention.py).
@pytest.mark.parametrize("copies", [1, 8])
def test_cached_greedy_equals_uncached_greedy(random_model, copies):
    source = np.tile(SOURCE, [copies, 1])
    noise = np.random.default_rng(7).integers(4, 16, source.shape)
    source[3:] = np.where(source[3:] > 0, noise[3:], 0)  # other sentences than the first 3
    cached = tf.function(lambda s: decoding.greedy_decode(random_model, s, max_length=20))(source)
    uncached = tf.function(
        lambda s: decoding.greedy_decode_uncached(random_model, s, max_length=20))(source)
    assert cached.ids.shape[1] == 20  # the untrained model never says END: runs to the cap
    np.testing.assert_array_equal(cached.ids, uncached.ids)
    np.testing.assert_allclose(cached.scores, uncached.scores, rtol=1e-4)


def test_cached_greedy_equals_uncached_when_sentences_finish_at_different_steps(
        trained_copy_model):
    # END at different steps and length budgets of 4..10 tokens: rows leave the working batch
    # one after another, and the outputs must not notice.
    model, _ = trained_copy_model
    rng = np.random.default_rng(4)
    source = rng.integers(4, 16, size=(8, 8)).astype(np.int32)
    for row, length in enumerate([8, 2, 5, 8, 3, 7, 4, 6]):
        source[row, length:] = 0
    budget = dict(max_length=20, length_ratio=1.0, length_offset=2)
    cached = decoding.greedy_decode(model, source, **budget)
    uncached = decoding.greedy_decode_uncached(model, source, **budget)
    lengths = (cached.ids.numpy() != 0).sum(axis=1)
    assert len(set(lengths)) > 3, lengths  # the rows did finish at different steps
    np.testing.assert_array_equal(cached.ids, uncached.ids)
    np.testing.assert_allclose(cached.scores, uncached.scores, rtol=1e-4, atol=1e-5)


def test_beam_size_one_equals_greedy(random_model, trained_copy_model):
    for model in (random_model, trained_copy_model[0]):
        greedy = decoding.greedy_decode(model, SOURCE, max_length=20)
        beam = decoding.beam_search(model, SOURCE, beam_size=1, alpha=0.0, max_length=20)
        assert _strip(beam.ids[:, 0]) == _strip(greedy.ids)
        np.testing.assert_allclose(beam.scores[:, 0], greedy.scores, rtol=1e-4)


def test_trained_model_copies_with_greedy_and_beam(trained_copy_model):
    model, _ = trained_copy_model
    source, _, target_out = copy_examples(16, seed=77)
    greedy = tf.function(lambda s: decoding.greedy_decode(model, s, max_length=20))(source)
    assert _strip(greedy.ids) == [list(row) for row in target_out]
    beams = tf.function(lambda s: decoding.beam_search(model, s, beam_size=4, top_beams=4,
                                                        alpha=0.6, max_length=20))(source)
    assert _strip(beams.ids[:, 0]) == [list(row) for row in target_out]
    scores = beams.scores.numpy()
    assert scores.shape == (16, 4)
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "beams must be sorted best first"
    # Same ranking as greedy when alpha=0: the best beam's log-probability is never below it.
    raw = decoding.beam_search(model, source, beam_size=4, alpha=0.0, max_length=20)
    assert np.all(raw.scores.numpy()[:, 0] >= greedy.scores.numpy() - 1e-4)


def test_best_beam_never_below_greedy_on_noisy_inputs(trained_copy_model):
    # Sequences longer than any seen in training make the model unsure, so beams differ.
    model, _ = trained_copy_model
    source = np.random.default_rng(5).integers(4, 16, size=(32, 14)).astype(np.int32)
    greedy = decoding.greedy_decode(model, source, max_length=30)
    beams = decoding.beam_search(model, source, beam_size=4, top_beams=2, alpha=0.0,
                                 max_length=30)
    assert np.all(beams.scores.numpy()[:, 0] >= greedy.scores.numpy() - 1e-4)
    assert np.all(beams.scores.numpy()[:, 0] >= beams.scores.numpy()[:, 1] - 1e-6)


def test_results_do_not_depend_on_the_batch(trained_copy_model):
    model, _ = trained_copy_model
    source, _, _ = copy_examples(6, seed=8)
    together = decoding.beam_search(model, source, beam_size=3, top_beams=2, max_length=20)
    alone = decoding.beam_search(model, source[2:3], beam_size=3, top_beams=2, max_length=20)
    assert _strip(alone.ids[0, 0]) == _strip(together.ids[2, 0])
    np.testing.assert_allclose(alone.scores[0], together.scores[2], rtol=1e-4)


def test_length_budget_follows_the_source(random_model):
    result = decoding.greedy_decode(random_model, SOURCE, max_length=30, length_ratio=1.0,
                                    length_offset=2)
    lengths = (result.ids.numpy() != 0).sum(axis=1)
    np.testing.assert_array_equal(lengths, [6 + 2, 8 + 2, 3 + 2])


@pytest.mark.parametrize("max_length, message", [(0, "at least 1"), (10**6, "exceeds")])
@pytest.mark.parametrize("decode", [decoding.greedy_decode, decoding.beam_search])
def test_max_length_out_of_range_is_a_clear_error(random_model, decode, max_length, message):
    with pytest.raises(ValueError, match=f"max_length.*{message}|{message}.*max_length"):
        decode(random_model, SOURCE, max_length=max_length)


def test_length_penalty_is_gnmt():
    assert float(decoding.length_penalty(7, 0.6)) == pytest.approx(((5 + 7) / 6) ** 0.6)
    assert float(decoding.length_penalty(7, 0.0)) == 1.0


def test_sampling_top_k_one_is_greedy_and_seeded_sampling_repeats(trained_copy_model):
    model, _ = trained_copy_model
    greedy = decoding.greedy_decode(model, SOURCE, max_length=20)
    top1 = decoding.greedy_decode(model, SOURCE, max_length=20, temperature=1.0, top_k=1, seed=1)
    np.testing.assert_array_equal(top1.ids, greedy.ids)
    a = decoding.greedy_decode(model, SOURCE, max_length=20, temperature=5.0, seed=3)
    b = decoding.greedy_decode(model, SOURCE, max_length=20, temperature=5.0, seed=3)
    np.testing.assert_array_equal(a.ids, b.ids)


def _rescore(model, source, sequences, alpha):
    """Teacher-forced sum of token log-probabilities / length penalty, one per sequence.

    `sequences` [E, L] are outputs (END included, PAD after it) for `source` [E, S].
    """
    config = model.transformer_config
    sequences = np.asarray(sequences)
    target_in = np.concatenate([np.full((len(sequences), 1), config.start_id), sequences[:, :-1]],
                               axis=1).astype(np.int32)
    log_probs = tf.nn.log_softmax(model((np.asarray(source, np.int32), target_in))).numpy()
    token_log_probs = np.take_along_axis(log_probs, sequences[..., None], axis=-1)[..., 0]
    lengths = np.array([len(s) for s in _strip(sequences)])
    mask = np.arange(sequences.shape[1])[None, :] < lengths[:, None]
    return (token_log_probs * mask).sum(axis=1) / ((5.0 + lengths) / 6.0) ** alpha


def test_every_beam_score_is_its_rescored_log_probability(trained_copy_model):
    model, _ = trained_copy_model
    source = np.random.default_rng(6).integers(4, 16, size=(6, 12)).astype(np.int32)
    for alpha in (0.0, 0.6):
        beams = decoding.beam_search(model, source, beam_size=4, top_beams=4, alpha=alpha,
                                     max_length=24)
        ids, scores = beams.ids.numpy(), beams.scores.numpy()
        for sentence in range(len(source)):
            hypotheses = _strip(ids[sentence])
            assert all(0 not in h for h in hypotheses), "PAD inside a hypothesis"
            assert len({tuple(h) for h in hypotheses}) == 4, "the top beams must be distinct"
            rescored = _rescore(model, np.repeat(source[sentence:sentence + 1], 4, axis=0),
                                ids[sentence], alpha)
            np.testing.assert_allclose(scores[sentence], rescored, atol=2e-4)


TINY_VOCAB, TINY_LENGTH = 5, 4  # PAD, UNK, START, END and one word; at most 4 tokens


@pytest.fixture(scope="module")
def tiny_vocab_model():
    tf.keras.utils.set_random_seed(11)
    config = tft.TransformerConfig(
        source_vocab_size=TINY_VOCAB, target_vocab_size=TINY_VOCAB, num_encoder_layers=1,
        num_decoder_layers=1, d_model=16, num_heads=2, d_ff=32, dropout=0.0, max_length=8)
    model = tft.Transformer(config)
    # Sharper distributions than the initializer's, so that the ranking is not a near-tie.
    embedding = model.source_embedding.embeddings
    embedding.assign(embedding * 4.0)
    return model


def _brute_force(model, source, alpha):
    """Scores every hypothesis of at most TINY_LENGTH tokens; returns [(score, tokens)], best
    first. A hypothesis ends with END or at the length budget; any token may be generated."""
    config = model.transformer_config
    every = np.array(list(itertools.product(range(TINY_VOCAB), repeat=TINY_LENGTH)), np.int32)
    source = np.repeat(np.asarray(source, np.int32)[None], len(every), axis=0)
    cache = model.init_cache(model.encode(source), source)
    tokens = np.full(len(every), config.start_id, np.int32)
    prefix_log_prob = np.zeros(len(every))
    scored = {}
    for step in range(TINY_LENGTH):
        logits, cache = model.decode_step(tf.constant(tokens), tf.constant(step), cache)
        log_probs = tf.nn.log_softmax(logits).numpy()
        tokens = every[:, step]
        prefix_log_prob = prefix_log_prob + log_probs[np.arange(len(every)), tokens]
        for row in range(len(every)):
            prefix = tuple(every[row, :step + 1])
            if config.end_id in prefix[:-1]:
                continue
            if prefix[-1] == config.end_id or step + 1 == TINY_LENGTH:
                scored[prefix] = prefix_log_prob[row] / ((5.0 + step + 1) / 6.0) ** alpha
    return sorted(((score, list(tokens)) for tokens, score in scored.items()), reverse=True)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_as_wide_as_the_search_space_equals_brute_force(tiny_vocab_model, alpha):
    model = tiny_vocab_model
    source = np.array([[4, 1, 4, 4], [1, 4, 0, 0]], np.int32)
    # 4^3 = 64 prefixes can be alive at the last step; 128 keeps each one and every one of
    # the candidates that can finish, so nothing is pruned.
    beams = decoding.beam_search(model, source, beam_size=128, top_beams=20, alpha=alpha,
                                 max_length=TINY_LENGTH, length_ratio=0.0,
                                 length_offset=TINY_LENGTH)
    for sentence in range(len(source)):
        expected = _brute_force(model, source[sentence], alpha)
        assert len(expected) == 4 ** 4 + 1 + 4 + 16 + 64
        assert expected[0][0] - expected[1][0] > 1e-3, "near-tie: pick another seed"
        # Compared padded: PAD is a token the random model may generate, but only after END
        # or within a full-length hypothesis, so the padded rows are unambiguous.
        got = beams.ids.numpy()[sentence].tolist()
        assert got == [tokens + [0] * (TINY_LENGTH - len(tokens)) for _, tokens in expected[:20]]
        np.testing.assert_allclose(beams.scores.numpy()[sentence],
                                   [score for score, _ in expected[:20]], rtol=1e-5)
        assert len({tuple(h) for h in got}) == 20  # distinct


class _TableModel:
    """A stand-in for `Transformer` whose next-token probabilities depend only on the step and
    the current token, so that the best translation can be worked out by hand.

    Tokens: PAD 0, UNK 1, START 2, END `end`, and a word `a`. From START: END 0.5, a 0.45.
    After one a: a 0.99. After two: END 0.99. So [END] scores log 0.5 = -0.69 and
    [a, a, END] scores log(0.45 * 0.99^2) = -0.82 before the length penalty.
    """

    def __init__(self, end_id=3, word_id=4):
        self.transformer_config = tft.TransformerConfig(
            source_vocab_size=5, target_vocab_size=5, end_id=end_id, unk_id=1,
            start_id=2, pad_id=0, max_length=8, d_model=8, num_heads=1)
        table = np.full((3, 5), 0.05 / 3)  # [step, V]
        table[0, [end_id, word_id]] = 0.5, 0.45
        table[1] = 0.01 / 4
        table[1, word_id] = 0.99
        table[2] = 0.01 / 4
        table[2, end_id] = 0.99
        self.table = tf.constant(np.log(table), tf.float32)

    def encode(self, source_ids, training=False):
        return tf.zeros([tf.shape(source_ids)[0], 1, 1])

    def init_cache(self, memory, source_ids, beam_size=1):
        return {"rows": tf.zeros([tf.shape(memory)[0] * beam_size, 1])}

    @staticmethod
    def select_cache(cache, hypotheses=None, sentences=None):
        return cache if hypotheses is None else {"rows": tf.gather(cache["rows"], hypotheses)}

    def decode_step(self, token_ids, step, cache):
        start = tf.cast(tf.equal(step, 0), tf.int32) * self.transformer_config.start_id
        tf.debugging.assert_equal(tf.reduce_all(token_ids == start) | (step > 0), True,
                                  message="decoding must start from the config's START")
        row = tf.gather(self.table, tf.minimum(step, 2))  # [V]
        return tf.tile(row[None], [tf.shape(token_ids)[0], 1]), cache


@pytest.mark.parametrize("end_id, word_id", [(3, 4), (4, 3)])
def test_alpha_changes_the_ranking_and_search_stops_only_when_settled(end_id, word_id):
    model = _TableModel(end_id, word_id)
    source = np.array([[4, 4]], np.int32)
    budget = dict(max_length=4, length_ratio=0.0, length_offset=4)
    short = np.log(0.5)
    long = np.log(0.45 * 0.99 ** 2)
    # alpha = 0 ranks by log-probability: [END] wins, and nothing alive can beat it.
    raw = decoding.beam_search(model, source, beam_size=1, alpha=0.0, **budget)
    assert _strip_with(raw.ids.numpy()[0], end_id) == [[end_id]]
    np.testing.assert_allclose(raw.scores.numpy()[0], [short], rtol=1e-5)
    # alpha = 1 divides by (5 + length) / 6: [a, a, END] scores -0.82 / (8/6) = -0.61 and
    # wins over -0.69. [END] finishes first, and with beam 1 fairseq's rule (stop once K
    # hypotheses have finished) would return it; the search must go on while the alive
    # [a] could still reach -0.80 / lp(4) = -0.53.
    normalized = decoding.beam_search(model, source, beam_size=1, alpha=1.0, **budget)
    assert _strip_with(normalized.ids.numpy()[0], end_id) == [[word_id, word_id, end_id]]
    np.testing.assert_allclose(normalized.scores.numpy()[0], [long / (8 / 6)], rtol=1e-5)
    # Wider beams agree, and rank both.
    both = decoding.beam_search(model, source, beam_size=2, top_beams=2, alpha=1.0, **budget)
    assert _strip_with(both.ids.numpy()[0], end_id) == [[word_id, word_id, end_id], [end_id]]
    np.testing.assert_allclose(both.scores.numpy()[0], [long / (8 / 6), short], rtol=1e-5)
    # Greedy decoding stops at the config's END too.
    greedy = decoding.greedy_decode(model, source, **budget)
    assert greedy.ids.numpy().tolist() == [[end_id]]


def _strip_with(ids, end_id):
    out = []
    for row in np.atleast_2d(ids):
        row = list(row)
        out.append(row[:row.index(end_id) + 1] if end_id in row else [t for t in row if t])
    return out


def _normalizer(logits):
    argmax = tf.argmax(logits, axis=-1, output_type=tf.int32)[:, None]  # [R, 1]
    return decoding._log_normalizer(logits, tf.gather(logits, argmax, batch_dims=1), argmax)


def test_log_normalizer_equals_logsumexp():
    # Wide ranges, ties, a masked (NEG_INF) logit and a row of equal logits.
    logits = tf.constant([[0.0, 1.0, 2.0, -3.0], [1000.0, decoding.NEG_INF, 999.0, 990.0],
                          [-50.0, -50.0, -50.0, -50.0], [30.0, -30.0, 0.0, 30.0]])
    np.testing.assert_allclose(_normalizer(logits)[:, 0], tf.reduce_logsumexp(logits, axis=-1),
                               rtol=1e-6)
    random = tf.random.stateless_normal([5, 8000], seed=[3, 4]) * 10
    np.testing.assert_allclose(_normalizer(random)[:, 0], tf.reduce_logsumexp(random, axis=-1),
                               rtol=1e-6)


@pytest.mark.parametrize("k", [1, 8, 40])
def test_two_pass_top_k_equals_top_k(k):
    values = tf.random.stateless_normal([6, 8003], seed=[1, k])  # V not a multiple of the block
    got = decoding.top_k(values, k)
    expected = tf.math.top_k(values, k=k)
    np.testing.assert_array_equal(got[0], expected.values)
    np.testing.assert_array_equal(got[1], expected.indices)
    # More than there are blocks: one pass.
    np.testing.assert_array_equal(decoding.top_k(values, 200)[1],
                                  tf.math.top_k(values, k=200).indices)


@pytest.mark.parametrize("method", ["greedy", "uncached", "beam"])
def test_a_source_without_tokens_gets_an_empty_output_whatever_its_batch(random_model, method):
    decode = {
        "greedy": lambda s: decoding.greedy_decode(random_model, s, max_length=12),
        "uncached": lambda s: decoding.greedy_decode_uncached(random_model, s, max_length=12),
        "beam": lambda s: decoding.beam_search(random_model, s, beam_size=3, top_beams=2,
                                               max_length=12),
    }[method]
    empty = np.zeros([1, SOURCE.shape[1]], np.int32)
    batch = np.concatenate([SOURCE[:1], empty, SOURCE[1:]])  # the empty source second
    together = decode(batch)
    ids, scores = together.ids.numpy(), together.scores.numpy()
    assert np.all(ids[1] == 0) and np.all(scores[1] == 0.0)
    # The other sentences are decoded as without it, and do generate tokens.
    without = decode(SOURCE)
    width = min(ids.shape[-1], without.ids.shape[-1])
    for row, alone in zip((0, 2, 3), range(3)):
        np.testing.assert_array_equal(ids[row][..., :width],
                                      without.ids.numpy()[alone][..., :width])
        np.testing.assert_allclose(scores[row], without.scores.numpy()[alone], rtol=1e-5)
        assert np.all(ids[row][..., width:] == 0) and np.any(ids[row] != 0)
    # Alone, it is empty too.
    alone = decode(empty)
    assert np.all(alone.ids.numpy() == 0) and np.all(alone.scores.numpy() == 0.0)
