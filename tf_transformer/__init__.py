"""tf-transformer: the Transformer of "Attention Is All You Need" as Keras 3 layers."""

# `data` registers the TFDS builder.
from tf_transformer import data, decoding, layers, model_dir, text, translator
from tf_transformer.config import PRESETS, TransformerConfig
from tf_transformer.losses import MaskedSparseCategoricalCrossentropy
from tf_transformer.metrics import MaskedAccuracy
from tf_transformer.model import Transformer
from tf_transformer.schedules import WarmupInverseSqrtSchedule

__all__ = [
    "PRESETS", "MaskedAccuracy", "MaskedSparseCategoricalCrossentropy", "Transformer",
    "TransformerConfig", "WarmupInverseSqrtSchedule", "data", "decoding", "layers",
    "model_dir", "text", "translator",
]
