"""Decoding throughput of tf_transformer and CTranslate2, side by side in one run.

Prints sentences/s and generated target tokens/s at each batch size for:
- uncached greedy: re-runs the decoder on the whole prefix at every step (the TensorFlow
  tutorial's loop), O(C^2) decoder work;
- cached greedy: one decoder position per step on the key/value cache;
- beam search (beam 4) on the cache;
- with random weights, beam 4's decoder steps alone ("beam 4 steps, no search"): what beam
  search runs minus the search itself (no top-k, scores, finished hypotheses or reordering of
  the cache), so the cost of beam 4 over greedy that no search could save; and those steps
  with each row's 2K best tokens and log-softmax normalizer ("beam 4 steps + top-k"), the
  least an exact beam search must read of every step's logits;
- with --dtypes, cached greedy and beam 4 again at each reduced compute dtype (the model of
  `tft-export --dtype`, same weights): bfloat16 runs on AVX512-BF16 or AMX matmul units;
- CTranslate2 greedy and beam 4, in float32 and int8, on the same model converted through
  `ctranslate2.specs` (`serving.ctranslate2_model.build_spec`; `--no-ct2` skips it). A check
  line says on how many sentences CTranslate2's float32 greedy tokens equal ours.

Sources are sentences of the bundled anki_spa_eng test split. Without --model-dir, a `small`
model with random weights is used and END is never chosen, so every sentence decodes exactly
--output-length tokens (the ratio is about decoding cost, not translation quality); the
CTranslate2 peer gets the same sources and min_decoding_length = max_decoding_length =
--output-length. With --model-dir, both decode as far as each sentence goes, up to
--output-length.

Usage:
    python benchmarks/decoding.py [--model-dir MODEL_DIR] [--sentences 64]
        [--batch-sizes 1 32] [--output-length 30] [--threads 2] [--repeats 1] [--no-ct2]
        [--dtypes float32 bfloat16]
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tf_transformer  # noqa: E402
from tf_transformer import decoding  # noqa: E402
from tf_transformer.data import load_parallel  # noqa: E402
from tf_transformer.model import COMPUTE_DTYPES, with_compute_dtype  # noqa: E402

# CTranslate2's names for the reserved ids PAD, UNK, START, END.
CT2_SPECIALS = ("<blank>", "<unk>", "<s>", "</s>")
BEAM_SIZE = 4


def _model_and_tokenizer(args):
    if args.model_dir:
        from tf_transformer.model_dir import load_model

        model, tokenizers = load_model(args.model_dir)
        return model, tokenizers.source, False
    from tf_transformer.text import train_tokenizers

    # Seed first: setting the seed later would drop the tokenizer's eager resources.
    tf.keras.utils.set_random_seed(0)
    pairs = load_parallel("anki_spa_eng", "train").take(20000)
    tokenizers = train_tokenizers(pairs.as_numpy_iterator(), tempfile.mkdtemp(),
                                  vocab_size=args.vocab_size)
    config = tf_transformer.TransformerConfig.preset(
        args.preset, vocab_size=tokenizers.source.vocab_size, dropout=0.0)
    return tf_transformer.Transformer(config), tokenizers.source, True


def _ct2_token(token_id):
    """CTranslate2 works on token strings: ids become "<blank>", "<unk>", "<s>", "</s>", "t4"..."""
    return CT2_SPECIALS[token_id] if token_id < len(CT2_SPECIALS) else f"t{token_id}"


def build_ct2_model(model, directory):
    """Saves `model` as a CTranslate2 Transformer, with its own weights, to `directory`.

    The peer is the same network (`serving.ctranslate2_model.build_spec`, through
    `ctranslate2.specs`), so both decode the same tokens; ids are spelled as `_ct2_token`s.
    """
    from serving.ctranslate2_model import build_spec

    config = model.transformer_config
    spec = build_spec(model, [_ct2_token(i) for i in range(config.source_vocab_size)],
                      [_ct2_token(i) for i in range(config.target_vocab_size)])
    os.makedirs(directory, exist_ok=True)
    spec.save(directory)
    return directory


def _ct2_sources(source_ids):
    """[B, S] padded ids -> CTranslate2's token lists (no padding)."""
    return [[_ct2_token(int(i)) for i in row if i != 0] for row in source_ids.numpy()]


