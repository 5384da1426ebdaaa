"""Reading aligned parallel text from a folder as a stream, with clear errors for bad input.

Two layouts are understood, each optionally gzipped (`.gz`):

- one file per language, `{split}.{lang}`: line i of `train.en` translates line i of
  `train.de` (the Multi30k layout);
- one tab-separated file per split, `{split}.{lang1}-{lang2}.tsv`: column 1 is lang1, column 2
  is lang2 (further columns, such as an attribution, are ignored).

Files are read lazily with `tf.data.TextLineDataset` (only "\\n" ends a line; a "\\r" before
it is dropped), a batch of lines at a time, so memory does not depend on the corpus size.
White space is normalized (any run of spaces, tabs or non-breaking spaces becomes one space;
none at either end) and pairs with an empty side are skipped.

Bad input fails while streaming, with `tf.errors.InvalidArgumentError` whose message names the
file (and line): invalid UTF-8, a TSV line without a tab, and files of different lengths. The
length check costs nothing up front: each file's batches of lines end with an end marker, the
two sides are zipped, and the first step where one side has lines and the other has fewer
(or its end marker) fails. Only then are both files counted (a streaming pass) for the message.
So a mismatch is reported when the stream first reaches the end of the shorter file, not
before training starts; a run that counts an epoch's steps first reaches it while counting.
`read_parallel_dir` reads a whole split into lists and raises these errors as `ValueError`.
"""

import os
import re
import warnings

import numpy as np
import tensorflow as tf

_VALIDATION_NAMES = ("validation", "valid", "val", "dev")
# Lines read, checked and normalized at once (vectorized), then unbatched into pairs.
_LINES_PER_BATCH = 1024
_READ_BUFFER_BYTES = 1 << 20
# Bytes read at once when counting lines or picking sampled lines out of a plain-text file.
_SAMPLE_CHUNK_BYTES = 1 << 24
_NEWLINE = ord("\n")
# The white space Python's str.split() splits on: the Unicode separators (\p{Z}), ASCII white
# space and the C0/C1 separators it also counts.
_WHITESPACE = r"\p{Z}\t\n\x{0B}\x{0C}\r\x{1C}-\x{1F}\x{85}"
_WHITESPACE_RUN = f"[{_WHITESPACE}]+"
# Fast checks (a full match costs far less than a replacement or a transcoding): RE2 matches
# no invalid UTF-8 (nor encoded surrogates, \p{Cs}), so only the lines failing them are
# transcoded or rewritten.
_VALID_UTF8 = r"[^\p{Cs}]*"
_WORD = f"[^{_WHITESPACE}\\p{{Cs}}]+"
_NORMALIZED = f"{_WORD}(?: {_WORD})*"
_ASSERTION = re.compile(r"assertion failed: \[(.*?)\](?:\n|$)", re.DOTALL)


def normalize_whitespace(strings):
    """Collapses every run of white space to one space and strips both ends, in the graph.

    The white space is what Python's `str.split()` splits on (Unicode separators included),
    so the result equals `" ".join(text.split())` for each string.

    Args:
        strings: tf.string tensor of valid UTF-8, any shape.

    Returns:
        tf.string tensor of the same shape.
    """
    strings = tf.convert_to_tensor(strings, tf.string)
    flat = tf.reshape(strings, [-1])
    todo = tf.where(~tf.strings.regex_full_match(flat, _NORMALIZED))  # [M, 1]
    fixed = tf.strings.strip(tf.strings.regex_replace(tf.gather_nd(flat, todo),
                                                      _WHITESPACE_RUN, " "))
    return tf.reshape(tf.tensor_scatter_nd_update(flat, todo, fixed), tf.shape(strings))


def _existing(directory, filename):
    """Returns the path of `filename` or `filename.gz` in `directory`, or None."""
    found = [
        os.path.join(directory, name)
        for name in (filename, filename + ".gz")
        if os.path.isfile(os.path.join(directory, name))
    ]
    if len(found) > 1:
        raise ValueError(f"Both {found[0]} and {found[1]} exist; keep only one of them.")
    return found[0] if found else None


