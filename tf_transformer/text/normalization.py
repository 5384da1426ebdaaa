"""In-graph text normalization shared by vocabulary training and the tokenizer.

The same TensorFlow ops normalize the sentences a vocabulary is trained on and the strings the
tokenizer sees at training, evaluation and serving time, so an exported graph treats text
exactly as training did.
"""

import tensorflow as tf
import tensorflow_text as tf_text

# Any run of white space (ASCII white space and the Unicode separator categories, which include
# the non-breaking space) becomes one ASCII space.
_WHITESPACE_RUN = r"[\s\p{Z}]+"


def normalize_text(strings, lowercase=False):
    """Normalizes UTF-8 strings: NFKC, single spaces, no outer spaces, optional lowercasing.

    Args:
        strings: `tf.Tensor` (or anything convertible to one) of UTF-8 strings, any shape.
        lowercase: bool, default False. Also lowercase the text (Unicode-aware).

    Returns:
        `tf.Tensor` of tf.string with the shape of `strings`.
    """
    strings = tf.convert_to_tensor(strings, dtype=tf.string)
    strings = tf_text.normalize_utf8(strings, "NFKC")
    strings = tf.strings.regex_replace(strings, _WHITESPACE_RUN, " ")
    strings = tf.strings.strip(strings)
    if lowercase:
        strings = tf.strings.lower(strings, encoding="utf-8")
    return strings