def _peer_check(model, tokenizer, texts, translator, budget, options):
    """(sentences on which `translator`'s greedy tokens equal ours, sentences)."""
    config = model.transformer_config
    source_ids = tokenizer.tokenize_padded(tf.constant(texts), config.max_length)
    ours = tf.function(lambda s: decoding.greedy_decode(model, s, **budget))(source_ids)
    theirs = translator.translate_batch(_ct2_sources(source_ids), beam_size=1, **options)
    same = sum([_ct2_token(int(i)) for i in row if i not in (config.pad_id, config.end_id)]
               == result.hypotheses[0] for row, result in zip(ours.ids.numpy(), theirs))
    return same, len(texts)


def _suppress_end(model):
    """Makes END impossible so that every sentence runs to the length cap.

    Cached decoding: a NEG_INF bias on END's logit in the output projection that
    `Transformer.decode_step` uses, which TensorFlow fuses into the logits matmul, so forcing
    the length costs no pass over the [rows, V] logits (an add of a one-hot would cost one
    per step, four times more for beam search's rows). The uncached reference adds it to the
    logits of `Transformer.decode`.
    """
    step_projection = model._step_output_projection

    def suppressed_step_projection():
        projection = dict(step_projection())
        end = tf.one_hot(decoding.END_ID, projection["kernel"].shape[-1],
                         on_value=decoding.NEG_INF, dtype=projection["kernel"].dtype)  # [V]
        projection["bias"] = projection["bias"] + end if "bias" in projection else end
        return projection

    model._step_output_projection = suppressed_step_projection
    original_decode = model.decode

    def decode(target_ids, memory, source_ids, training=False):
        logits = original_decode(target_ids, memory, source_ids, training=training)
        return logits + tf.one_hot(decoding.END_ID, tf.shape(logits)[-1]) * decoding.NEG_INF

    model.decode = decode


def measure(methods, batches, repeats=1):
    """Times every method over `batches`; returns {name: (seconds, tokens)}.

    Each method takes a batch and returns the number of tokens it generated. The methods take
    turns batch by batch, so that load from other processes on a shared machine falls on all
    of them alike, and each batch counts with the fastest of its `repeats` timings.
    """
    for method in methods.values():
        method(batches[0])  # warm-up: tracing and first-call costs are not decoding
    best = {name: [float("inf")] * len(batches) for name in methods}
    tokens = dict.fromkeys(methods, 0)
    for repeat in range(repeats):
        for index, batch in enumerate(batches):
            for name, method in methods.items():
                started = time.perf_counter()
                generated = method(batch)
                best[name][index] = min(best[name][index], time.perf_counter() - started)
                if repeat == 0:
                    tokens[name] += generated
    return {name: (sum(best[name]), tokens[name]) for name in methods}


def step_matmul_seconds(model, rows, repeats=200):
    """Seconds the matrix products of one decoding step take at `rows` rows, alone.

    The products of `Transformer.decode_step` with the model's own weights: per decoder layer
    the fused Q/K/V projection, W^O, the encoder-decoder query projection and W^O, and the two
    feed-forward maps; then the output projection. Beam search with K beams runs them on K
    times greedy's rows, so the difference between the two row counts is a floor under what
    beam search costs over greedy decoding.
    """
    kernels = []
    for layer in model.decoder.blocks:
        mha, cross, ffn = layer.self_attention, layer.cross_attention, layer.feed_forward
        kernels += [mha.fused_projection()["kernel"],
                    tf.reshape(mha.output_dense.kernel, [-1, model.transformer_config.d_model]),
                    tf.reshape(cross.query_dense.kernel, [model.transformer_config.d_model, -1]),
                    tf.reshape(cross.output_dense.kernel, [-1, model.transformer_config.d_model]),
                    tf.convert_to_tensor(ffn.inner.kernel), tf.convert_to_tensor(ffn.outer.kernel)]
    kernels.append(model._step_output_projection()["kernel"])
    inputs = {k.shape[0]: tf.random.stateless_normal([rows, k.shape[0]], seed=[0, k.shape[0]])
              for k in kernels}

    @tf.function
    def products():
        def body(i, total):
            for kernel in kernels:  # each product feeds the loop, so none is pruned
                total += tf.matmul(inputs[kernel.shape[0]], kernel)[0, 0]
            return i + 1, total
        return tf.while_loop(lambda i, total: i < repeats, body, (0, 0.0))[1]

    products()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        products().numpy()
        best = min(best, (time.perf_counter() - started) / repeats)
    return best