def find_split_files(directory, split, source_lang, target_lang):
    """Locates the files of one split.

    Args:
        directory: str, the data folder.
        split: str, split name (file prefix), e.g. "train" or "test_2016_flickr".
        source_lang: str, e.g. "en".
        target_lang: str, e.g. "de".

    Returns:
        ("aligned", source_path, target_path) or ("tsv", path, source_column, target_column).

    Raises:
        FileNotFoundError: no file for the split; the message lists the names looked for and
            the files of the folder.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Data folder not found: {directory!r}")
    source = _existing(directory, f"{split}.{source_lang}")
    target = _existing(directory, f"{split}.{target_lang}")
    if source and target:
        return ("aligned", source, target)
    for columns, (first, second) in (
        ((0, 1), (source_lang, target_lang)),
        ((1, 0), (target_lang, source_lang)),
    ):
        tsv = _existing(directory, f"{split}.{first}-{second}.tsv")
        if tsv:
            return ("tsv", tsv, *columns)
    expected = (
        f"{split}.{source_lang} and {split}.{target_lang}, or {split}.{source_lang}-"
        f"{target_lang}.tsv or {split}.{target_lang}-{source_lang}.tsv (each optionally .gz)"
    )
    if source or target:
        present = source or target
        missing = f"{split}.{target_lang if source else source_lang}"
        raise FileNotFoundError(
            f"Found {present} but not {os.path.join(directory, missing)}[.gz]; expected "
            f"{expected}."
        )
    raise FileNotFoundError(
        f"No data for split {split!r} ({source_lang}-{target_lang}) in {directory}: expected "
        f"{expected}. Files there: {sorted(os.listdir(directory))}"
    )


def split_names(directory):
    """Returns the split names (file prefixes before the first dot) present in a folder."""
    return sorted({name.split(".", 1)[0] for name in os.listdir(directory) if "." in name})


def resolve_split(directory, split):
    """Maps "validation" and "test" to the names a folder uses.

    "validation" may be stored as validation/valid/val/dev; "test" as test, or else the first
    (sorted) name starting with "test" (e.g. test_2016_flickr in Multi30k). Other names are
    returned unchanged.
    """
    present = split_names(directory) if os.path.isdir(directory) else []
    if split in present:
        return split
    if split == "validation":
        for name in _VALIDATION_NAMES:
            if name in present:
                return name
    if split == "test":
        tests = [name for name in present if name.startswith("test")]
        if tests:
            return tests[0]
    return split




def stream_parallel_dir(directory, split, source_lang, target_lang):
    """Streams one split of parallel text from a folder, checking it as it goes.

    Args:
        directory: str, the data folder.
        split: str, file prefix of the split ("validation" and "test" are resolved with
            `resolve_split`).
        source_lang: str, source language code as used in the file names.
        target_lang: str, target language code.

    Returns:
        `tf.data.Dataset` of (source, target) scalar tf.string, white space normalized,
        without pairs that have an empty side. Iterating it raises
        `tf.errors.InvalidArgumentError` naming the file (and line) for files of different
        lengths, invalid UTF-8 or a TSV line without a tab.

    Raises:
        FileNotFoundError: missing files (found when the stream is made).
    """
    def non_empty(line_numbers, sources, targets):
        keep = tf.logical_and(tf.strings.length(sources) > 0,
                              tf.strings.length(targets) > 0)  # [L]
        return tf.boolean_mask(sources, keep), tf.boolean_mask(targets, keep)

    batches = _numbered_batches(directory, split, source_lang, target_lang)
    # Everything before runs on batches of lines: per-line work only in unbatch.
    return batches.map(non_empty, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def read_parallel_dir(directory, split, source_lang, target_lang):
    """Reads and checks a whole split into lists (for small splits: tests, evaluation sets).

    Pairs with an empty side are skipped and counted in a warning.

    Args:
        directory, split, source_lang, target_lang: as for `stream_parallel_dir`.

    Returns:
        (sources, targets): two lists of str of equal length.

    Raises:
        FileNotFoundError: missing files.
        ValueError: different line counts, invalid UTF-8 or a TSV line without a tab.
    """
    sources, targets, empty_lines = [], [], []
    last_line = 0
    try:
        batches = _numbered_batches(directory, split, source_lang, target_lang)
        for line_numbers, batch_sources, batch_targets in batches.as_numpy_iterator():
            for line_number, source, target in zip(line_numbers, batch_sources,
                                                   batch_targets):
                last_line = int(line_number)
                if source and target:
                    sources.append(source.decode("utf-8"))
                    targets.append(target.decode("utf-8"))
                else:
                    empty_lines.append(last_line)
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(data_error_message(error)) from None
    if empty_lines:
        shown = ", ".join(str(n) for n in empty_lines[:10])
        more = ", ..." if len(empty_lines) > 10 else ""
        warnings.warn(
            f"{directory} ({split}): skipped {len(empty_lines)} of {last_line} pairs with an "
            f"empty side (lines {shown}{more}).",
            stacklevel=2,
        )
    return sources, targets


def sample_parallel_dir(directory, split, source_lang, target_lang, size, seed=0):
    """Draws `size` pairs uniformly from the whole of a split of plain-text files, fast.

    Each file is read twice at disk speed, a chunk of bytes at a time (numpy finds the line
    ends; no per-line TensorFlow or Python work): once to count its lines, once to pick out
    the lines of `size` line numbers drawn without replacement. A 600 MB corpus of 4.5M pairs
    takes seconds, where streaming it pair by pair (`reservoir_sample` on
    `stream_parallel_dir`) takes minutes on a small machine. Memory holds the sample only.

    Lines are cut as `stream_parallel_dir` cuts them ("\\n" ends a line; white space, a "\\r"
    before the "\\n" included, is normalized) and pairs with an empty side are left out, so
    the sample may hold a few pairs fewer than `size`.

    Args:
        directory, split, source_lang, target_lang: as for `stream_parallel_dir`.
        size: int, pairs to draw. A split of at most `size` lines is returned whole, in order.
        seed: int, default 0. The same seed and files give the same sample.

    Returns:
        (sources, targets): two lists of str of equal length, or None for gzipped files (they
        cannot be read this way; stream them).

    Raises:
        FileNotFoundError: missing files.
        ValueError: files of different lengths (naming both files and counts), invalid UTF-8
            or a TSV line without a tab (naming the file and line) in a sampled line.
    """
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    directory = os.fspath(directory)
    found = find_split_files(directory, resolve_split(directory, split), source_lang, target_lang)
    paths = found[1:3] if found[0] == "aligned" else found[1:2]
    if any(path.endswith(".gz") for path in paths):
        return None
    counts = [_count_file_lines(path) for path in paths]
    if len(set(counts)) > 1:
        raise ValueError(
            f"{paths[0]} has {counts[0]} lines but {paths[1]} has {counts[1]}: line i of one "
            "must translate line i of the other.")
    if counts[0] <= size:
        chosen = np.arange(counts[0])
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(counts[0], size, replace=False))
    if found[0] == "aligned":
        sources = _decoded(paths[0], chosen, _lines_at(paths[0], chosen))
        targets = _decoded(paths[1], chosen, _lines_at(paths[1], chosen))
    else:
        _, path, source_column, target_column = found
        fields = _tsv_fields(path, chosen, _decoded(path, chosen, _lines_at(path, chosen)))
        sources = [line[source_column] for line in fields]
        targets = [line[target_column] for line in fields]
        del fields
    sources = [" ".join(line.split()) for line in sources]
    targets = [" ".join(line.split()) for line in targets]
    empty = {i for i, (source, target) in enumerate(zip(sources, targets))
             if not source or not target}
    if empty:
        sources = [line for i, line in enumerate(sources) if i not in empty]
        targets = [line for i, line in enumerate(targets) if i not in empty]
    return sources, targets


def _count_file_lines(path):
    """Lines of a plain-text file as `tf.data.TextLineDataset` counts them (a last line without
    "\\n" counts)."""
    count, last = 0, _NEWLINE
    with open(path, "rb") as f:
        while chunk := f.read(_SAMPLE_CHUNK_BYTES):
            count += int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == _NEWLINE))
            last = chunk[-1]
    return count + (last != _NEWLINE)


def _lines_at(path, numbers):
    """The lines (bytes, without their "\\n") of a plain-text file at the sorted 0-based line
    `numbers`."""
    lines, taken, first = [], 0, 0  # first: number of the first line in `buffer`
    carry = b""
    with open(path, "rb") as f:
        while taken < len(numbers):
            chunk = f.read(_SAMPLE_CHUNK_BYTES)
            if not chunk:  # a last line without "\n"
                if carry and numbers[taken] == first:
                    lines.append(carry)
                break
            buffer = carry + chunk
            ends = np.flatnonzero(np.frombuffer(buffer, np.uint8) == _NEWLINE)
            starts = np.concatenate([[0], ends[:-1] + 1])
            upto = int(np.searchsorted(numbers, first + len(ends)))
            picked = numbers[taken:upto] - first
            lines.extend(buffer[start:end] for start, end in
                         zip(starts[picked].tolist(), ends[picked].tolist()))
            taken = upto
            carry = buffer[ends[-1] + 1:] if len(ends) else buffer
            first += len(ends)
    return lines


def _decoded(path, numbers, lines):
    """UTF-8 text of `lines` (at 0-based `numbers` of `path`); names the first bad line."""
    try:
        return [line.decode("utf-8") for line in lines]
    except UnicodeDecodeError:
        for number, line in zip(numbers, lines):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}, line {number + 1}: invalid UTF-8 ({error.reason} "
                                 f"at byte {error.start})") from None
        raise


def _tsv_fields(path, numbers, lines):
    """The tab-separated fields of `lines` (at 0-based `numbers` of `path`)."""
    fields = [line.split("\t") for line in lines]
    for number, line in zip(numbers, fields):
        if len(line) < 2:
            raise ValueError(f"{path}, line {number + 1}: expected two tab-separated columns, "
                             f"got 1: {line[0][:80]}")
    return fields


def data_error_message(error):
    """The message of a bad-input error raised while streaming a folder (the file, the line
    and what is wrong), without TensorFlow's node and stack details.

    Args:
        error: `tf.errors.InvalidArgumentError` from iterating a `stream_parallel_dir` dataset.

    Returns:
        str.
    """
    match = _ASSERTION.search(error.message)
    return match.group(1) if match else error.message


def _numbered_batches(directory, split, source_lang, target_lang):
    """Dataset of batches (line numbers int64 [L], sources [L], targets [L]) of every line,
    checked and normalized."""
    directory = os.fspath(directory)
    found = find_split_files(directory, resolve_split(directory, split), source_lang, target_lang)
    if found[0] == "aligned":
        _, source_path, target_path = found
        batches = _aligned_batches(source_path, target_path)
    else:
        _, path, source_column, target_column = found
        batches = _tsv_batches(path, source_column, target_column)
    return batches


def _line_batches(path):
    """Batches of (line numbers int64 [L], lines tf.string [L]) of a text file, checked to be
    UTF-8, with the "\\r" of "\\r\\n" endings dropped."""
    compression = "GZIP" if path.endswith(".gz") else ""
    lines = tf.data.TextLineDataset(path, compression_type=compression,
                                    buffer_size=_READ_BUFFER_BYTES).batch(_LINES_PER_BATCH)

    def check_utf8(index, batch):
        line_numbers = index * _LINES_PER_BATCH + 1 + tf.range(
            tf.size(batch, out_type=tf.int64), dtype=tf.int64)  # [L]
        suspects = tf.where(~tf.strings.regex_full_match(batch, _VALID_UTF8))  # [M, 1]
        suspect_lines = tf.gather_nd(batch, suspects)  # [M]
        # Transcoding drops invalid bytes, so only valid UTF-8 comes out unchanged.
        valid = tf.equal(tf.strings.unicode_transcode(suspect_lines, "UTF-8", "UTF-8",
                                                      errors="ignore"), suspect_lines)  # [M]
        first_invalid = tf.reduce_min(
            tf.where(valid, tf.int64.max, tf.gather_nd(line_numbers, suspects)))
        return line_numbers, _checked(
            tf.reduce_all(valid),
            lambda: _message(path, ", line ", first_invalid, ": invalid UTF-8"),
            batch)

    return lines.enumerate().map(check_utf8, num_parallel_calls=tf.data.AUTOTUNE)


def _aligned_batches(source_path, target_path):
    """Batches of (line numbers [L], sources [L], targets [L]) of two aligned files, failing
    when one file ends before the other."""
    end = tf.data.Dataset.from_tensors(
        (tf.zeros([0], tf.int64), tf.zeros([0], tf.string), False))

    def with_end(batches):
        return batches.map(lambda numbers, lines: (numbers, lines, True)).concatenate(end)

    def check_alignment(source, target):
        source_numbers, source_lines, source_more = source
        _, target_lines, target_more = target
        aligned = tf.logical_and(tf.equal(source_more, target_more),
                                 tf.equal(tf.size(source_lines), tf.size(target_lines)))
        source_lines, target_lines = _checked(
            aligned,
            lambda: _message(
                source_path, " has ", _count_lines(source_path), " lines but ", target_path,
                " has ", _count_lines(target_path),
                ": line i of one must translate line i of the other."),
            source_lines, target_lines)
        return (source_more, source_numbers, normalize_whitespace(source_lines),
                normalize_whitespace(target_lines))

    zipped = tf.data.Dataset.zip(with_end(_line_batches(source_path)),
                                 with_end(_line_batches(target_path)))
    return (zipped.map(check_alignment, num_parallel_calls=tf.data.AUTOTUNE)
            .filter(lambda more, numbers, sources, targets: more)
            .map(lambda more, numbers, sources, targets: (numbers, sources, targets)))


def _tsv_batches(path, source_column, target_column):
    """Batches of (line numbers [L], sources [L], targets [L]) of a tab-separated file."""
    def split_columns(line_numbers, lines):
        fields = tf.strings.split(lines, "\t")  # [L, (F)]
        columns = fields.row_lengths()  # [L]
        short = tf.argmin(columns)
        fields = _checked(
            tf.reduce_all(columns >= 2),
            lambda: _message(
                path, ", line ", line_numbers[short], ": expected two tab-separated columns, "
                "got ", columns[short], ": ",
                tf.strings.substr(lines[short], 0, 80, unit="UTF8_CHAR")),
            fields.to_tensor(""))  # [L, F]
        return (line_numbers, normalize_whitespace(fields[:, source_column]),
                normalize_whitespace(fields[:, target_column]))

    return _line_batches(path).map(split_columns, num_parallel_calls=tf.data.AUTOTUNE)


def _checked(condition, message_fn, *tensors):
    """Returns `tensors`, or fails with the message `message_fn()` (computed only then) when
    `condition` is false."""
    def fail():
        message = message_fn()
        with tf.control_dependencies([tf.debugging.Assert(False, [message], summarize=1)]):
            return [tf.identity(tensor) for tensor in tensors]

    results = tf.cond(condition, lambda: [tf.identity(tensor) for tensor in tensors], fail)
    return results[0] if len(tensors) == 1 else results


def _count_lines(path):
    """Lines of a text file, counted by streaming through it."""
    compression = "GZIP" if path.endswith(".gz") else ""
    lines = tf.data.TextLineDataset(path, compression_type=compression,
                                    buffer_size=_READ_BUFFER_BYTES)
    # Reducing batches: a reduce step per line would cost far more than reading it.
    return lines.batch(_LINES_PER_BATCH * 16).reduce(
        tf.constant(0, tf.int64), lambda count, batch: count + tf.size(batch, tf.int64))


def _message(*parts):
    """Joins str and scalar tensor (string or integer) parts into one scalar tf.string."""
    texts = [part if isinstance(part, str) or part.dtype == tf.string
             else tf.strings.as_string(part) for part in parts]
    return tf.strings.join(texts)
