"""Reading a model directory: everything a trained model needs, under one folder.

```
MODEL_DIR/
  config.json            {"model": TransformerConfig, "training": {...}, "data": {...}}
  tokenizer/             the vocabularies (TokenizerPair.save)
  checkpoints/
    best.weights.h5      weights of the epoch with the best validation BLEU
    best.json            {"epoch": ..., "monitor": "val_bleu", "value": ...} of that epoch
    last.weights.h5      weights after the last finished epoch
  backup/                keras.callbacks.BackupAndRestore state (weights + optimizer + epoch)
  step_counts.json       steps of one pass over the training/validation data, counted once
  logs/                  TensorBoard: train/, validation/, attention/, embeddings*/
  workers/worker_N/      multi-worker runs: what workers other than the chief write
```

The trainer writes the folder (`trainers.model_dir`); everything that only reads it (export,
translation, benchmarks) goes through this module, so `load_model` rebuilds a trained model
from the folder alone. The "training" and "data" sections are the trainer's; they are read
here as plain dicts.
"""

import dataclasses
import json
import os
import warnings

import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the tokenizer uses)

from tf_transformer.config import TransformerConfig
from tf_transformer.model import Transformer
from tf_transformer.text import TokenizerPair

CONFIG_FILENAME = "config.json"
CONFIG_SECTIONS = ("model", "training", "data")
CHECKPOINTS = ("best", "last")


@dataclasses.dataclass(frozen=True)
class ModelDir:
    """Paths inside a model directory.

    Args:
        root: str, the model directory.
    """

    root: str

    def __post_init__(self):
        object.__setattr__(self, "root", os.fspath(self.root))

    @property
    def config_path(self) -> str:
        return os.path.join(self.root, CONFIG_FILENAME)

    @property
    def tokenizer_dir(self) -> str:
        return os.path.join(self.root, "tokenizer")

    @property
    def checkpoints_dir(self) -> str:
        return os.path.join(self.root, "checkpoints")

    def checkpoint(self, which: str) -> str:
        """Path of checkpoint `which` ("best" or "last")."""
        if which not in CHECKPOINTS:
            raise ValueError(f"`checkpoint` must be one of {CHECKPOINTS} or a path to a "
                             f".weights.h5 file; received {which!r}.")
        return os.path.join(self.checkpoints_dir, f"{which}.weights.h5")

    @property
    def best_record_path(self) -> str:
        return os.path.join(self.checkpoints_dir, "best.json")

    @property
    def backup_dir(self) -> str:
        return os.path.join(self.root, "backup")

    @property
    def logs_dir(self) -> str:
        return os.path.join(self.root, "logs")

    def for_worker(self, index: int) -> "ModelDir":
        """Where worker `index` (not the chief) of a multi-worker run writes its own files."""
        return ModelDir(os.path.join(self.root, "workers", f"worker_{index}"))


def as_model_dir(model_dir) -> ModelDir:
    """`model_dir` (str, path or `ModelDir`) as a `ModelDir`."""
    return model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)


def read_config_document(model_dir) -> dict:
    """Reads config.json of `model_dir` as a dict with the sections "model", "training", "data".

    Raises:
        ValueError: there is no config.json, or it lacks a section.
    """
    paths = as_model_dir(model_dir)
    path = paths.config_path
    if not os.path.isfile(path):
        raise ValueError(f"{path} not found: {paths.root!r} is not a model directory written by "
                         "tft-train.")
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    missing = sorted(set(CONFIG_SECTIONS) - set(document))
    if missing:
        raise ValueError(f"{path} lacks the sections {missing}.")
    return document


def read_model_config(model_dir) -> TransformerConfig:
    """The `TransformerConfig` stored in config.json of `model_dir`."""
    return TransformerConfig.from_dict(read_config_document(model_dir)["model"])


def read_best(model_dir):
    """Returns {"epoch", "monitor", "value"} of the best checkpoint so far, or None."""
    path = as_model_dir(model_dir).best_record_path
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_model(model_dir, checkpoint="best", dtype=None):
    """Rebuilds the trained model and its tokenizers from a model directory.

    Args:
        model_dir: str, a folder written by `tft-train`.
        checkpoint: str, default "best". "best" (best validation BLEU), "last" (last finished
            epoch) or the path of a `.weights.h5` file.
        dtype: Keras dtype policy for the rebuilt model, default None (float32).

    Returns:
        (model, tokenizers): a built `tf_transformer.Transformer` with the weights loaded
        (its `transformer_config` is the stored one) and a `TokenizerPair`.

    Raises:
        ValueError: the folder is not a model directory or the checkpoint does not exist.
    """
    paths = as_model_dir(model_dir)
    config = read_model_config(paths)
    weights = paths.checkpoint(checkpoint) if checkpoint in CHECKPOINTS else os.fspath(checkpoint)
    if not os.path.isfile(weights):
        raise ValueError(f"Checkpoint {weights} not found (checkpoint={checkpoint!r}); has "
                         "training finished an epoch?")
    tokenizers = TokenizerPair.load(paths.tokenizer_dir)
    model = Transformer(config, dtype=dtype)
    with warnings.catch_warnings():
        # Checkpoints of a compiled model also hold optimizer state, which inference skips.
        warnings.filterwarnings("ignore", message=".*optimizer.*")
        model.load_weights(weights)
    return model, tokenizers
