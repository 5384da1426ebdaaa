"""Training settings: one frozen dataclass, separate from the model's `TransformerConfig`."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
MIXED_PRECISION_POLICIES = {"none": None, "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How to train: data, vocabulary, batching, schedule, distribution and checkpoints.

    Args:
        data: str, default "anki_spa_eng". Dataset name: "anki_spa_eng", "dir:PATH" or
            "tfds:NAME" (see `tf_transformer.data.load_parallel`).
        data_dir: str or None, default None. TFDS data folder (~/tensorflow_datasets if None).
        source_lang: str or None, default None (the dataset's first supervised key).
        target_lang: str or None, default None (the dataset's second supervised key).
        max_train_examples: int or None, default None. Train (and fit the vocabulary) on the
            first this many training pairs only; None uses them all.
        vocab_size: int, default 8000. Subword vocabulary size (each side when not shared).
        shared_vocab: bool, default True. One vocabulary for both languages.
        lowercase: bool, default False. Lowercase text before tokenizing.
        vocab_sample_size: int or None, default 250000. Pairs drawn uniformly from the whole
            training corpus to fit the vocabulary on (`data.sample_parallel`: by line number
            in plain-text folders, else one streaming read), so sentences per side; None uses
            every pair.
        batch_tokens: int, default 4096. Token budget of one batch per replica and side
            (source and target each stay within it); the global batch is this times the
            number of replicas (and `accumulate_steps`).
        accumulate_steps: int, default 1. Micro-batches per optimizer step (gradient
            accumulation): one step then trains on batch_tokens x replicas x accumulate_steps
            tokens per side, weighted exactly as one batch of that size. Steps, intervals and
            the learning rate schedule count optimizer steps.
        max_length: int, default 64. Longest source/target sequence in tokens; longer pairs
            are dropped from training.
        shuffle_buffer: int, default 20000. Pairs in the shuffle buffer.
        epochs: int, default 10. Passes over the training data; ignored when `train_steps`
            is given.
        train_steps: int or None, default None. Length of the run in optimizer steps, as the
            paper counts it (the data is streamed without counting it first); None runs
            `epochs` passes.
        steps_per_epoch: int or None, default None. Steps between evaluations and
            checkpoints (a Keras epoch). None: min(train_steps, 1000) with `train_steps`, else
            one pass over the training data, counted once and stored in the model directory
            (a resumed run reads it).
        validation_steps: int or None, default None. None: one pass over the validation split.
        warmup_steps: int, default 4000. Linear warmup of the paper's schedule (section 5.3).
        learning_rate_scale: float, default 1.0. Multiplies the schedule.
        adam_beta_1: float, default 0.9.
        adam_beta_2: float, default 0.98 (the paper).
        adam_epsilon: float, default 1e-9 (the paper).
        label_smoothing: float, default 0.1 (the paper's eps_ls).
        strategy: str, default "auto". One of `STRATEGIES`.
        tpu: str or None, default None. TPU name or grpc:// address for the resolver.
        mixed_precision: str, default "none". "none", "bf16" or "fp16" (with loss scaling).
        jit_compile: bool, default False. Compile the train/eval steps with XLA.
        seed: int, default 0. Seeds weights, dropout and the data order.
        bleu_samples: int, default 200. Validation sentences decoded greedily each epoch for
            BLEU; 0 disables BLEU (and the best checkpoint is then the last one).
        bleu_batch_tokens: int, default 4096. Padded source words per batch decoded for BLEU
            (see `tf_transformer.translator.translate_in_batches`).
        attention_probes: int, default 2. Validation sentences whose attention is written to
            TensorBoard each epoch; 0 disables the attention summaries.
        attention_images: bool, default True. Also write attention heatmap images.
        backup_every_steps: int or None, default None. None: back up the training state at
            the end of every epoch (a restarted run redoes at most the epoch it was in, from
            that epoch's start, so the result equals an uninterrupted run). An integer backs up
            every that many steps as well; Keras then restarts the interrupted epoch from
            the saved weights, so its first batches are seen twice.
        keep_checkpoints: int, default 5. Interval checkpoints (the weights at the end of each
            epoch, checkpoints/step_STEP.weights.h5) kept; older ones are deleted. 0 keeps none.
            `tft-export --average-last N` averages the last N of them.
        early_stopping_patience: int or None, default None. Stop when validation BLEU has not
            improved for this many epochs (needs bleu_samples > 0); None never stops early.
        max_minutes: float or None, default None. Time budget of the run (start-up included):
            no epoch is started that would not end within it, judged by the longest epoch so
            far, so the run stops at an epoch end with its checkpoints and backup written and
            resumes from there. None: no budget.
        verbose: int, default 1. Keras progress output: 0 silent, 1 progress bar, 2 one line
            per epoch.
    """

    data: str = "anki_spa_eng"
    data_dir: str | None = None
    source_lang: str | None = None
    target_lang: str | None = None
    max_train_examples: int | None = None
    vocab_size: int = 8000
    shared_vocab: bool = True
    lowercase: bool = False
    vocab_sample_size: int | None = 250_000
    batch_tokens: int = 4096
    accumulate_steps: int = 1
    max_length: int = 64
    shuffle_buffer: int = 20_000
    epochs: int = 10
    train_steps: int | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    warmup_steps: int = 4000
    learning_rate_scale: float = 1.0
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.98
    adam_epsilon: float = 1e-9
    label_smoothing: float = 0.1
    strategy: str = "auto"
    tpu: str | None = None
    mixed_precision: str = "none"
    jit_compile: bool = False
    seed: int = 0
    bleu_samples: int = 200
    bleu_batch_tokens: int = 4096
    attention_probes: int = 2
    attention_images: bool = True
    backup_every_steps: int | None = None
    keep_checkpoints: int = 5
    early_stopping_patience: int | None = None
    max_minutes: float | None = None
    verbose: int = 1

    def __post_init__(self):
        positive = ("vocab_size", "batch_tokens", "accumulate_steps", "max_length", "epochs",
                    "warmup_steps", "bleu_batch_tokens")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer; received {name}={value!r}.")
        optional_positive = ("max_train_examples", "vocab_sample_size", "train_steps",
                             "steps_per_epoch", "validation_steps", "backup_every_steps",
                             "early_stopping_patience")
        for name in optional_positive:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(
                    f"`{name}` must be None or a positive integer; received {name}={value!r}.")
        for name in ("bleu_samples", "attention_probes", "shuffle_buffer", "seed",
                     "keep_checkpoints"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative integer; received "
                                 f"{name}={value!r}.")
        if self.batch_tokens < self.max_length:
            raise ValueError(
                f"`batch_tokens` must be at least `max_length` so that the longest pair fits in "
                f"a batch; received batch_tokens={self.batch_tokens}, "
                f"max_length={self.max_length}.")
        if self.early_stopping_patience is not None and not self.bleu_samples:
            raise ValueError(
                "`early_stopping_patience` stops on validation BLEU, which bleu_samples=0 "
                f"disables; received early_stopping_patience={self.early_stopping_patience}. "
                "Set bleu_samples > 0 or drop early_stopping_patience.")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"`max_minutes` must be None or positive; received "
                             f"max_minutes={self.max_minutes!r}.")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"`strategy` must be one of {STRATEGIES}; received "
                             f"strategy={self.strategy!r}.")
        if self.mixed_precision not in MIXED_PRECISION_POLICIES:
            raise ValueError(
                f"`mixed_precision` must be one of {tuple(MIXED_PRECISION_POLICIES)}; received "
                f"mixed_precision={self.mixed_precision!r}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1); received "
                             f"label_smoothing={self.label_smoothing!r}.")
        if self.learning_rate_scale <= 0:
            raise ValueError(f"`learning_rate_scale` must be positive; received "
                             f"learning_rate_scale={self.learning_rate_scale!r}.")
        for name in ("adam_beta_1", "adam_beta_2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1); received {name}={value!r}.")
        if self.adam_epsilon <= 0:
            raise ValueError(f"`adam_epsilon` must be positive; received "
                             f"adam_epsilon={self.adam_epsilon!r}.")

    @property
    def dtype_policy(self) -> str | None:
        """The Keras dtype policy name for the model ("mixed_bfloat16", ...) or None."""
        return MIXED_PRECISION_POLICIES[self.mixed_precision]

    def replace(self, **overrides: Any) -> TrainingConfig:
        """Returns a copy with `overrides` applied (validated again)."""
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        # Model directories written before the vocabulary was sampled from the whole corpus
        # record `vocab_sentences`, a setting that no longer exists.
        values = {key: value for key, value in values.items() if key != "vocab_sentences"}
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown TrainingConfig fields {unknown}; known: {sorted(known)}.")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
