"""Training-step throughput side by side: this package, KerasHub layers, PyTorch nn.Transformer.

    python benchmarks/train_throughput.py [--batch-size 64] [--length 32] [--steps 8]
        [--rounds 3] [--precisions fp32,bf16] [--skip-torch] [--skip-real-data]
        [--json benchmarks/results/train_throughput.json]

Every model has the same size (d_model 256, 3+3 layers, 4 heads, d_ff 1024, vocabulary 8192,
dropout 0.1, output projection tied to the target embedding) and is trained on the same
padded batches with the same loss (label-smoothed cross-entropy over non-padding tokens) and
optimizer (Adam, beta2 0.98, warmup + inverse square root):

- `tf_transformer.Transformer` compiled with `jit_compile` on (XLA) and off;
- a Keras model of `keras_hub.layers.TokenAndPositionEmbedding`, `TransformerEncoder` and
  `TransformerDecoder` (the keras.io translation example's building blocks), compiled the
  same way (`jit_compile` off: KerasHub's default);
- PyTorch `nn.Transformer` in eager mode (when torch imports).

Each in float32 and in bfloat16 (Keras dtype policy "mixed_bfloat16"; torch autocast to
bfloat16 on CPU). All models are built and warmed up first, then timed in `--rounds`
interleaved rounds of `--steps` steps, so that load from other processes hits all of them
alike; the best round counts.

A second table trains this package on real data (the bundled anki_spa_eng corpus through
`tf_transformer.data`): token-budget bucketing against fixed-size padded batches, and the
KerasHub model on the same fixed-size batches, counting non-padding target tokens/s.

FLOPs of one training step, counted on the padded shapes (the work the hardware does):
  forward = 2 * (P_enc * B*S + (P_dec + D*V) * B*T + L_dec * 2*D^2 * B*S)
          + 4*B*D * (L_enc * S^2 + L_dec * (T^2 + T*S))
  step    = 3 * forward (the backward pass costs about twice the forward pass)
with P_enc = L_enc * (4*D^2 + 2*D*F) and P_dec = L_dec * (6*D^2 + 2*D*F) the weights in the
matrix multiplies applied to every token (the decoder's cross-attention key/value projections,
2*D^2 per layer, apply to the source tokens), and the attention terms QK^T and AV over all
(query, key) pairs. Embedding lookups, softmax, layer norms and the optimizer are not counted.
"""

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_transformer  # noqa: E402
from benchmarks import common  # noqa: E402
from tf_transformer.data import load_parallel, make_batches  # noqa: E402
from tf_transformer.text import PAD_ID, train_tokenizers  # noqa: E402

START_ID, END_ID = 2, 3
PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per padded batch")
    parser.add_argument("--length", type=int, default=32,
                        help="padded source and target length of the synthetic batches")
    parser.add_argument("--min-length", type=int, default=8,
                        help="shortest sentence in the synthetic batches")
    parser.add_argument("--batches", type=int, default=4,
                        help="distinct synthetic batches, cycled")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--precisions", default="fp32,bf16",
                        help="comma-separated subset of fp32,bf16")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=1024)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--skip-keras-hub", action="store_true")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-real-data", action="store_true")
    parser.add_argument("--real-precision", default="bf16", choices=sorted(PRECISIONS),
                        help="precision of the real-data table")
    parser.add_argument("--real-max-tokens", type=int, default=2048,
                        help="token budget per batch and side (real data)")
    parser.add_argument("--real-batch-size", type=int, default=128,
                        help="pairs per fixed-size batch (real data)")
    parser.add_argument("--real-max-length", type=int, default=64)
    parser.add_argument("--real-steps", type=int, default=24,
                        help="timed batches per mode and round (real data)")
    parser.add_argument("--real-warmup", type=int, default=8,
                        help="untimed batches per mode (real data; also traces shapes)")
    parser.add_argument("--vocab-sentences", type=int, default=30_000,
                        help="pairs sampled to train the real-data vocabulary")
    parser.add_argument("--data-dir", default=None,
                        help="TFDS data_dir for anki_spa_eng (default: a temporary folder)")
    parser.add_argument("--peak-size", type=int, default=2048,
                        help="matrix size for the matmul peak")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-worker", default=None, choices=sorted(PRECISIONS),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- batches

