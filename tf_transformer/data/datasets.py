"""One way to name a parallel corpus everywhere: `anki_spa_eng`, `dir:PATH` or `tfds:NAME`.

- `anki_spa_eng`: the bundled English-Spanish corpus (TFDS builder in
  `anki_spa_eng_builder`, prepared offline into `data_dir` on first use); languages en, es.
- `dir:PATH`: aligned text files in a folder (see `readers`), e.g. `dir:/data/multi30k`,
  streamed from disk (memory does not grow with the corpus).
- `tfds:NAME`: a TFDS catalog translation dataset, e.g. `tfds:ted_hrlr_translate/pt_to_en`
  or `tfds:wmt14_translate/de-en` (downloaded by TFDS into `data_dir`).
"""

import dataclasses

import tensorflow as tf
import tensorflow_datasets as tfds

from tf_transformer.data import anki_spa_eng_builder  # noqa: F401  (registers the builder)
from tf_transformer.data.readers import sample_parallel_dir, stream_parallel_dir
from tf_transformer.text.vocabulary import reservoir_sample

BUNDLED = "anki_spa_eng"


def parse_dataset_name(name):
    """Splits a dataset name into (kind, argument), kind being "tfds" or "dir".

    Raises:
        ValueError: the name follows none of the accepted forms.
    """
    if name == BUNDLED:
        return "tfds", BUNDLED
    for kind in ("tfds", "dir"):
        prefix = kind + ":"
        if name.startswith(prefix) and len(name) > len(prefix):
            return kind, name[len(prefix):]
    raise ValueError(
        f"Unknown dataset name {name!r}: use {BUNDLED!r}, 'dir:PATH' (a folder of aligned "
        "text files) or 'tfds:NAME' (a TFDS translation dataset, e.g. "
        "'tfds:ted_hrlr_translate/pt_to_en')."
    )


def _tfds_languages(builder, source_lang, target_lang):
    """Fills in missing languages from the builder's supervised keys and checks them."""
    keys = builder.info.supervised_keys
    if source_lang is None or target_lang is None:
        if not keys or len(keys) != 2 or not all(isinstance(key, str) for key in keys):
            raise ValueError(
                f"TFDS dataset {builder.name!r} has no (source, target) supervised keys; pass "
                "source_lang and target_lang."
            )
        source_lang = source_lang or keys[0]
        target_lang = target_lang or keys[1]
    available = sorted(builder.info.features.keys())
    for lang in (source_lang, target_lang):
        if lang not in available:
            raise ValueError(
                f"Language {lang!r} is not a feature of TFDS dataset {builder.name!r}; "
                f"available: {available}"
            )
    return source_lang, target_lang


def languages(name, source_lang=None, target_lang=None, data_dir=None):
    """Returns the (source_lang, target_lang) a dataset name resolves to.

    Missing languages default to the supervised keys of TFDS datasets (en, es for
    `anki_spa_eng`); `dir:` datasets need both.
    """
    kind, argument = parse_dataset_name(name)
    if kind == "dir":
        if source_lang is None or target_lang is None:
            raise ValueError(f"{name!r} needs source_lang and target_lang (the file suffixes).")
        return source_lang, target_lang
    builder = tfds.builder(argument, data_dir=data_dir)
    return _tfds_languages(builder, source_lang, target_lang)


def load_parallel(name, split, source_lang=None, target_lang=None, data_dir=None):
    """Loads one split of a parallel corpus as (source_text, target_text) pairs.

    Args:
        name: str, `anki_spa_eng`, `dir:PATH` or `tfds:NAME`.
        split: str, e.g. "train", "validation", "test" (TFDS split syntax such as
            "train[:10%]" works for TFDS datasets; folders map validation/test to their own
            names, see `readers.resolve_split`).
        source_lang: str, default None (the dataset's first supervised key).
        target_lang: str, default None (the dataset's second supervised key).
        data_dir: str, default None. TFDS data folder (~/tensorflow_datasets if None).

    Returns:
        `tf.data.Dataset` of (source, target) scalar tf.string. For `dir:` folders it reads
        the files lazily and raises `tf.errors.InvalidArgumentError` naming the file (and
        line) on bad input when iterated (see `readers.stream_parallel_dir`).
    """
    kind, argument = parse_dataset_name(name)
    if kind == "dir":
        source_lang, target_lang = languages(name, source_lang, target_lang)
        return stream_parallel_dir(argument, split, source_lang, target_lang)
    builder = tfds.builder(argument, data_dir=data_dir)
    source_lang, target_lang = _tfds_languages(builder, source_lang, target_lang)
    builder.download_and_prepare()
    examples = builder.as_dataset(split=split, shuffle_files=False)
    return examples.map(
        lambda example: (example[source_lang], example[target_lang]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def sample_parallel(name, split, size, seed=0, source_lang=None, target_lang=None,
                    data_dir=None):
    """Draws `size` pairs uniformly from the whole of one split (e.g. to fit a vocabulary on).

    Plain-text `dir:` files are sampled by line number at disk speed
    (`readers.sample_parallel_dir`); anything else (gzipped files, TFDS datasets) is streamed
    through once with reservoir sampling.

    Args:
        name, split, source_lang, target_lang, data_dir: as for `load_parallel`.
        size: int, pairs to draw; a smaller split is returned whole.
        seed: int, default 0. The same seed and data give the same sample.

    Returns:
        (sources, targets): two lists of str or bytes of equal length.
    """
    kind, argument = parse_dataset_name(name)
    if kind == "dir":
        source_lang, target_lang = languages(name, source_lang, target_lang)
        sample = sample_parallel_dir(argument, split, source_lang, target_lang, size, seed)
        if sample is not None:
            return sample
    return reservoir_sample(load_parallel(name, split, source_lang, target_lang, data_dir),
                            size, seed=seed)


@dataclasses.dataclass(frozen=True)
class ParallelSplits:
    """The train/validation/test splits of a corpus, as (source, target) text datasets."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    source_lang: str
    target_lang: str


def load_splits(
    name,
    source_lang=None,
    target_lang=None,
    data_dir=None,
    train_split="train",
    validation_split="validation",
    test_split="test",
):
    """Loads the three splits of a corpus named as in `load_parallel`.

    Args:
        name: str, `anki_spa_eng`, `dir:PATH` or `tfds:NAME`.
        source_lang: str, default None (dataset default).
        target_lang: str, default None (dataset default).
        data_dir: str, default None. TFDS data folder.
        train_split: str, default "train".
        validation_split: str, default "validation".
        test_split: str, default "test" (for Multi30k folders: test_2016_flickr).

    Returns:
        `ParallelSplits` with the resolved language codes.
    """
    source_lang, target_lang = languages(name, source_lang, target_lang, data_dir)

    def load(split):
        return load_parallel(name, split, source_lang, target_lang, data_dir)

    return ParallelSplits(
        train=load(train_split),
        validation=load(validation_split),
        test=load(test_split),
        source_lang=source_lang,
        target_lang=target_lang,
    )
