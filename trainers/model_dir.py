"""The model directory: everything a trained model needs, under one folder.

```
MODEL_DIR/
  config.json            {"model": TransformerConfig, "training": TrainingConfig, "data": {...}}
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

`load_model_dir` rebuilds the model from it, so exporting needs nothing but the folder.
"""

import dataclasses
import json
import os
import warnings
from typing import Any, NamedTuple

import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the tokenizer uses)

from tf_transformer import Transformer, TransformerConfig
from tf_transformer.text import TokenizerPair
from trainers.config import TrainingConfig

CONFIG_FILENAME = "config.json"
CHECKPOINTS = ("best", "last")
# Written by keras.callbacks.BackupAndRestore next to its weights.
BACKUP_METADATA_FILENAME = "training_metadata.json"


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


class Configs(NamedTuple):
    """The three sections of config.json."""

    model: TransformerConfig
    training: TrainingConfig
    data: dict[str, Any]


def write_configs(model_dir, configs: Configs):
    """Writes config.json (creating the folder)."""
    model_dir = _paths(model_dir)
    os.makedirs(model_dir.root, exist_ok=True)
    document = {"model": configs.model.to_dict(), "training": configs.training.to_dict(),
                "data": configs.data}
    temporary = model_dir.config_path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, sort_keys=True)
    os.replace(temporary, model_dir.config_path)


def read_configs(model_dir) -> Configs:
    """Reads config.json of `model_dir`.

    Raises:
        ValueError: there is no config.json, or it lacks a section.
    """
    path = _paths(model_dir).config_path
    if not os.path.isfile(path):
        raise ValueError(f"{path} not found: {model_dir!r} is not a model directory written by "
                         "tft-train.")
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    missing = sorted({"model", "training", "data"} - set(document))
    if missing:
        raise ValueError(f"{path} lacks the sections {missing}.")
    return Configs(model=TransformerConfig.from_dict(document["model"]),
                   training=TrainingConfig.from_dict(document["training"]),
                   data=document["data"])


def load_model_dir(model_dir, checkpoint="best", dtype=None):
    """Rebuilds the trained model, its tokenizers and its configs from a model directory.

    Args:
        model_dir: str, a folder written by `tft-train`.
        checkpoint: str, default "best". "best" (best validation BLEU), "last" (last finished
            epoch) or the path of a `.weights.h5` file.
        dtype: Keras dtype policy for the rebuilt model, default None (float32).

    Returns:
        (model, tokenizers, configs): a built `tf_transformer.Transformer` with the weights
        loaded, a `TokenizerPair`, and `Configs(model, training, data)`.

    Raises:
        ValueError: the folder is not a model directory or the checkpoint does not exist.
    """
    paths = _paths(model_dir)
    configs = read_configs(paths)
    weights = paths.checkpoint(checkpoint) if checkpoint in CHECKPOINTS else os.fspath(checkpoint)
    if not os.path.isfile(weights):
        raise ValueError(f"Checkpoint {weights} not found (checkpoint={checkpoint!r}); has "
                         "training finished an epoch?")
    tokenizers = TokenizerPair.load(paths.tokenizer_dir)
    model = Transformer(configs.model, dtype=dtype)
    with warnings.catch_warnings():
        # Checkpoints of a compiled model also hold optimizer state, which inference skips.
        warnings.filterwarnings("ignore", message=".*optimizer.*")
        model.load_weights(weights)
    return model, tokenizers, configs


def resume_epoch(model_dir) -> int:
    """The epoch a restarted run continues from: what `BackupAndRestore` will restore, or 0."""
    path = os.path.join(_paths(model_dir).backup_dir, BACKUP_METADATA_FILENAME)
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["epoch"])


def read_best(model_dir):
    """Returns {"epoch", "monitor", "value"} of the best checkpoint so far, or None."""
    path = _paths(model_dir).best_record_path
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_best(model_dir, epoch, monitor, value):
    """Records which epoch (1-based) `checkpoints/best.weights.h5` comes from, and its score."""
    paths = _paths(model_dir)
    os.makedirs(paths.checkpoints_dir, exist_ok=True)
    with open(paths.best_record_path, "w", encoding="utf-8") as f:
        json.dump({"epoch": int(epoch), "monitor": monitor, "value": float(value)}, f, indent=2)


def _paths(model_dir):
    return model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)


STEP_COUNTS_FILENAME = "step_counts.json"


def read_step_count(model_dir, name, settings):
    """Returns the steps of one pass counted by an earlier run, or None.

    Args:
        model_dir: str or `ModelDir`.
        name: str, what was counted ("epoch" or "validation").
        settings: dict, what the count depends on (data, batching, replicas); a count made
            with other settings is not returned.
    """
    path = os.path.join(_paths(model_dir).root, STEP_COUNTS_FILENAME)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        record = json.load(f).get(name)
    if record is None or record["settings"] != settings:
        return None
    return int(record["steps"])


def write_step_count(model_dir, name, settings, steps):
    """Stores the steps of one pass (see `read_step_count`) in MODEL_DIR/step_counts.json."""
    paths = _paths(model_dir)
    os.makedirs(paths.root, exist_ok=True)
    path = os.path.join(paths.root, STEP_COUNTS_FILENAME)
    counts = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            counts = json.load(f)
    counts[name] = {"settings": settings, "steps": int(steps)}
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(counts, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)