def synthetic_batches(args):
    """`args.batches` padded batches of random ids with random lengths, identical for all.

    Returns:
        list of (source [B, L], target_input [B, L], target_output [B, L]) int32 arrays.
    """
    rng = np.random.default_rng(args.seed)
    batches = []
    for _ in range(args.batches):
        shape = (args.batch_size, args.length)
        source = np.zeros(shape, np.int32)
        target_input = np.zeros(shape, np.int32)
        target_output = np.zeros(shape, np.int32)
        for row in range(args.batch_size):
            source_length = rng.integers(args.min_length, args.length + 1)
            # The target is one token shorter than the padded length: START/END are added.
            target_length = rng.integers(args.min_length - 1, args.length)
            source[row, :source_length] = rng.integers(4, args.vocab_size, source_length)
            ids = rng.integers(4, args.vocab_size, target_length)
            target_input[row, :target_length + 1] = np.concatenate([[START_ID], ids])
            target_output[row, :target_length + 1] = np.concatenate([ids, [END_ID]])
        batches.append((source, target_input, target_output))
    return batches


# ----------------------------------------------------------------------------- FLOPs

def step_flops(args, batch, source_length, target_length):
    """FLOPs of one training step on a padded batch (formula in the module docstring)."""
    d, f, v, layers = args.d_model, args.d_ff, args.vocab_size, args.num_layers
    source_tokens, target_tokens = batch * source_length, batch * target_length
    encoder_weights = layers * (4 * d * d + 2 * d * f)
    decoder_weights = layers * (6 * d * d + 2 * d * f)
    cross_key_value = layers * 2 * d * d
    dense = 2 * (encoder_weights * source_tokens + (decoder_weights + d * v) * target_tokens
                 + cross_key_value * source_tokens)
    attention = 4 * batch * d * layers * (source_length ** 2 + target_length ** 2
                                          + target_length * source_length)
    return 3 * (dense + attention)


# ----------------------------------------------------------------------------- models

def keras_optimizer(args):
    schedule = tf_transformer.WarmupInverseSqrtSchedule(args.d_model, warmup_steps=4000)
    return keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9)


def compile_keras(model, args, jit_compile):
    model.compile(optimizer=keras_optimizer(args),
                  loss=tf_transformer.MaskedSparseCategoricalCrossentropy(label_smoothing=0.1),
                  jit_compile=jit_compile)
    return model


def package_model(args, precision, jit_compile):
    """tf_transformer.Transformer of the benchmark size."""
    config = tf_transformer.TransformerConfig.preset(
        "small", vocab_size=args.vocab_size, d_model=args.d_model,
        num_encoder_layers=args.num_layers, num_decoder_layers=args.num_layers,
        num_heads=args.num_heads, d_ff=args.d_ff, dropout=args.dropout,
        max_length=max(args.length, args.real_max_length))
    model = tf_transformer.Transformer(config, dtype=PRECISIONS[precision])
    return compile_keras(model, args, jit_compile)


def keras_hub_model(args, precision, jit_compile=False):
    """Encoder-decoder of KerasHub layers, as in the keras.io translation example.

    Padding masks come from `mask_zero=True`; the logits reuse the target embedding
    (`ReversibleEmbedding(reverse=True)`), so the output projection is tied as in ours.
    """
    import keras_hub

    policy = keras.dtype_policies.get(PRECISIONS[precision])
    max_length = max(args.length, args.real_max_length)
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target = keras.Input(shape=(None,), dtype="int32", name="target_input")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        args.vocab_size, max_length, args.d_model, mask_zero=True, dtype=policy)(source)
    for _ in range(args.num_layers):
        x = keras_hub.layers.TransformerEncoder(args.d_ff, args.num_heads, dropout=args.dropout,
                                                dtype=policy)(x)
    target_embedding = keras_hub.layers.TokenAndPositionEmbedding(
        args.vocab_size, max_length, args.d_model, mask_zero=True, dtype=policy)
    y = target_embedding(target)
    for _ in range(args.num_layers):
        y = keras_hub.layers.TransformerDecoder(args.d_ff, args.num_heads, dropout=args.dropout,
                                                dtype=policy)(y, x)
    logits = target_embedding.token_embedding(y, reverse=True)
    model = keras.Model([source, target], logits, name="keras_hub_transformer")
    return compile_keras(model, args, jit_compile)


class KerasRunner:
    """Times training steps of a compiled Keras model on its own stream of batches."""

    def __init__(self, model, batches):
        self.model = model
        self.batches = batches

    def run(self, steps):
        """Runs `steps` steps; returns seconds, CPU seconds, real target tokens, shapes."""
        batches = [next(self.batches) for _ in range(steps)]
        cpu, start = time.process_time(), time.perf_counter()
        for source, target_input, target_output in batches:
            self.model.train_on_batch((source, target_input), target_output)
        return _measurement(batches, time.perf_counter() - start, time.process_time() - cpu)


