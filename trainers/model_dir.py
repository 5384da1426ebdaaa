"""Writing a model directory: its config.json, the best-checkpoint record, resume state.

The layout, and everything that only reads it (paths, the stored model config, the best
record, rebuilding the model), is `tf_transformer.model_dir`; this module holds what the
trainer alone writes or needs:

- `write_configs`: config.json with the model, training and data sections.
- `write_best`: checkpoints/best.json, which epoch `best.weights.h5` comes from.
- `resume_epoch`: the epoch a restarted run continues from (`BackupAndRestore`'s state).
- `read_step_count` / `write_step_count`: MODEL_DIR/step_counts.json, the steps of one pass
  over the data, counted once (only when a run asks for whole passes) and never again.
"""

import json
import os
from typing import Any, NamedTuple

from tf_transformer import TransformerConfig
from tf_transformer.model_dir import as_model_dir
from trainers.config import TrainingConfig

# Written by keras.callbacks.BackupAndRestore next to its weights.
BACKUP_METADATA_FILENAME = "training_metadata.json"


class Configs(NamedTuple):
    """The three sections of config.json."""

    model: TransformerConfig
    training: TrainingConfig
    data: dict[str, Any]


def write_configs(model_dir, configs: Configs):
    """Writes config.json (creating the folder)."""
    paths = as_model_dir(model_dir)
    os.makedirs(paths.root, exist_ok=True)
    document = {"model": configs.model.to_dict(), "training": configs.training.to_dict(),
                "data": configs.data}
    temporary = paths.config_path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, sort_keys=True)
    os.replace(temporary, paths.config_path)


def write_best(model_dir, epoch, monitor, value):
    """Records which epoch (1-based) `checkpoints/best.weights.h5` comes from, and its score."""
    paths = as_model_dir(model_dir)
    os.makedirs(paths.checkpoints_dir, exist_ok=True)
    with open(paths.best_record_path, "w", encoding="utf-8") as f:
        json.dump({"epoch": int(epoch), "monitor": monitor, "value": float(value)}, f, indent=2)


def resume_epoch(model_dir) -> int:
    """The epoch a restarted run continues from: what `BackupAndRestore` will restore, or 0."""
    path = os.path.join(as_model_dir(model_dir).backup_dir, BACKUP_METADATA_FILENAME)
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["epoch"])


STEP_COUNTS_FILENAME = "step_counts.json"


def read_step_count(model_dir, name, settings):
    """Returns the steps of one pass counted by an earlier run, or None.

    Args:
        model_dir: str or `ModelDir`.
        name: str, what was counted ("epoch" or "validation").
        settings: dict, what the count depends on (data, batching, replicas); a count made
            with other settings is not returned.
    """
    path = os.path.join(as_model_dir(model_dir).root, STEP_COUNTS_FILENAME)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        record = json.load(f).get(name)
    if record is None or record["settings"] != settings:
        return None
    return int(record["steps"])


def write_step_count(model_dir, name, settings, steps):
    """Stores the steps of one pass (see `read_step_count`) in MODEL_DIR/step_counts.json."""
    paths = as_model_dir(model_dir)
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