def _ours(decode):
    """Runs `decode` on a batch; returns the tokens generated, END not counted (as
    CTranslate2's hypotheses do not hold it)."""
    compiled = tf.function(decode, input_signature=[tf.TensorSpec([None, None], tf.int32)])

    def run(batch):
        ids = compiled(batch).ids.numpy()
        return int(np.count_nonzero((ids != 0) & (ids != decoding.END_ID)))

    return run


def _decoder_steps_only(model, beam_size, steps, top_k=False):
    """A method running beam search's decoder steps without the search, as `beam_search`
    runs them: the encoder, a first step on one row per sentence, its cache rows copied to the
    K hypotheses, then `steps - 1` steps on K rows per sentence. Each step's tokens are the
    previous step's argmax, so that, as in a search, a step waits for the one before.

    With `top_k`, each step also takes every row's 2K best tokens and log-softmax normalizer
    as `beam_search` does (the argmax is then the best of them): what any exact beam search
    has to compute from the logits before it can rank the extensions."""
    config = model.transformer_config

    def pick(logits):  # [R, V] -> [R]
        if not top_k:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        values, tokens = decoding.top_k(logits, 2 * beam_size)  # [R, 2K]
        normalizer = decoding._log_normalizer(logits, values[:, :1], tokens[:, :1])  # [R, 1]
        # The token depends on the normalizer, so that computing it is not pruned.
        return tf.where(normalizer[:, 0] > 1e30, config.pad_id, tokens[:, 0])

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def run_steps(source_ids):
        sentences = tf.shape(source_ids)[0]
        cache = model.init_cache(model.encode(source_ids, training=False), source_ids)
        logits, cache = model.decode_step(tf.fill([sentences], config.start_id), 0, cache)
        tokens = tf.repeat(pick(logits), beam_size)
        cache = model.select_cache(cache, hypotheses=tf.range(sentences * beam_size) // beam_size)

        def body(step, tokens, cache):
            logits, cache = model.decode_step(tokens, step, cache)  # [B*K, V]
            return step + 1, pick(logits), cache

        invariants = (tf.TensorShape([]), tf.TensorShape([None]), decoding._loop_shapes(cache))
        _, tokens, _ = tf.while_loop(lambda step, *_: step < steps, body, (1, tokens, cache),
                                     shape_invariants=invariants)
        return tokens  # [B*K]

    def run(batch):
        run_steps(batch).numpy()
        return int(batch.shape[0]) * steps  # as many tokens per sentence as beam search

    return run


def _ct2(translator, **options):
    def run(batch):
        sources = _ct2_sources(batch)
        results = translator.translate_batch(sources, max_batch_size=len(sources), **options)
        return sum(len(result.hypotheses[0]) for result in results)

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", help="a model directory written by tft-train")
    parser.add_argument("--preset", default="small", help="preset for the random model")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--output-length", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads for TensorFlow and CTranslate2 (intra-op)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed passes over the sentences; each batch's fastest counts")
    parser.add_argument("--no-ct2", action="store_true", help="skip the CTranslate2 peer")
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=sorted(COMPUTE_DTYPES),
                        help="compute dtypes of tf_transformer's cached greedy and beam rows; "
                             "float32 always runs")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    model, tokenizer, random_weights = _model_and_tokenizer(args)
    if random_weights:
        _suppress_end(model)
    texts = [source for source, _ in load_parallel("anki_spa_eng", "test")
             .take(args.sentences).as_numpy_iterator()]
    cap = args.output_length
    # The budget must not end sentences before the cap: only the cap limits them.
    budget = dict(max_length=cap, length_ratio=0.0, length_offset=cap)
    methods = {
        "uncached greedy": _ours(
            lambda s: decoding.greedy_decode_uncached(model, s, **budget)),
        "cached greedy": _ours(lambda s: decoding.greedy_decode(model, s, **budget)),
        f"beam {BEAM_SIZE}": _ours(
            lambda s: decoding.beam_search(model, s, beam_size=BEAM_SIZE, alpha=0.6, **budget)),
    }
    if random_weights:  # every step runs: the same work as beam search's decoder
        methods[f"beam {BEAM_SIZE} steps, no search"] = _decoder_steps_only(model, BEAM_SIZE,
                                                                            cap)
        methods[f"beam {BEAM_SIZE} steps + top-k"] = _decoder_steps_only(model, BEAM_SIZE, cap,
                                                                         top_k=True)
    for dtype in dict.fromkeys(args.dtypes):
        if dtype == "float32":
            continue
        reduced = with_compute_dtype(model, dtype)
        if random_weights:
            _suppress_end(reduced)
        methods[f"cached greedy {dtype}"] = _ours(
            lambda s, m=reduced: decoding.greedy_decode(m, s, **budget))
        methods[f"beam {BEAM_SIZE} {dtype}"] = _ours(
            lambda s, m=reduced: decoding.beam_search(m, s, beam_size=BEAM_SIZE, alpha=0.6,
                                                      **budget))
    if not args.no_ct2:
        import ctranslate2

        ct2_dir = build_ct2_model(model, os.path.join(tempfile.mkdtemp(), "ct2"))
        # With random weights END never comes (ours: `_suppress_end`; CTranslate2: a minimum
        # length); a trained model decodes as far as each sentence goes, up to the cap.
        fixed = dict(max_decoding_length=cap, length_penalty=0.6)
        if random_weights:
            fixed["min_decoding_length"] = cap
        for compute_type in ("float32", "int8"):
            translator = ctranslate2.Translator(ct2_dir, device="cpu", compute_type=compute_type,
                                                intra_threads=args.threads, inter_threads=1)
            if compute_type == "float32":
                same, total = _peer_check(model, tokenizer, texts, translator, budget, fixed)
                print(f"peer check: CTranslate2 float32 greedy decodes tf_transformer's tokens "
                      f"on {same} of {total} sentences (the same weights)")
            methods[f"ct2 {compute_type} greedy"] = _ct2(translator, beam_size=1, **fixed)
            methods[f"ct2 {compute_type} beam {BEAM_SIZE}"] = _ct2(
                translator, beam_size=BEAM_SIZE, **fixed)
    print(f"model: {'random ' if random_weights else ''}{model.transformer_config.d_model}-wide, "
          f"{model.transformer_config.num_encoder_layers}+"
          f"{model.transformer_config.num_decoder_layers} layers, "
          f"{model.count_params():,} parameters; {len(texts)} test sentences; "
          f"up to {cap} output tokens; {args.threads} threads")
    rows = []
    for batch_size in args.batch_sizes:
        batches = [tokenizer.tokenize_padded(tf.constant(texts[i:i + batch_size]),
                                             model.transformer_config.max_length)
                   for i in range(0, len(texts), batch_size)]
        for name, (seconds, tokens) in measure(methods, batches, args.repeats).items():
            rows.append({"method": name, "batch_size": batch_size,
                         "sentences_per_second": len(texts) / seconds,
                         "tokens_per_second": tokens / seconds,
                         "tokens_per_sentence": tokens / len(texts), "seconds": seconds})
    print(f"\n{'method':<24} {'batch':>5} {'sent/s':>9} {'tokens/s':>10} {'tok/sent':>9}")
    for row in rows:
        print(f"{row['method']:<24} {row['batch_size']:>5} {row['sentences_per_second']:>9.1f} "
              f"{row['tokens_per_second']:>10.1f} {row['tokens_per_sentence']:>9.1f}")
    print()
    _print_ratios(rows, args.batch_sizes, args.dtypes)
    _print_beam_floor(model, rows, args.batch_sizes, len(texts), cap)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return rows