def _measurement(batches, seconds, cpu_seconds):
    return {"seconds": seconds, "cpu_seconds": cpu_seconds,
            "tokens": sum(int(np.count_nonzero(batch[2] != PAD_ID)) for batch in batches),
            "shapes": [(list(batch[0].shape), list(batch[1].shape)) for batch in batches]}


class TorchStepper:
    """Training steps of a PyTorch `nn.Transformer` of the same size (eager mode)."""

    def __init__(self, args, precision):
        import torch

        self.torch = torch
        torch.manual_seed(args.seed)
        torch.set_num_threads(os.cpu_count() or 1)
        self.model = _torch_module(args)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4, betas=(0.9, 0.98),
                                          eps=1e-9)
        self.autocast = precision == "bf16"
        self.vocab_size = args.vocab_size
        self.batches = cycle(synthetic_batches(args))

    def step(self, source, target_input, target_output):
        torch = self.torch
        source = torch.from_numpy(source).long()
        target_input = torch.from_numpy(target_input).long()
        target_output = torch.from_numpy(target_output).long()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.model(source, target_input)  # [B, T, V]
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, self.vocab_size), target_output.reshape(-1),
            ignore_index=PAD_ID, label_smoothing=0.1)
        loss.backward()
        self.optimizer.step()

    def run(self, steps):
        batches = [next(self.batches) for _ in range(steps)]
        cpu, start = time.process_time(), time.perf_counter()
        for batch in batches:
            self.step(*batch)
        return _measurement(batches, time.perf_counter() - start, time.process_time() - cpu)


class TorchProcess:
    """A `TorchStepper` in a child process.

    TensorFlow's and PyTorch's thread pools slow each other down when both live in one
    process (idle workers of one spin while the other computes), so PyTorch runs in its own
    process, driven step count by step count from here; it rebuilds the same synthetic
    batches from the same arguments.
    """

    def __init__(self, argv, precision):
        command = [sys.executable, os.path.abspath(__file__), *argv, "--torch-worker", precision]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1)

    def run(self, steps):
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("The PyTorch worker process ended unexpectedly.")
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def torch_worker(args):
    """Serves `TorchProcess`: reads a step count per line, answers with a JSON measurement."""
    stepper = TorchStepper(args, args.torch_worker)
    for line in sys.stdin:
        print(json.dumps(stepper.run(int(line))), flush=True)


def _torch_module(args):
    import torch
    from torch import nn

    class TorchTransformer(nn.Module):
        """Shared scaled embedding + sinusoids, nn.Transformer, tied output projection."""

        def __init__(self):
            super().__init__()
            self.width = args.d_model
            self.embedding = nn.Embedding(args.vocab_size, args.d_model, padding_idx=PAD_ID)
            table = tf_transformer.layers.position.sinusoid_table(
                max(args.length, args.real_max_length), args.d_model)
            self.register_buffer("positions", torch.from_numpy(table))
            self.transformer = nn.Transformer(
                d_model=args.d_model, nhead=args.num_heads, num_encoder_layers=args.num_layers,
                num_decoder_layers=args.num_layers, dim_feedforward=args.d_ff,
                dropout=args.dropout, batch_first=True)

        def embed(self, ids):
            return self.embedding(ids) * math.sqrt(self.width) + self.positions[:ids.shape[1]]

        def forward(self, source, target):
            length = target.shape[1]
            causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
            hidden = self.transformer(
                self.embed(source), self.embed(target), tgt_mask=causal,
                src_key_padding_mask=source == PAD_ID, tgt_key_padding_mask=target == PAD_ID,
                memory_key_padding_mask=source == PAD_ID, tgt_is_causal=True)
            return nn.functional.linear(hidden, self.embedding.weight)  # [B, T, V]

    return TorchTransformer()


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- timing

def time_rounds(runs, steps, rounds, warmup):
    """Warms every run up, then times `rounds` interleaved rounds of `steps` steps each.

    Args:
        runs: dict name -> runner (with `run(steps)` returning a measurement dict).
        steps, rounds, warmup: ints.

    Returns:
        dict name -> list of measurements (seconds, cpu_seconds, tokens, shapes), one a round.
    """
    for name, runner in runs.items():
        start = time.perf_counter()
        runner.run(warmup)
        print(f"  warmed up {name} ({time.perf_counter() - start:.1f} s)", flush=True)
    results = {name: [] for name in runs}
    for round_index in range(rounds):
        for name, runner in runs.items():
            results[name].append(runner.run(steps))
        print(f"  round {round_index + 1}/{rounds} done", flush=True)
    return results


