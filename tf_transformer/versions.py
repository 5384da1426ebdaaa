"""Version folders of exported models: EXPORT_BASE/NAME/VERSION/saved_model.pb.

TF Serving's layout: a model's base path holds one folder per version, named by a positive
integer; the server serves the versions its policy picks (the highest by default). The
export, `tft-inspect`, `tft-translate`, the server's model manager and the Attention
dashboard's sentence box all read the layout through here.

- `saved_model_versions(base_path)`: {version: path} of the versions that hold a SavedModel.
- `latest_saved_model(path)`: a SavedModel folder as given, or the highest version under a
  base path (for reading an export); `latest_version(path, filename)` the same for any export
  format, by the file it holds.
- `next_version_dir(path)`: a version folder as given, or the next free version under a base
  path (for writing an export).
- `staged(export_dir)`: writes an export beside its destination and renames it into place,
  so a server watching the base path never sees half an export.
"""

import contextlib
import os
import shutil
import tempfile

import tensorflow as tf

SAVED_MODEL_FILENAME = "saved_model.pb"


def _numbered_folders(base_path):
    """{version: path} of the int-named entries of `base_path` ({} if it cannot be listed)."""
    try:
        entries = tf.io.gfile.listdir(base_path)
    except (tf.errors.NotFoundError, OSError):
        return {}
    # Some file systems (GCS) list folders with a trailing slash.
    names = (entry.rstrip("/") for entry in entries)
    return {int(name): os.path.join(base_path, name) for name in names if name.isdigit()}


def saved_model_versions(base_path):
    """Returns {version: path} of the int-named folders of `base_path` holding a SavedModel."""
    return versions_holding(base_path, SAVED_MODEL_FILENAME)


def versions_holding(base_path, filename):
    """Returns {version: path} of the int-named folders of `base_path` holding `filename`."""
    return {version: path for version, path in _numbered_folders(base_path).items()
            if tf.io.gfile.exists(os.path.join(path, filename))}


def latest_version(path, filename):
    """`path` if it holds `filename`, else its highest version folder that does, else None."""
    path = os.fspath(path)
    if tf.io.gfile.exists(os.path.join(path, filename)):
        return path
    found = versions_holding(path, filename)
    return found[max(found)] if found else None


def latest_saved_model(path):
    """The SavedModel to read for `path`: `path` itself or its highest version.

    Args:
        path: str, either a SavedModel folder (holds `saved_model.pb`) or a base path of
            integer version folders (EXPORT_BASE/NAME).

    Raises:
        ValueError: `path` holds neither.
    """
    found = latest_version(path, SAVED_MODEL_FILENAME)
    if found is None:
        raise ValueError(f"{os.fspath(path)!r} is neither a SavedModel nor a folder of numbered "
                         "SavedModel versions (EXPORT_BASE/NAME/VERSION/saved_model.pb).")
    return found


def next_version_dir(path):
    """The folder to write an export to: `path` if it names a version, else the next one.

    Args:
        path: str, EXPORT_BASE/NAME/VERSION (returned as an absolute path) or EXPORT_BASE/NAME
            (then EXPORT_BASE/NAME/<highest existing version + 1>, or .../1 if there is none).
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.basename(path).isdigit():
        return path
    return os.path.join(path, str(max(_numbered_folders(path), default=0) + 1))


@contextlib.contextmanager
def staged(export_dir):
    """Yields a new folder beside `export_dir` to write an export into; renamed to `export_dir`
    when the block ends, removed if it raises.

    The staging folder's name starts with a dot, which TF Serving ignores (not a number).

    Args:
        export_dir: str or path, the destination; it must not exist yet.

    Yields:
        str, the staging folder.

    Raises:
        ValueError: `export_dir` exists.
    """
    export_dir = os.path.abspath(os.fspath(export_dir))
    if os.path.exists(export_dir):
        raise ValueError(f"{export_dir} already exists; pick a new version number or remove it.")
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        yield staging
        os.rename(staging, export_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
