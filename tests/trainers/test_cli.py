"""tft-train end to end on a slice of the bundled corpus, option parsing, strategy errors."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.trainers.conftest import PROJECT_ROOT, python_env
from trainers.config import TrainingConfig
from trainers.train import build_parser, configs_from_args


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "trainers.train", *args], capture_output=True,
                          text=True, timeout=timeout, env=python_env(), cwd=PROJECT_ROOT)


def test_arguments_become_configs():
    args = build_parser().parse_args([
        "--model-dir", "x", "--preset", "tiny", "--num-layers", "3", "--d-model", "32",
        "--max-length", "20", "--model-max-length", "40", "--no-shared-vocab",
        "--mixed-precision", "bf16", "--jit-compile", "--strategy", "mirrored",
        "--accumulate-steps", "4", "--keep-checkpoints", "3", "--early-stopping-patience", "2",
        "--max-minutes", "1.5"])
    training, preset, overrides = configs_from_args(args)
    assert preset == "tiny"
    assert overrides == {"num_encoder_layers": 3, "num_decoder_layers": 3, "d_model": 32,
                         "max_length": 40}
    assert training == TrainingConfig(max_length=20, shared_vocab=False, mixed_precision="bf16",
                                      jit_compile=True, strategy="mirrored", accumulate_steps=4,
                                      keep_checkpoints=3, early_stopping_patience=2,
                                      max_minutes=1.5)
    assert training.dtype_policy == "mixed_bfloat16"


@pytest.mark.parametrize("field,value", [("batch_tokens", 0), ("strategy", "gpu"),
                                         ("mixed_precision", "fp8"), ("label_smoothing", 1.0),
                                         ("accumulate_steps", 0), ("keep_checkpoints", -1),
                                         ("early_stopping_patience", 0), ("max_minutes", 0.0)])
def test_bad_training_settings_name_the_value(field, value):
    with pytest.raises(ValueError, match=field):
        TrainingConfig(**{field: value})


def test_accumulate_steps_zero_is_a_clear_cli_error(tmp_path):
    result = run_cli("--model-dir", str(tmp_path / "run"), "--accumulate-steps", "0",
                     timeout=120)
    assert result.returncode == 2
    assert "`accumulate_steps` must be a positive integer; received accumulate_steps=0" in (
        result.stderr)


def test_early_stopping_needs_bleu():
    with pytest.raises(ValueError, match="bleu_samples=0"):
        TrainingConfig(early_stopping_patience=3, bleu_samples=0)


def test_tpu_strategy_without_tpu_fails_fast(tmp_path):
    result = run_cli("--model-dir", str(tmp_path / "run"), "--strategy", "tpu", timeout=120)
    assert result.returncode == 2
    assert "no TPU found" in result.stderr and "--tpu" in result.stderr
    assert not os.path.exists(tmp_path / "run")  # failed before touching data


def _expected_target_tokens(data_dir, tokenizers, examples, max_length):
    """Target tokens (with END) of the first `examples` training pairs that fit max_length."""
    from tf_transformer.data import load_splits

    pairs = load_splits("anki_spa_eng", data_dir=data_dir).train.take(examples)
    total = kept = 0
    for english, spanish in pairs.batch(256):
        for source, target in zip(tokenizers.source.tokenize(english).to_list(),
                                  tokenizers.target.tokenize(spanish).to_list()):
            if len(source) <= max_length and len(target) + 1 <= max_length:
                total += len(target) + 1
                kept += 1
    return total, kept


def test_cli_trains_writes_model_dir_and_tensorboard_logs(tmp_path_factory, tmp_path):
    import sacrebleu
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tf_transformer.model_dir import load_model

    model_dir = tmp_path / "run"
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    # No --steps-per-epoch: an epoch is one pass over the 600 pairs, so its token count is known.
    result = run_cli(
        "--model-dir", str(model_dir), "--preset", "tiny",
        "--data-dir", data_dir, "--max-train-examples", "600",
        "--vocab-size", "400", "--max-length", "24", "--batch-tokens", "384", "--epochs", "2",
        "--validation-steps", "2", "--warmup-steps", "50",
        "--bleu-samples", "3", "--attention-probes", "1", "--verbose", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Epoch 2/2" in result.stdout
    assert "Trained 2 epoch(s)" in result.stdout and "target tokens/s" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["epoch"] == 2 and summary["epochs_run"] == 2 and summary["replicas"] == 1
    assert summary["tokens_per_second"] > 0

    for path in ("config.json", "tokenizer/tokenizers.json", "checkpoints/best.weights.h5",
                 "checkpoints/last.weights.h5", "checkpoints/best.json",
                 "backup/training_metadata.json"):
        assert (model_dir / path).is_file(), path
    config = json.loads((model_dir / "config.json").read_text())
    assert set(config) == {"model", "training", "data"}
    assert config["data"]["source_lang"] == "en" and config["data"]["target_lang"] == "es"
    assert config["model"]["source_vocab_size"] == 400

    def accumulator(run):
        events = EventAccumulator(str(model_dir / "logs" / run), size_guidance={"tensors": 0})
        events.Reload()
        return events

    def values(events, tag):
        return [tf.make_ndarray(event.tensor_proto) for event in events.Tensors(tag)]

    train_events, validation_events = accumulator("train"), accumulator("validation")
    train_tags = train_events.Tags()
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate",
            "epoch_tokens_per_second"} <= set(train_tags["tensors"])
    assert train_tags["graph"]
    assert {"epoch_loss", "epoch_bleu", "translation/sample_0"} <= set(
        validation_events.Tags()["tensors"])
    assert "attention/probe_0/cross" in accumulator("attention").Tags()["tensors"]
    assert (model_dir / "logs" / "embeddings" / "projector_config.pbtxt").is_file()

    # Training learned: the loss starts near log(V) (a uniform guess) and falls every epoch.
    losses = [float(v) for v in values(train_events, "epoch_loss")]
    assert len(losses) == 2 and losses[1] < losses[0] < np.log(400) + 0.5
    assert summary["loss"] == pytest.approx(losses[1], rel=1e-6)
    assert summary["val_loss"] < np.log(400)

    model, tokenizers = load_model(str(model_dir))
    assert model.transformer_config.d_model == 64 and config["training"]["epochs"] == 2
    assert tokenizers.shared and tokenizers.source.vocab_size == 400
    assert model.count_params() > 0

    # Each epoch trained on every target token of the 600 pairs once (END included, PAD not).
    expected_tokens, kept = _expected_target_tokens(data_dir, tokenizers, 600, 24)
    assert 400 < kept < 600  # long pairs were dropped, not cut
    assert [float(v) for v in values(train_events, "epoch_tokens")] == [expected_tokens] * 2

    # BLEU is a percentage and is what sacreBLEU gives for the logged translations (all three
    # samples are logged: --bleu-samples 3).
    bleus = [float(v) for v in values(validation_events, "epoch_bleu")]
    assert len(bleus) == 2 and all(0.0 <= b <= 100.0 for b in bleus)
    assert summary["val_bleu"] == pytest.approx(bleus[1], abs=1e-4)
    logged = [values(validation_events, f"translation/sample_{i}")[-1].item().decode()
              for i in range(3)]
    references = [re.search(r"\*\*reference:\*\* (.*?)  \n", text).group(1) for text in logged]
    translations = [re.search(r"\*\*model:\*\* (.*)$", text).group(1) for text in logged]
    assert summary["val_bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(translations, [references]).score, abs=1e-4)