def rate(measurement):
    return measurement["tokens"] / measurement["seconds"]


def best_round(rounds):
    """The fastest round: other processes on a shared machine only ever slow a round down."""
    return max(rounds, key=rate)


def cycle(batches):
    while True:
        yield from batches


# ----------------------------------------------------------------------------- tables

def _precisions(args):
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for precision in precisions:
        if precision not in PRECISIONS:
            raise ValueError(f"Unknown precision {precision!r}; choose from {sorted(PRECISIONS)}.")
    return precisions


def synthetic_table(args, argv, peaks):
    batches = synthetic_batches(args)
    padding = 1 - np.mean([np.count_nonzero(b[2]) / b[2].size for b in batches])
    print(f"\nSynthetic padded batches: {args.batch_size} pairs x {args.length} tokens per "
          f"side, {padding:.0%} target padding, {args.batches} distinct batches.")
    if not args.skip_torch and not torch_available():
        print("torch is not installed: the PyTorch rows are skipped.")
    runs, labels = {}, {}
    for precision in _precisions(args):
        for jit in (False, True):
            name = f"tf_transformer XLA {precision}" if jit else f"tf_transformer {precision}"
            runs[name] = KerasRunner(package_model(args, precision, jit), cycle(batches))
            labels[name] = ("tf_transformer", "XLA" if jit else "graph", precision)
        if not args.skip_keras_hub:
            name = f"KerasHub {precision}"
            runs[name] = KerasRunner(keras_hub_model(args, precision), cycle(batches))
            labels[name] = ("KerasHub layers", "graph", precision)
        if not args.skip_torch and torch_available():
            name = f"torch {precision}"
            runs[name] = TorchProcess(argv, precision)
            labels[name] = ("PyTorch nn.Transformer", "eager", precision)
    try:
        results = time_rounds(runs, args.steps, args.rounds, args.warmup)
    finally:
        for runner in runs.values():
            if isinstance(runner, TorchProcess):
                runner.close()
    flops = step_flops(args, args.batch_size, args.length, args.length)
    records, best_peer = [], {}
    for name, rounds in results.items():
        best = best_round(rounds)
        achieved = flops * args.steps / best["seconds"] / 1e9
        library, mode, precision = labels[name]
        records.append({
            "name": name, "library": library, "mode": mode, "precision": precision,
            "tokens_per_second": rate(best), "step_ms": 1000 * best["seconds"] / args.steps,
            "cpu_ms": 1000 * best["cpu_seconds"] / args.steps, "gflops": achieved,
            "peak_share": achieved / peaks[precision],
            "rounds_tokens_per_second": [rate(r) for r in rounds]})
        if library != "tf_transformer":
            best_peer[precision] = max(best_peer.get(precision, 0.0), rate(best))
    rows = []
    for record in records:
        peer = best_peer.get(record["precision"])
        record["vs_best_peer"] = record["tokens_per_second"] / peer if peer else None
        rows.append([record["library"], record["mode"], record["precision"],
                     f"{record['tokens_per_second']:,.0f}", f"{record['step_ms']:.0f}",
                     f"{record['cpu_ms']:.0f}", f"{record['gflops']:.1f}",
                     f"{record['peak_share']:.0%}",
                     "" if peer is None else f"{record['vs_best_peer']:.2f}x"])
    table = common.format_table(
        ["model", "mode", "precision", "target tok/s", "ms/step", "CPU ms/step", "GFLOP/s",
         "of peak", "vs best peer"], rows, align="lllrrrrrr")
    del runs
    gc.collect()
    return {"step_gflop": flops / 1e9, "target_padding": padding, "runs": records}, table


def anki_pipeline(args, scratch):
    data_dir = args.data_dir or os.path.join(scratch, "tensorflow_datasets")
    pairs = load_parallel("anki_spa_eng", "train", data_dir=data_dir)
    start = time.perf_counter()
    tokenizers = train_tokenizers(pairs.take(args.vocab_sentences),
                                  os.path.join(scratch, "tokenizer"),
                                  vocab_size=args.vocab_size, max_sentences=args.vocab_sentences)
    print(f"  vocabulary of {args.vocab_size} trained in {time.perf_counter() - start:.1f} s",
          flush=True)
    return pairs, tokenizers


