"""Tests for serving/server/config.py: TF Serving's ModelServerConfig text format."""

import re

import pytest

from serving.server import config


def test_parses_models_policies_and_labels(tmp_path):
    text = """
    model_config_list {
      config { name: "a" base_path: "/models/a" model_platform: "tensorflow" }
      config {
        name: "b"
        base_path: "relative/b"
        model_version_policy { latest { num_versions: 2 } }
        version_labels { key: "stable" value: 1 }
        version_labels { key: "canary" value: 2 }
      }
      config { name: "c" base_path: "/c" model_version_policy { all {} } }
      config {
        name: "d" base_path: "/d"
        model_version_policy { specific { versions: 1 versions: 3 } }
      }
    }
    """
    specs = config.parse_model_config(text, config_dir=str(tmp_path))
    assert [s.name for s in specs] == ["a", "b", "c", "d"]
    assert specs[0].base_path == "/models/a"
    assert specs[0].policy == config.VersionPolicy("latest", num_versions=1)
    assert specs[1].base_path == str(tmp_path / "relative" / "b")
    assert specs[1].policy == config.VersionPolicy("latest", num_versions=2)
    assert specs[1].labels == {"stable": 1, "canary": 2}
    assert specs[2].policy.kind == "all"
    assert specs[3].policy == config.VersionPolicy("specific", versions=(1, 3))


@pytest.mark.parametrize(
    "policy, expected",
    [
        (config.VersionPolicy(), [7]),
        (config.VersionPolicy("latest", num_versions=2), [3, 7]),
        (config.VersionPolicy("all"), [1, 3, 7]),
        (config.VersionPolicy("specific", versions=(1, 5)), [1]),
    ],
)
def test_version_policy_selects(policy, expected):
    assert policy.select([3, 1, 7]) == expected


def test_load_file_resolves_relative_paths(tmp_path):
    path = tmp_path / "models.config"
    path.write_text('model_config_list { config { name: "m" base_path: "exports/m" } }')
    (spec,) = config.load_model_config_file(str(path))
    assert spec.base_path == str(tmp_path / "exports" / "m")


def test_from_flags():
    (spec,) = config.from_flags("m", "/tmp/m")
    assert (spec.name, spec.base_path, spec.policy.kind, spec.policy.num_versions) == (
        "m",
        "/tmp/m",
        "latest",
        1,
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("model_config_list { config { name: ", "Invalid ModelServerConfig text"),
        (
            'model_config_list { config { name: "a" base_path: "/a" } '
            'config { name: "a" base_path: "/b" } }',
            "repeated: ['a']",
        ),
        (
            'model_config_list { config { name: "a" base_path: "/a" model_platform: "onnx" } }',
            "'onnx'",
        ),
        ("model_config_list { }", "no model"),
        ('model_config_list { config { name: "a" } }', "needs a base_path"),
        (
            'model_config_list { config { name: "a" base_path: "/a" '
            "model_version_policy { latest { num_versions: 0 } } } }",
            None,
        ),
    ],
)
def test_rejects_bad_configs(text, message):
    if message is None:  # num_versions 0 means the default (1), as in TF Serving.
        (spec,) = config.parse_model_config(text)
        assert spec.policy.num_versions == 1
        return
    with pytest.raises(ValueError, match=re.escape(message)):
        config.parse_model_config(text)


def test_rejects_bad_policy_values():
    with pytest.raises(ValueError, match="num_versions must be >= 1; got 0"):
        config.VersionPolicy("latest", num_versions=0)
    with pytest.raises(ValueError, match="'newest'"):
        config.VersionPolicy("newest")
