"""Runs an export's `attention` signature for the Attention dashboard's sentence box.

The export's `attention` signature (`tf_transformer.translator.Translator.attention`) takes
`text [B]` and returns the tokens, the greedy translation and every attention weight, padded
to dense tensors; `tf_transformer.translator.split_attention` trims them per sentence, as
`tft-inspect` does, so the box and `tft-inspect` show the same weights.

TensorFlow and the translator are imported on first use: TensorBoard loads this plugin at
startup even when no export is given.
"""

import threading

SIGNATURE_NAME = "attention"


def resolve_saved_model(export_dir):
    """Returns the SavedModel folder of `export_dir`: itself, or its highest numbered version.

    Args:
        export_dir: str, a SavedModel folder (holds `saved_model.pb`) or a model's base folder
            of numbered versions (`EXPORT_BASE/NAME`, TF Serving's layout).

    Raises:
        ValueError: if `export_dir` holds neither.
    """
    from tf_transformer import versions

    try:
        return versions.latest_saved_model(export_dir)
    except ValueError as error:
        raise ValueError(f"{error} Point the Attention dashboard at an export of tft-export "
                         "(EXPORT_BASE/NAME or EXPORT_BASE/NAME/VERSION).") from None


class AttentionSignature:
    """The `attention` signature of an export, loaded on first use and shared by threads.

    Args:
        export_dir: str, a SavedModel folder or a folder of numbered versions (the highest is
            used).
    """

    def __init__(self, export_dir):
        self.export_dir = export_dir
        self._loaded = None
        self._lock = threading.Lock()

    def _signature(self):
        import tensorflow as tf

        with self._lock:
            if self._loaded is None:
                saved_model_dir = resolve_saved_model(self.export_dir)
                loaded = tf.saved_model.load(saved_model_dir)
                if SIGNATURE_NAME not in loaded.signatures:
                    raise ValueError(
                        f"The SavedModel in {saved_model_dir!r} has no {SIGNATURE_NAME!r} "
                        f"signature (it has {sorted(loaded.signatures)}); export it with "
                        "tft-export."
                    )
                self._loaded = loaded  # Keeps the variables the signature reads alive.
        return self._loaded.signatures[SIGNATURE_NAME]

    def __call__(self, sentences):
        """Runs the signature on `sentences` and trims the outputs to the real tokens.

        Args:
            sentences: list of str `[B]`.

        Returns:
            A list of B dicts, as `tf_transformer.translator.split_attention` returns them:
            `source_tokens`, `target_tokens`, `translation` and `attention` (kind -> float32
            `[L, N, Tq, Tk]`).

        Raises:
            ValueError: if the export has no usable `attention` signature.
        """
        import tensorflow as tf

        from tf_transformer.translator import split_attention

        signature = self._signature()
        return split_attention(signature(text=tf.constant(list(sentences), tf.string)))
