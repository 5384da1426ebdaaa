"""Parallel corpora and the tf.data input pipeline.

Importing this package registers the TFDS builder of the bundled corpus, so that
`tfds.load("anki_spa_eng", ...)` works.
"""

from tf_transformer.data.anki_spa_eng_builder import AnkiSpaEng
from tf_transformer.data.datasets import (
    ParallelSplits,
    languages,
    load_parallel,
    load_splits,
    parse_dataset_name,
    sample_parallel,
)
from tf_transformer.data.pipeline import (
    bucket_batch_sizes,
    bucket_boundaries,
    distribute_batches,
    make_batches,
    make_distributed_batches_fn,
)
from tf_transformer.data.readers import (
    data_error_message,
    read_parallel_dir,
    sample_parallel_dir,
    stream_parallel_dir,
)

__all__ = [
    "AnkiSpaEng",
    "ParallelSplits",
    "bucket_batch_sizes",
    "bucket_boundaries",
    "data_error_message",
    "distribute_batches",
    "languages",
    "load_parallel",
    "load_splits",
    "make_batches",
    "make_distributed_batches_fn",
    "parse_dataset_name",
    "read_parallel_dir",
    "sample_parallel",
    "sample_parallel_dir",
    "stream_parallel_dir",
]
