"""`SubwordTokenizer`: a SentencePiece model run in the graph with TensorFlow Text ops.

Shape letters: B batch, L tokens per sentence.
"""

import json
import os
import shutil

import sentencepiece
import tensorflow as tf
import tensorflow_text as tf_text

from tf_transformer.config import END_ID, PAD_ID, START_ID, UNK_ID
from tf_transformer.text.normalization import normalize_text

# The reserved ids (defined in `tf_transformer.config`) are the same in every vocabulary (see
# `train_subword_tokenizer`).

MODEL_FILENAME = "sentencepiece.model"
CONFIG_FILENAME = "tokenizer.json"

_RESERVED = {PAD_ID: "pad", UNK_ID: "unk", START_ID: "bos", END_ID: "eos"}


def _check_reserved_ids(processor, model_file):
    """Raises ValueError unless the SentencePiece model uses PAD=0, UNK=1, START=2, END=3."""
    found = {
        "pad": processor.pad_id(),
        "unk": processor.unk_id(),
        "bos": processor.bos_id(),
        "eos": processor.eos_id(),
    }
    expected = {name: token_id for token_id, name in _RESERVED.items()}
    if found != expected:
        raise ValueError(
            f"SentencePiece model {model_file} has reserved ids {found}, expected {expected}. "
            "Train it with tf_transformer.text.train_subword_tokenizer."
        )


