"""Runs an exported model's `attention` signature for the Attention dashboard's sentence box.

The export's `attention` signature (see `serving/export.py`) takes `text [B]` and returns
dense, padded tensors: `source_tokens [B, S]` and `target_tokens [B, T]` (pieces, "" at
padding; the target tokens are the decoder inputs, `<s>` then the translation's pieces),
`source_length` and `target_length [B]`, `translation [B]`, `encoder_self_attention
[B, L, N, S, S]`, `decoder_self_attention [B, L, N, T, T]` and `cross_attention [B, L, N, T, S]`.
`AttentionSignature` trims them to each sentence's real tokens, the form `write_attention`
takes.

Shape letters: B sentences, L layers, N heads, S source tokens, T target tokens.
"""

import os
import re
import threading

import numpy as np

SIGNATURE_NAME = "attention"
# Output name of the signature per attention kind.
KIND_OUTPUTS = {
    "encoder_self": "encoder_self_attention",
    "decoder_self": "decoder_self_attention",
    "cross": "cross_attention",
}
_TOKEN_OUTPUTS = ("source_tokens", "target_tokens", "source_length", "target_length",
                  "translation")


def resolve_saved_model(export_dir):
    """Returns the SavedModel folder of `export_dir`: itself, or its newest numbered version.

    Args:
        export_dir: str, a SavedModel folder (holds `saved_model.pb`) or a model's base folder
            of numbered versions (`EXPORT_BASE/NAME`).

    Raises:
        ValueError: if `export_dir` holds neither.
    """
    import tensorflow as tf

    if tf.io.gfile.exists(os.path.join(export_dir, "saved_model.pb")):
        return export_dir
    versions = []
    if tf.io.gfile.isdir(export_dir):
        versions = [
            int(name.rstrip("/")) for name in tf.io.gfile.listdir(export_dir)
            if re.fullmatch(r"\d+/?", name)
            and tf.io.gfile.exists(os.path.join(export_dir, name.rstrip("/"), "saved_model.pb"))
        ]
    if not versions:
        raise ValueError(
            f"{export_dir!r} is neither a SavedModel nor a folder of numbered SavedModel "
            "versions; point the Attention dashboard at an export (EXPORT_BASE/NAME or "
            "EXPORT_BASE/NAME/VERSION)."
        )
    return os.path.join(export_dir, str(max(versions)))


class AttentionSignature:
    """The `attention` signature of an export, loaded on first use and shared by threads.

    Args:
        export_dir: str, a SavedModel folder or a folder of numbered versions (the newest is
            used).
    """

    def __init__(self, export_dir):
        self.export_dir = export_dir
        self._function = None
        self._lock = threading.Lock()

    def _load(self):
        import tensorflow as tf

        saved_model_dir = resolve_saved_model(self.export_dir)
        loaded = tf.saved_model.load(saved_model_dir)
        if SIGNATURE_NAME not in loaded.signatures:
            raise ValueError(
                f"The SavedModel in {saved_model_dir!r} has no {SIGNATURE_NAME!r} signature "
                f"(it has {sorted(loaded.signatures)}); export it with tft-export."
            )
        function = loaded.signatures[SIGNATURE_NAME]
        missing = (set(_TOKEN_OUTPUTS) | set(KIND_OUTPUTS.values())) - set(
            function.structured_outputs)
        if missing:
            raise ValueError(
                f"The {SIGNATURE_NAME!r} signature in {saved_model_dir!r} lacks outputs "
                f"{sorted(missing)}."
            )
        # Keep `loaded` alive: the concrete function does not own the variables.
        self._loaded = loaded
        return function

    def __call__(self, sentences):
        """Runs the signature on `sentences` and trims the outputs to the real tokens.

        Args:
            sentences: list of str `[B]`.

        Returns:
            A list of B dicts with `source_tokens [S_b]` and `target_tokens [T_b]` (lists of
            str), `translation` (str) and `attention` (kind -> float32 `[L, N, Tq, Tk]`).

        Raises:
            ValueError: if the export has no usable `attention` signature.
        """
        import tensorflow as tf

        with self._lock:
            if self._function is None:
                self._function = self._load()
            outputs = self._function(text=tf.constant(list(sentences), tf.string))
        outputs = {name: value.numpy() for name, value in outputs.items()}
        results = []
        for index in range(len(sentences)):
            source_length = int(outputs["source_length"][index])
            target_length = int(outputs["target_length"][index])
            queries_keys = {
                "encoder_self": (source_length, source_length),
                "decoder_self": (target_length, target_length),
                "cross": (target_length, source_length),
            }
            attention = {}
            for kind, name in KIND_OUTPUTS.items():
                queries, keys = queries_keys[kind]
                attention[kind] = np.asarray(
                    outputs[name][index, :, :, :queries, :keys], np.float32)  # [L, N, Tq, Tk]
            results.append({
                "source_tokens": _texts(outputs["source_tokens"][index, :source_length]),
                "target_tokens": _texts(outputs["target_tokens"][index, :target_length]),
                "translation": outputs["translation"][index].decode("utf-8"),
                "attention": attention,
            })
        return results


def _texts(values):
    return [value.decode("utf-8") for value in np.asarray(values).tolist()]
