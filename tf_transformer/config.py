"""Model hyperparameters: one frozen dataclass and its named presets.

The presets `base` and `big` are the rows of Table 3 of "Attention Is All You Need"
(Vaswani et al., 2017); `tiny` and `small` are scaled down for tests and CPU training.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

POSITION_ENCODINGS = ("interleaved", "concatenated", "learned")

# The reserved token ids of every vocabulary, and the defaults of the config fields below. The
# tokenizer (which reserves them when training a vocabulary), the masks and decoding read them
# from here or from a model's config; nothing else spells the numbers.
PAD_ID = 0
UNK_ID = 1
START_ID = 2
END_ID = 3


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Hyperparameters of an encoder-decoder Transformer.

    Args:
        source_vocab_size: int. Size of the source vocabulary (id 0 is padding).
        target_vocab_size: int. Size of the target vocabulary (id 0 is padding).
        num_encoder_layers: int, default 6. Encoder layers (N in the paper).
        num_decoder_layers: int, default 6. Decoder layers.
        d_model: int, default 512. Model width.
        num_heads: int, default 8. Attention heads (h); must divide `d_model`.
        d_ff: int, default 2048. Inner width of the position-wise feed-forward network.
        dropout: float, default 0.1. Residual, embedding and attention dropout rate (P_drop).
        attention_dropout: float or None, default None. Dropout on attention weights; `None`
            means the same as `dropout`.
        position_encoding: str, default "interleaved". "interleaved" (the paper's sin/cos of
            section 3.5), "concatenated" (Tensor2Tensor's sin block then cos block) or
            "learned" (a trained embedding per position).
        norm_first: bool, default False. Pre-layer-norm residual blocks (more stable for deep
            stacks) instead of the paper's post-layer-norm.
        share_embeddings: bool, default True. One embedding matrix for source, target and the
            output projection (section 3.4); needs equal vocabulary sizes.
        tie_output: bool, default True. Use the target embedding as the output projection.
        max_length: int, default 256. Longest sequence (positions) the model accepts.
        layer_norm_epsilon: float, default 1e-6.
        pad_id: int, default 0. Padding id: masked in attention, written after END.
        unk_id: int, default 1. Id of tokens missing from the vocabulary.
        start_id: int, default 2. First decoder input (START, "<s>").
        end_id: int, default 3. End of a sentence (END, "</s>"); decoding stops at it.
    """

    source_vocab_size: int
    target_vocab_size: int
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    d_model: int = 512
    num_heads: int = 8
    d_ff: int = 2048
    dropout: float = 0.1
    attention_dropout: float | None = None
    position_encoding: str = "interleaved"
    norm_first: bool = False
    share_embeddings: bool = True
    tie_output: bool = True
    max_length: int = 256
    layer_norm_epsilon: float = 1e-6
    pad_id: int = PAD_ID
    unk_id: int = UNK_ID
    start_id: int = START_ID
    end_id: int = END_ID

    def __post_init__(self):
        for name in ("source_vocab_size", "target_vocab_size", "num_encoder_layers",
                     "num_decoder_layers", "d_model", "num_heads", "d_ff", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer; received {name}={value!r}.")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"`d_model` must be divisible by `num_heads`; received d_model={self.d_model}, "
                f"num_heads={self.num_heads}.")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1); received {name}={value!r}.")
        if self.position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"`position_encoding` must be one of {POSITION_ENCODINGS}; received "
                f"position_encoding={self.position_encoding!r}.")
        special = {name: getattr(self, name) for name in SPECIAL_ID_FIELDS}
        for name, value in special.items():
            if not isinstance(value, int) or isinstance(value, bool) or not (
                    0 <= value < min(self.source_vocab_size, self.target_vocab_size)):
                raise ValueError(
                    f"`{name}` must be an id inside both vocabularies, in [0, "
                    f"{min(self.source_vocab_size, self.target_vocab_size)}); received "
                    f"{name}={value!r}.")
        if len(set(special.values())) != len(special):
            raise ValueError(f"The special token ids must differ; received {special}.")
        if self.share_embeddings and self.source_vocab_size != self.target_vocab_size:
            raise ValueError(
                "`share_embeddings=True` needs one shared vocabulary; received "
                f"source_vocab_size={self.source_vocab_size}, "
                f"target_vocab_size={self.target_vocab_size}.")

    @property
    def special_ids(self) -> dict[str, int]:
        """{"pad_id": ..., "unk_id": ..., "start_id": ..., "end_id": ...}."""
        return {name: getattr(self, name) for name in SPECIAL_ID_FIELDS}

    @property
    def head_size(self) -> int:
        return self.d_model // self.num_heads

    @property
    def effective_attention_dropout(self) -> float:
        return self.dropout if self.attention_dropout is None else self.attention_dropout

    def replace(self, **overrides: Any) -> TransformerConfig:
        """Returns a copy with `overrides` applied (validated again)."""
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransformerConfig:
        """Builds a config from `to_dict` output; fields added since (e.g. the special ids of
        an older config.json) take their defaults."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown TransformerConfig fields {unknown}; known: {sorted(known)}.")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TransformerConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TransformerConfig:
        """Returns preset `name` ("tiny", "small", "base", "big") with `overrides` applied.

        Vocabulary sizes are not part of a preset and must be given in `overrides` (a single
        `vocab_size=` sets both).
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        values = dict(PRESETS[name])
        vocab_size = overrides.pop("vocab_size", None)
        if vocab_size is not None:
            values["source_vocab_size"] = values["target_vocab_size"] = vocab_size
        values.update(overrides)
        if "source_vocab_size" not in values or "target_vocab_size" not in values:
            raise ValueError(
                "A preset needs the vocabulary size: pass vocab_size=... (shared) or "
                "source_vocab_size=... and target_vocab_size=....")
        return cls(**values)


SPECIAL_ID_FIELDS = ("pad_id", "unk_id", "start_id", "end_id")

PRESETS: dict[str, dict[str, Any]] = {
    # Seconds-scale unit tests and the copy task.
    "tiny": dict(num_encoder_layers=2, num_decoder_layers=2, d_model=64, num_heads=4, d_ff=128,
                 dropout=0.0, max_length=64),
    # Minutes-scale CPU training (the demo, Multi30k-sized corpora).
    "small": dict(num_encoder_layers=3, num_decoder_layers=3, d_model=256, num_heads=4,
                  d_ff=1024, dropout=0.1, max_length=128),
    # Table 3 of the paper, row "base".
    "base": dict(num_encoder_layers=6, num_decoder_layers=6, d_model=512, num_heads=8,
                 d_ff=2048, dropout=0.1, max_length=256),
    # Table 3 of the paper, row "big".
    "big": dict(num_encoder_layers=6, num_decoder_layers=6, d_model=1024, num_heads=16,
                d_ff=4096, dropout=0.3, max_length=256),
}
