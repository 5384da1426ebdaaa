"""Small shared settings for the trainer tests."""

import h5py
import numpy as np

from trainers.config import TrainingConfig

# Every synthetic word becomes one piece at this size (the largest SentencePiece allows on
# the synthetic corpus), so every sentence is exactly 5 tokens long.
SYNTHETIC_VOCAB = 58


def synthetic_training(corpus_dir, **overrides):
    """A TrainingConfig for the synthetic corpus: tiny batches, few steps, fast callbacks."""
    values = dict(data=f"dir:{corpus_dir}", source_lang="en", target_lang="es",
                  vocab_size=SYNTHETIC_VOCAB, batch_tokens=70, max_length=16, epochs=2,
                  steps_per_epoch=6, validation_steps=2, warmup_steps=20, bleu_samples=16,
                  attention_probes=0, verbose=0, seed=3)
    values.update(overrides)
    return TrainingConfig(**values)


def read_weights(path):
    """All arrays of a .weights.h5 file under "layers" (the model), by their h5 path."""
    arrays = {}
    with h5py.File(path, "r") as f:
        def visit(name, item):
            if isinstance(item, h5py.Dataset) and name.startswith("layers"):
                arrays[name] = np.array(item)
        f.visititems(visit)
    return arrays