class SubwordTokenizer(tf.Module):
    """Tokenizes and detokenizes text with a SentencePiece model, entirely in TensorFlow ops.

    The module holds the `.model` file as a `tf.saved_model.Asset`, so a SavedModel that
    contains the tokenizer (for example as an attribute of the exported module) carries its
    vocabulary; every method is made of TensorFlow and TensorFlow Text ops and can be called
    inside a `tf.function`. Text is normalized (`normalize_text`: NFKC, white space, optional
    lowercasing) before SentencePiece sees it, exactly as when the vocabulary was trained.

    Reserved ids: PAD=0, UNK=1, START=2, END=3, also as the attributes `pad_id`, `unk_id`,
    `start_id`, `end_id` (the `TransformerConfig` fields of the same names default to them).
    `tokenize` adds no START/END.

    Seed TensorFlow (`keras.utils.set_random_seed`, `tf.random.set_seed`) before creating
    tokenizers: in eager mode setting the seed resets the context and drops the SentencePiece
    resource of tokenizers that already exist ("Resource ... does not exist").

    Args:
        model_file: str, path of a SentencePiece `.model` file with the reserved ids above.
        lowercase: bool, default False. Lowercase text before tokenizing (must match how the
            vocabulary was trained).
        name: str, default None. Module name.
    """

    pad_id = PAD_ID
    unk_id = UNK_ID
    start_id = START_ID
    end_id = END_ID

    def __init__(self, model_file, lowercase=False, name=None):
        super().__init__(name=name)
        model_file = os.fspath(model_file)
        if not os.path.isfile(model_file):
            raise ValueError(f"SentencePiece model file not found: {model_file!r}")
        with open(model_file, "rb") as f:
            model_proto = f.read()
        processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        _check_reserved_ids(processor, model_file)
        self.lowercase = bool(lowercase)
        self.vocab_size = int(processor.get_piece_size())
        self.model_file = tf.saved_model.Asset(model_file)
        self._sentencepiece = tf_text.SentencepieceTokenizer(
            model=model_proto, out_type=tf.int32
        )

    def normalize(self, strings):
        """Normalizes strings the way `tokenize` does before splitting them.

        Args:
            strings: tf.string tensor, any shape.

        Returns:
            tf.string tensor of the same shape.
        """
        return normalize_text(strings, lowercase=self.lowercase)

    def tokenize(self, strings):
        """Splits strings into subword ids (no START/END).

        Args:
            strings: tf.string tensor [B] (any rank works; a token axis is appended).

        Returns:
            `tf.RaggedTensor` int32 [B, (L)]. Characters missing from the vocabulary become
            UNK_ID.
        """
        return self._sentencepiece.tokenize(self.normalize(strings))

    def tokenize_padded(self, strings, max_length=None):
        """Tokenizes to a dense tensor padded with PAD_ID, for signatures and models.

        Args:
            strings: tf.string tensor [B].
            max_length: int or scalar int32 tensor, default None. If given, ids beyond it are
                cut off, so the result is at most [B, max_length].

        Returns:
            int32 tensor [B, L], L the longest sentence (capped at `max_length`).
        """
        ids = self.tokenize(strings)  # [B, (L)]
        if max_length is not None:
            ids = ids[:, :max_length]  # [B, (<=max_length)]
        return ids.to_tensor(default_value=PAD_ID)  # [B, L]

    def detokenize(self, ids):
        """Turns ids back into text.

        Everything from the first END_ID on is ignored, PAD_ID and START_ID are dropped, and
        ids outside the vocabulary are read as UNK_ID, so model outputs can be passed as they
        are.

        Args:
            ids: int tensor [B, L] or `tf.RaggedTensor` [B, (L)].

        Returns:
            tf.string tensor [B] of normalized text.
        """
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(default_value=PAD_ID)
        ids = tf.cast(tf.convert_to_tensor(ids), tf.int32)  # [B, L]
        ids = self._clip_to_vocabulary(ids)
        before_end = tf.cumsum(tf.cast(ids == END_ID, tf.int32), axis=-1) == 0  # [B, L]
        keep = before_end & (ids != PAD_ID) & (ids != START_ID)  # [B, L]
        return self._sentencepiece.detokenize(tf.ragged.boolean_mask(ids, keep))  # [B]

    def id_to_string(self, ids):
        """Maps ids to their subword pieces (e.g. "▁Hola"), for displaying tokens.

        Args:
            ids: int tensor or `tf.RaggedTensor`, any shape.

        Returns:
            tf.string tensor (or ragged) of the same shape. PAD_ID is "<pad>", START_ID "<s>",
            END_ID "</s>", UNK_ID "<unk>".
        """
        if isinstance(ids, tf.RaggedTensor):
            return ids.with_flat_values(self.id_to_string(ids.flat_values))
        ids = self._clip_to_vocabulary(tf.cast(ids, tf.int32))
        return self._sentencepiece.id_to_string(ids)

    def _clip_to_vocabulary(self, ids):
        outside = (ids < 0) | (ids >= self.vocab_size)
        return tf.where(outside, tf.constant(UNK_ID, tf.int32), ids)

    def save(self, directory):
        """Writes the `.model` file and the settings to `directory` (created if needed).

        Args:
            directory: str, destination folder; `SubwordTokenizer.load(directory)` reads it back.
        """
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        source = self.model_file.asset_path.numpy().decode("utf-8")
        destination = os.path.join(directory, MODEL_FILENAME)
        if not (os.path.exists(destination) and os.path.samefile(source, destination)):
            shutil.copyfile(source, destination)
        with open(os.path.join(directory, CONFIG_FILENAME), "w", encoding="utf-8") as f:
            json.dump(
                {"model_file": MODEL_FILENAME, "lowercase": self.lowercase,
                 "vocab_size": self.vocab_size},
                f,
                indent=2,
            )

    @classmethod
    def load(cls, directory, name=None):
        """Reads a tokenizer written by `save`.

        Args:
            directory: str, folder holding `tokenizer.json` and `sentencepiece.model`.
            name: str, default None. Module name.

        Returns:
            `SubwordTokenizer`.
        """
        directory = os.fspath(directory)
        config_path = os.path.join(directory, CONFIG_FILENAME)
        if not os.path.isfile(config_path):
            raise ValueError(
                f"No tokenizer in {directory!r}: expected {CONFIG_FILENAME} and {MODEL_FILENAME}."
            )
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        return cls(
            os.path.join(directory, config["model_file"]),
            lowercase=config["lowercase"],
            name=name,
        )
