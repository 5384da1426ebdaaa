"""Which models to serve: TF Serving's `ModelServerConfig`, from a file or from flags.

The file is the text protobuf `tensorflow_model_server --model_config_file`
reads, for example::

    model_config_list {
      config {
        name: "translator"
        base_path: "/models/translator"
        model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 2 } }
        version_labels { key: "stable" value: 1 }
        version_labels { key: "canary" value: 2 }
      }
    }

Version policies: `latest { num_versions: N }` (default N = 1), `all {}`,
`specific { versions: 1 versions: 3 }`.
"""

import dataclasses
import os

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which of the version folders found on disk are served.

    Args:
        kind: str, one of "latest", "all", "specific".
        num_versions: int, for "latest": how many of the highest versions.
        versions: tuple of int, for "specific": the versions to serve.
    """

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple = ()

    def __post_init__(self):
        if self.kind not in ("latest", "all", "specific"):
            raise ValueError(
                f"Version policy kind must be latest, all or specific; got {self.kind!r}."
            )
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"latest.num_versions must be >= 1; got {self.num_versions}.")
        if self.kind == "specific" and not self.versions:
            raise ValueError("specific version policy needs at least one version.")

    def select(self, available_versions):
        """Returns the versions to serve among those found on disk.

        Args:
            available_versions: iterable of int, versions present on disk.

        Returns:
            A sorted list of int.
        """
        found = sorted(set(available_versions))
        if self.kind == "all":
            return found
        if self.kind == "specific":
            return [v for v in found if v in self.versions]
        return found[-self.num_versions :]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model to serve.

    Args:
        name: str, the name clients use in `/v1/models/{name}`.
        base_path: str, the folder holding the int-named version folders.
        policy: `VersionPolicy`.
        labels: dict str -> int, version labels ("stable" -> 3).
    """

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.name or "/" in self.name or ":" in self.name:
            raise ValueError(f"Model name must be non-empty without '/' or ':'; got {self.name!r}.")
        if not self.base_path:
            raise ValueError(f"Model {self.name!r} needs a base_path.")


def from_flags(model_name, model_base_path):
    """Builds the single-model config of `--model_name` / `--model_base_path`.

    Args:
        model_name: str.
        model_base_path: str, folder holding version folders.

    Returns:
        A list with one `ModelSpec` (serving the latest version).
    """
    return [ModelSpec(name=model_name, base_path=os.path.abspath(model_base_path))]


def parse_model_config(text, config_dir="."):
    """Parses a text-format `ModelServerConfig`.

    Args:
        text: str, the file's content.
        config_dir: str, folder relative base paths are resolved against.

    Returns:
        A list of `ModelSpec`, in file order.

    Raises:
        ValueError: if the text does not parse, uses an unsupported feature
            (custom_model_config, a platform other than tensorflow) or repeats a
            model name.
    """
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError(f"Invalid ModelServerConfig text: {error}") from error
    if config.HasField("custom_model_config"):
        raise ValueError("custom_model_config is not supported; use model_config_list.")
    specs = []
    for model in config.model_config_list.config:
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(
                f"Model {model.name!r}: model_platform "
                f"must be 'tensorflow'; got {model.model_platform!r}."
            )
        base_path = model.base_path
        if base_path and not os.path.isabs(base_path):
            base_path = os.path.join(config_dir, base_path)
        specs.append(
            ModelSpec(
                name=model.name,
                base_path=os.path.abspath(base_path) if base_path else "",
                policy=_policy_from_proto(model.model_version_policy),
                labels=dict(model.version_labels),
            )
        )
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Model names must be unique; repeated: {duplicates}.")
    if not specs:
        raise ValueError("ModelServerConfig has no model in model_config_list.")
    return specs


def load_model_config_file(path):
    """Reads and parses a `--model_config_file`.

    Args:
        path: str.

    Returns:
        A list of `ModelSpec`.
    """
    with open(path, encoding="utf-8") as f:
        return parse_model_config(f.read(), config_dir=os.path.dirname(os.path.abspath(path)))


def _policy_from_proto(policy):
    kind = policy.WhichOneof("policy_choice")
    if kind is None or kind == "latest":
        num_versions = policy.latest.num_versions if kind == "latest" else 0
        return VersionPolicy("latest", num_versions=num_versions or 1)
    if kind == "all":
        return VersionPolicy("all")
    return VersionPolicy("specific", versions=tuple(policy.specific.versions))
