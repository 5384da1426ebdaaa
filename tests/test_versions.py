"""Tests for tf_transformer/versions.py: the EXPORT_BASE/NAME/VERSION layout."""

import os

import pytest

from tf_transformer import versions


def _layout(tmp_path):
    """base/1 and base/3 hold a SavedModel, base/7 is an empty (half-written) version."""
    base = tmp_path / "model"
    for version in ("1", "3"):
        (base / version).mkdir(parents=True)
        (base / version / "saved_model.pb").write_bytes(b"")
    (base / "7").mkdir()
    (base / "notes").mkdir()
    (base / ".export-tmp").mkdir()
    return str(base)


def test_saved_model_versions_lists_only_numbered_saved_models(tmp_path):
    base = _layout(tmp_path)
    assert versions.saved_model_versions(base) == {1: os.path.join(base, "1"),
                                                   3: os.path.join(base, "3")}
    assert versions.saved_model_versions(str(tmp_path / "missing")) == {}


def test_latest_saved_model_reads_the_highest_saved_model(tmp_path):
    base = _layout(tmp_path)
    assert versions.latest_saved_model(base) == os.path.join(base, "3")
    version_dir = os.path.join(base, "1")
    assert versions.latest_saved_model(version_dir) == version_dir
    with pytest.raises(ValueError, match="neither a SavedModel nor a folder"):
        versions.latest_saved_model(str(tmp_path / "missing"))


def test_next_version_dir_writes_past_every_numbered_folder(tmp_path):
    base = _layout(tmp_path)
    # 7 holds no SavedModel yet, but writing into it would collide.
    assert versions.next_version_dir(base) == os.path.join(base, "8")
    assert versions.next_version_dir(os.path.join(base, "5")) == os.path.join(base, "5")
    assert versions.next_version_dir(str(tmp_path / "new")) == str(tmp_path / "new" / "1")


def test_staged_export_appears_whole_or_not_at_all(tmp_path):
    base = tmp_path / "model"
    with versions.staged(base / "1") as staging:
        # Nothing at the destination until the block ends, and the staging folder is one
        # that the version listing (and TF Serving) ignores.
        with open(os.path.join(staging, "saved_model.pb"), "wb") as f:
            f.write(b"")
        assert not (base / "1").exists()
        assert versions.saved_model_versions(str(base)) == {}
    assert sorted(os.listdir(base)) == ["1"]
    assert versions.saved_model_versions(str(base)) == {1: os.path.join(str(base), "1")}

    with pytest.raises(RuntimeError, match="disk full"):
        with versions.staged(base / "2") as staging:
            with open(os.path.join(staging, "saved_model.pb"), "wb") as f:
                f.write(b"")
            raise RuntimeError("disk full")
    assert sorted(os.listdir(base)) == ["1"]  # no version 2, no staging folder left

    entered = []
    with pytest.raises(ValueError, match="already exists"):
        with versions.staged(base / "1"):
            entered.append(True)
    assert not entered and sorted(os.listdir(base)) == ["1"]