def _print_ratios(rows, batch_sizes, dtypes=("float32",)):
    speed = {(r["method"], r["batch_size"]): r["sentences_per_second"] for r in rows}
    beam = f"beam {BEAM_SIZE}"
    for batch_size in batch_sizes:
        def ratio(a, b, batch_size=batch_size):
            return speed[(a, batch_size)] / speed[(b, batch_size)]

        parts = [f"cached greedy {ratio('cached greedy', 'uncached greedy'):.1f}x uncached",
                 f"beam {BEAM_SIZE} costs {ratio('cached greedy', beam):.2f}x greedy"]
        steps_only = f"{beam} steps, no search"
        if (steps_only, batch_size) in speed:
            parts.append(f"its decoder steps alone {ratio('cached greedy', steps_only):.2f}x, "
                         f"with each row's top-k and normalizer "
                         f"{ratio('cached greedy', f'{beam} steps + top-k'):.2f}x")
        for peer in ("float32", "int8"):
            if (f"ct2 {peer} greedy", batch_size) in speed:
                parts.append(f"vs ct2 {peer}: greedy "
                             f"{ratio('cached greedy', f'ct2 {peer} greedy'):.2f}x, {beam} "
                             f"{ratio(beam, f'ct2 {peer} {beam}'):.2f}x")
        if (f"ct2 float32 {beam}", batch_size) in speed:
            parts.append(f"ct2 float32 {beam} costs "
                         f"{ratio('ct2 float32 greedy', f'ct2 float32 {beam}'):.2f}x greedy")
        print(f"batch {batch_size}: " + "; ".join(parts))
        for dtype in dict.fromkeys(dtypes):
            greedy, beam_search = f"cached greedy {dtype}", f"{beam} {dtype}"
            if (greedy, batch_size) not in speed:
                continue
            parts = [f"greedy {ratio(greedy, 'cached greedy'):.2f}x float32, {beam} "
                     f"{ratio(beam_search, beam):.2f}x float32",
                     f"{beam} costs {ratio(greedy, beam_search):.2f}x greedy"]
            if ("ct2 int8 greedy", batch_size) in speed:
                parts.append(f"vs ct2 int8: greedy {ratio(greedy, 'ct2 int8 greedy'):.2f}x, "
                             f"{beam} {ratio(beam_search, f'ct2 int8 {beam}'):.2f}x")
            print(f"batch {batch_size}, {dtype}: " + "; ".join(parts))