def numpy_batches(dataset):
    for (source, target_input), target_output in dataset.repeat().as_numpy_iterator():
        yield source, target_input, target_output


def real_data_table(args, peaks):
    precision = args.real_precision
    print(f"\nReal data: anki_spa_eng train, {precision}, max_length {args.real_max_length}.")
    with tempfile.TemporaryDirectory() as scratch:
        pairs, tokenizers = anki_pipeline(args, scratch)
        options = dict(max_length=args.real_max_length, seed=args.seed)
        bucketed = make_batches(pairs, tokenizers, max_tokens=args.real_max_tokens, **options)
        fixed = make_batches(pairs, tokenizers, batch_size=args.real_batch_size, **options)
        # Batch shapes change from batch to batch, so every model runs as a TF graph: XLA
        # would compile again for every new shape.
        runs = {
            f"tf_transformer, token budget {args.real_max_tokens}": KerasRunner(
                package_model(args, precision, False), numpy_batches(bucketed)),
            f"tf_transformer, {args.real_batch_size} pairs": KerasRunner(
                package_model(args, precision, False), numpy_batches(fixed)),
        }
        hub_name = f"KerasHub, {args.real_batch_size} pairs"
        if not args.skip_keras_hub:
            runs[hub_name] = KerasRunner(keras_hub_model(args, precision), numpy_batches(fixed))
        results = time_rounds(runs, args.real_steps, args.rounds, args.real_warmup)
    hub_rate = rate(best_round(results[hub_name])) if hub_name in results else None
    rows, records = [], []
    for name, rounds in results.items():
        best = best_round(rounds)
        padded = sum(source[0] * target[1] for source, target in best["shapes"])
        flops = sum(step_flops(args, source[0], source[1], target[1])
                    for source, target in best["shapes"])
        achieved = flops / best["seconds"] / 1e9
        record = {"name": name, "precision": precision, "tokens_per_second": rate(best),
                  "target_padding": 1 - best["tokens"] / padded,
                  "pairs_per_batch": float(np.mean([s[0][0] for s in best["shapes"]])),
                  "cpu_ms": 1000 * best["cpu_seconds"] / len(best["shapes"]),
                  "gflops": achieved, "peak_share": achieved / peaks[precision],
                  "vs_keras_hub": rate(best) / hub_rate if hub_rate else None,
                  "rounds_tokens_per_second": [rate(r) for r in rounds]}
        records.append(record)
        rows.append([name, f"{record['pairs_per_batch']:.0f}", f"{record['target_padding']:.0%}",
                     f"{record['tokens_per_second']:,.0f}", f"{achieved:.1f}",
                     f"{record['peak_share']:.0%}",
                     "" if not hub_rate else f"{record['vs_keras_hub']:.2f}x"])
    table = common.format_table(
        ["batching", "pairs/batch", "padding", "target tok/s", "GFLOP/s", "of peak",
         "vs KerasHub"], rows)
    return {"precision": precision, "runs": records}, table


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.torch_worker:
        return torch_worker(args)
    keras.utils.set_random_seed(args.seed)
    info = common.machine_info()
    print(common.describe_machine(info))
    peaks = {"fp32": common.matmul_peak(tf.float32, args.peak_size),
             "bf16": common.matmul_peak(tf.bfloat16, args.peak_size)}
    print(f"matmul peak ({args.peak_size}x{args.peak_size}): fp32 {peaks['fp32']:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.1f} GFLOP/s")
    print(f"model: d_model {args.d_model}, {args.num_layers}+{args.num_layers} layers, "
          f"{args.num_heads} heads, d_ff {args.d_ff}, vocabulary {args.vocab_size}")
    payload = {"machine": info, "matmul_peak_gflops": peaks, "args": vars(args)}
    tables = []
    if not args.skip_synthetic:
        payload["synthetic"], table = synthetic_table(args, argv, peaks)
        print(f"\nTraining step, equal padded batches ({args.batch_size} x {args.length}), "
              f"step = {payload['synthetic']['step_gflop']:.1f} GFLOP:")
        print(table)
        tables.append(("Training step, equal padded batches", table))
    if not args.skip_real_data:
        payload["real_data"], table = real_data_table(args, peaks)
        print("\nTraining step on anki_spa_eng, non-padding target tokens/s:")
        print(table)
        tables.append(("Training on anki_spa_eng: token budget vs fixed batches", table))
    payload["tables"] = tables
    if args.json:
        common.write_json(args.json, payload)
        print(f"\nwrote {args.json}")
    return payload


if __name__ == "__main__":
    main()
