"""Tests for serving/server/manager.py: policies, swaps, broken versions, labels, status."""

import os

import grpc
import numpy as np
import pytest

from serving.server import config, errors
from serving.server.manager import ModelManager
from tests.serving.conftest import MODEL_NAME, copy_version


@pytest.fixture()
def base(fixture_export_base, tmp_path):
    """A model folder holding a copy of fixture version 1."""
    copy_version(str(fixture_export_base / MODEL_NAME / "1"), str(tmp_path / "m" / "1"))
    return tmp_path / "m"


def make_manager(base, **spec_kwargs):
    manager = ModelManager([config.ModelSpec("m", str(base), **spec_kwargs)], poll_seconds=60)
    manager.poll_once()
    return manager


def score_of(servable):
    signature = servable.signature("")
    outputs = servable.run(signature, {"text": np.array([b"a b"], dtype=object)})
    return float(outputs["score"][0])


def test_serves_latest_and_swaps_in_new_version(base, fixture_export_base):
    manager = make_manager(base)
    old = manager.resolve("m")
    assert old.version == 1 and score_of(old) == 2.0
    copy_version(str(fixture_export_base / MODEL_NAME / "2"), str(base / "2"))
    os.makedirs(base / "not_a_version")
    manager.poll_once()
    assert manager.served_versions("m") == [2]
    assert score_of(manager.resolve("m")) == 2.5
    assert score_of(old) == 2.0  # a request holding the old version still completes
    assert [(s.version, s.state) for s in manager.status("m")] == [(2, "AVAILABLE"), (1, "END")]
    with pytest.raises(
        errors.ServingError, match=r"^Servable not found for request: Specific\(m, 1\)$"
    ):
        manager.resolve("m", version=1)


def test_broken_version_keeps_previous_serving_and_reports_failure(base):
    manager = make_manager(base)
    os.makedirs(base / "2")
    (base / "2" / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    manager.poll_once()
    assert manager.resolve("m").version == 1
    broken, serving = manager.status("m")
    assert (broken.version, broken.state) == (2, "END")
    assert broken.error_code != grpc.StatusCode.OK and broken.error_message
    assert (serving.version, serving.state) == (1, "AVAILABLE")
    manager.poll_once()  # unchanged files are not retried
    assert manager.status("m", version=2)[0].state == "END"


def test_all_and_specific_policies(base, fixture_export_base):
    copy_version(str(fixture_export_base / MODEL_NAME / "2"), str(base / "2"))
    assert make_manager(base, policy=config.VersionPolicy("all")).served_versions("m") == [1, 2]
    specific = make_manager(base, policy=config.VersionPolicy("specific", versions=(1,)))
    assert specific.served_versions("m") == [1]


def test_labels_and_lookup_errors(base):
    manager = make_manager(base, labels={"stable": 1, "next": 7})
    assert manager.resolve("m", label="stable").version == 1
    with pytest.raises(
        errors.ServingError, match="^Unrecognized servable version label: nope$"
    ) as caught:
        manager.resolve("m", label="nope")
    assert caught.value.http_status == 400
    with pytest.raises(errors.ServingError, match=r"Specific\(m, 7\)"):
        manager.resolve("m", label="next")
    with pytest.raises(errors.ServingError, match=r"^Servable not found for request: Latest\(x\)$"):
        manager.resolve("x")
    with pytest.raises(
        errors.ServingError, match="^Could not find any versions of model x$"
    ) as caught:
        manager.status("x")
    assert caught.value.http_status == 404
    with pytest.raises(errors.ServingError, match="^Could not find version 9 of model m$"):
        manager.status("m", version=9)
    assert manager.status("m", label="stable")[0].version == 1


def test_missing_base_path_serves_nothing(tmp_path):
    manager = make_manager(tmp_path / "absent")
    with pytest.raises(errors.ServingError, match="Latest"):
        manager.resolve("m")