def _print_beam_floor(model, rows, batch_sizes, sentences, output_length):
    """How much of beam search's cost over greedy the matrix products alone account for."""
    seconds = {(r["method"], r["batch_size"]): r["seconds"] for r in rows}
    for batch_size in batch_sizes:
        if batch_size == 1:
            continue
        greedy_rows, beam_rows = batch_size, batch_size * BEAM_SIZE
        greedy_products = step_matmul_seconds(model, greedy_rows)
        beam_products = step_matmul_seconds(model, beam_rows)
        steps = -(-sentences // batch_size) * output_length
        greedy_step = seconds[("cached greedy", batch_size)] / steps
        beam_step = seconds[(f"beam {BEAM_SIZE}", batch_size)] / steps
        floor = (greedy_step + beam_products - greedy_products) / greedy_step
        print(f"batch {batch_size}: a step's matrix products alone take "
              f"{greedy_products * 1e3:.2f} ms at {greedy_rows} rows (greedy) and "
              f"{beam_products * 1e3:.2f} ms at {beam_rows} rows (beam {BEAM_SIZE}); a whole "
              f"step (encoder included) takes {greedy_step * 1e3:.2f} ms greedy and "
              f"{beam_step * 1e3:.2f} ms beam {BEAM_SIZE}: the extra products alone make beam "
              f"{BEAM_SIZE} cost {floor:.2f}x greedy, the rest of the step "
              f"{beam_step / greedy_step - floor:+.2f}x")


if __name__ == "__main__":
    main()
