"""The bundled Anki English-Spanish corpus as the TFDS dataset "anki_spa_eng".

Importing this module registers the builder, after which
`tfds.load("anki_spa_eng", split="train", data_dir=...)` works offline: the source file ships
inside the package (tf_transformer/data/anki_spa_eng/spa.txt.gz, CC BY 2.0,
www.manythings.org/anki and tatoeba.org).

English sentences repeat with several Spanish translations, so the split is decided by a hash
of the English sentence: all pairs of one English sentence land in the same split and no test
sentence is seen in training.
"""

import gzip
import hashlib

import importlib_resources
import tensorflow_datasets as tfds

# Share of English sentences per split, in percent (train, validation, test).
SPLIT_PERCENT = {"train": 90, "validation": 5, "test": 5}


def source_path():
    """Returns the path-like of the bundled `spa.txt.gz`."""
    return importlib_resources.files("tf_transformer.data") / "anki_spa_eng" / "spa.txt.gz"


def split_of(english):
    """Returns the split ("train", "validation" or "test") an English sentence belongs to.

    Args:
        english: str, the English sentence with white space already normalized.
    """
    # md5 only as a stable, evenly spread hash (Python's hash() changes between processes).
    bucket = int.from_bytes(hashlib.md5(english.encode("utf-8")).digest()[:8], "big") % 100
    upper = 0
    for split, percent in SPLIT_PERCENT.items():
        upper += percent
        if bucket < upper:
            return split
    raise AssertionError("SPLIT_PERCENT must add up to 100")


def read_pairs():
    """Yields (line_number, english, spanish) from the bundled file, white space normalized."""
    with source_path().open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, start=1):
            english, spanish = line.rstrip("\n").split("\t")
            yield line_number, " ".join(english.split()), " ".join(spanish.split())


class AnkiSpaEng(tfds.core.GeneratorBasedBuilder):
    """English-Spanish sentence pairs from the Anki/Tatoeba collection (118,964 pairs)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "2018-05-13 build of manythings.org spa-eng, split 90/5/5 by "
                              "English sentence."}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "English-Spanish sentence pairs from www.manythings.org/anki (sentences from "
                "tatoeba.org), split into train/validation/test by a hash of the English "
                "sentence. License: CC BY 2.0."
            ),
            features=tfds.features.FeaturesDict(
                {"en": tfds.features.Text(), "es": tfds.features.Text()}
            ),
            supervised_keys=("en", "es"),
            homepage="http://www.manythings.org/anki/",
            citation="Attribution: www.manythings.org/anki and tatoeba.org (CC BY 2.0).",
            license="CC BY 2.0",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the file ships with the package.
        return {split: self._generate_examples(split) for split in SPLIT_PERCENT}

    def _generate_examples(self, split):
        for line_number, english, spanish in read_pairs():
            if split_of(english) == split:
                yield line_number, {"en": english, "es": spanish}
