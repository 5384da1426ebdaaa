"""Reading aligned parallel text from a folder, with clear errors for bad input.

Two layouts are understood, each optionally gzipped (`.gz`):

- one file per language, `{split}.{lang}`: line i of `train.en` translates line i of
  `train.de` (the Multi30k layout);
- one tab-separated file per split, `{split}.{lang1}-{lang2}.tsv`: column 1 is lang1, column 2
  is lang2 (further columns, such as an attribution, are ignored).

White space is normalized (any run of spaces, tabs or non-breaking spaces becomes one space;
none at either end). Pairs with an empty side are skipped and counted in a warning. Missing
files, files of different lengths and invalid UTF-8 raise errors naming the file (and line),
so text is never silently misaligned.
"""

import gzip
import os
import warnings

_VALIDATION_NAMES = ("validation", "valid", "val", "dev")


def _open_binary(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_lines(path):
    """Returns the lines of a UTF-8 text file (plain or `.gz`), without line endings.

    Only "\\n" ends a line (a stray "\\r" before it is dropped), so characters such as U+2028
    inside a sentence cannot shift the alignment with another file.

    Args:
        path: str, the file.

    Returns:
        list of str.

    Raises:
        ValueError: the file is not valid UTF-8 (the message gives file, line and byte).
    """
    lines = []
    with _open_binary(path) as f:
        for line_number, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\n").removesuffix(b"\r")
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{path}, line {line_number}: invalid UTF-8 ({error.reason} at byte "
                    f"{error.start} of the line)"
                ) from None
    return lines


def normalize_whitespace(text):
    """Collapses every run of white space (Unicode included) to one space and strips ends."""
    return " ".join(text.split())


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


def read_parallel_dir(directory, split, source_lang, target_lang):
    """Reads and checks one split of parallel text from a folder.

    Args:
        directory: str, the data folder.
        split: str, file prefix of the split ("validation" and "test" are resolved with
            `resolve_split`).
        source_lang: str, source language code as used in the file names.
        target_lang: str, target language code.

    Returns:
        (sources, targets): two lists of str of equal length, white space normalized, without
        pairs that have an empty side.

    Raises:
        FileNotFoundError: missing files.
        ValueError: different line counts, invalid UTF-8 or a TSV line without a tab.
    """
    directory = os.fspath(directory)
    found = find_split_files(directory, resolve_split(directory, split), source_lang, target_lang)
    if found[0] == "aligned":
        _, source_path, target_path = found
        sources, targets = read_lines(source_path), read_lines(target_path)
        if len(sources) != len(targets):
            raise ValueError(
                f"{source_path} has {len(sources)} lines but {target_path} has "
                f"{len(targets)}: line i of one must translate line i of the other."
            )
        origin = f"{source_path} / {target_path}"
    else:
        _, path, source_column, target_column = found
        sources, targets = [], []
        for line_number, line in enumerate(read_lines(path), start=1):
            fields = line.split("\t")
            if len(fields) < 2:
                raise ValueError(
                    f"{path}, line {line_number}: expected two tab-separated columns, got "
                    f"{len(fields)}: {line[:80]!r}"
                )
            sources.append(fields[source_column])
            targets.append(fields[target_column])
        origin = path
    return _drop_empty_pairs(sources, targets, origin)


def _drop_empty_pairs(sources, targets, origin):
    kept_sources, kept_targets, empty_lines = [], [], []
    for line_number, (source, target) in enumerate(zip(sources, targets), start=1):
        source, target = normalize_whitespace(source), normalize_whitespace(target)
        if source and target:
            kept_sources.append(source)
            kept_targets.append(target)
        else:
            empty_lines.append(line_number)
    if empty_lines:
        shown = ", ".join(str(n) for n in empty_lines[:10])
        more = ", ..." if len(empty_lines) > 10 else ""
        warnings.warn(
            f"{origin}: skipped {len(empty_lines)} of {len(sources)} pairs with an empty side "
            f"(lines {shown}{more}).",
            stacklevel=3,
        )
    return kept_sources, kept_targets
