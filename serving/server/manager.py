"""Model versions: discovery by polling, background loading, atomic swap, status.

Like TF Serving's ServerCore with its file-system source and
availability-preserving policy:

- Every poll lists the int-named folders under each model's base path that
  hold a `saved_model.pb`, and the model's version policy picks the versions
  to serve.
- New versions load in the polling thread while the current ones keep
  serving. A loaded version joins the served set by replacing the whole
  version map in one assignment, so a request either sees the old map or the
  new one, never half of a change.
- A version leaves only once a version the policy wants is available: a
  broken new version leaves the previous one serving, and its failure shows in
  the status answer (state END with the load error). It is tried again when
  its files change.
- Requests keep a reference to the `Servable` they resolved, so a version
  unloaded in the middle of a request finishes that request.
"""

import dataclasses
import logging
import os
import threading

import grpc

from serving.server import errors
from tf_transformer import versions

logger = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """State of one model version, as reported by GetModelStatus.

    Attributes:
        version: int.
        state: str, one of START, LOADING, AVAILABLE, UNLOADING, END.
        error_code: `grpc.StatusCode`, OK unless loading failed.
        error_message: str.
    """

    version: int
    state: str
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""


class ModelManager:
    """Keeps the versions chosen by each model's policy loaded and answers lookups.

    Args:
        specs: list of `config.ModelSpec`.
        poll_seconds: float, seconds between two scans of the base paths.
        loader: callable(name, version, path) -> servable; defaults to
            `servable.Servable`.
    """

    def __init__(self, specs, poll_seconds=1.0, loader=None):
        if poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be > 0; got {poll_seconds}.")
        if loader is None:
            from serving.server.servable import Servable as loader
        self._specs = {spec.name: spec for spec in specs}
        self._poll_seconds = poll_seconds
        self._loader = loader
        self._served = {name: {} for name in self._specs}  # name -> {version: servable}
        self._status = {name: {} for name in self._specs}  # name -> {version: VersionStatus}
        self._failed = {}  # (name, version) -> fingerprint of the files that failed to load
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    @property
    def model_names(self):
        """list of str: the configured models."""
        return list(self._specs)

    def start(self):
        """Loads the initial versions (blocking), then polls in a background thread."""
        self.poll_once()
        self._thread = threading.Thread(target=self._poll_forever, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self):
        """Stops polling; loaded versions stay usable until the process exits."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _poll_forever(self):
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 -- a bad poll must not end polling.
                logger.exception("Polling model base paths failed")

    def poll_once(self):
        """Scans every base path once and loads / unloads versions to match the policies."""
        for spec in self._specs.values():
            if self._stop.is_set():
                return
            self._reconcile(spec)

    def _reconcile(self, spec):
        found = versions.saved_model_versions(spec.base_path)
        wanted = spec.policy.select(found)
        for version in sorted(wanted, reverse=True):
            if version in self._served[spec.name]:
                continue
            path = found[version]
            fingerprint = _fingerprint(path)
            if self._failed.get((spec.name, version)) == fingerprint:
                continue
            self._load(spec.name, version, path, fingerprint)
        self._unload_unwanted(spec.name, set(wanted))

    def _load(self, name, version, path, fingerprint):
        self._set_status(name, VersionStatus(version, LOADING))
        logger.info("Loading servable: {name: %s version: %d} from %s", name, version, path)
        try:
            servable = self._loader(name, version, path)
        except Exception as error:  # noqa: BLE001 -- any load failure is reported in the status.
            code = _load_error_code(error)
            message = f"{type(error).__name__}: {error}"
            logger.error(
                "Loading servable: {name: %s version: %d} failed: %s", name, version, message
            )
            self._failed[(name, version)] = fingerprint
            self._set_status(name, VersionStatus(version, END, code, message))
            return
        self._failed.pop((name, version), None)
        with self._lock:
            served = dict(self._served[name])
            served[version] = servable
            self._served[name] = served  # The swap: one assignment.
            self._status[name][version] = VersionStatus(version, AVAILABLE)
        logger.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _unload_unwanted(self, name, wanted):
        served = self._served[name]
        if not any(version in wanted for version in served):
            # Availability preserving: nothing the policy wants is up, keep what serves.
            return
        stale = [version for version in served if version not in wanted]
        if not stale:
            return
        with self._lock:
            remaining = {v: s for v, s in self._served[name].items() if v not in stale}
            self._served[name] = remaining
            for version in stale:
                self._status[name][version] = VersionStatus(version, END)
        for version in stale:
            logger.info("Unloaded servable version {name: %s version: %d}", name, version)

    def _set_status(self, name, status):
        with self._lock:
            self._status[name][status.version] = status

    def resolve(self, name, version=None, label=None):
        """Finds the servable a request addresses.

        Args:
            name: str, model name.
            version: int or None.
            label: str or None; at most one of version and label.

        Returns:
            The servable (latest available version when neither is given).

        Raises:
            ServingError: NOT_FOUND `Servable not found for request: Latest(m)` /
                `Specific(m, v)`, or INVALID_ARGUMENT for an unknown label.
        """
        if label is not None:
            version = self.label_version(name, label)
        served = self._served.get(name)
        if not served:
            raise errors.not_found(_request_string(name, version))
        if version is None:
            return served[max(served)]
        servable = served.get(version)
        if servable is None:
            raise errors.not_found(_request_string(name, version))
        return servable

    def label_version(self, name, label):
        """Returns the version a label points to.

        Raises:
            ServingError: INVALID_ARGUMENT `Unrecognized servable version label: x`.
        """
        spec = self._specs.get(name)
        if spec is None or label not in spec.labels:
            raise errors.invalid_argument(f"Unrecognized servable version label: {label}")
        return spec.labels[label]

    def status(self, name, version=None, label=None):
        """Returns the status of one or all versions of a model, newest first.

        Args:
            name: str.
            version: int or None for every version known.
            label: str or None.

        Returns:
            list of `VersionStatus`.

        Raises:
            ServingError: NOT_FOUND `Could not find any versions of model m` or
                `Could not find version v of model m`.
        """
        if label is not None:
            version = self.label_version(name, label)
        with self._lock:
            known = dict(self._status.get(name, {}))
        if version is not None:
            if version not in known:
                raise errors.not_found(f"Could not find version {version} of model {name}")
            return [known[version]]
        if not known:
            raise errors.not_found(f"Could not find any versions of model {name}")
        return [known[v] for v in sorted(known, reverse=True)]

    def served_versions(self, name):
        """Returns the sorted versions of `name` that answer requests now."""
        return sorted(self._served.get(name, {}))


def _request_string(name, version):
    """ServableRequest::DebugString, as in TF Serving's not-found messages."""
    if version is None:
        return f"Servable not found for request: Latest({name})"
    return f"Servable not found for request: Specific({name}, {version})"


def _fingerprint(path):
    """Modification times and sizes of a version's files: a retry happens when they change."""
    stats = []
    for root, _, files in os.walk(path):
        for file in sorted(files):
            try:
                stat = os.stat(os.path.join(root, file))
            except OSError:
                continue
            stats.append(
                (os.path.relpath(os.path.join(root, file), path), stat.st_mtime_ns, stat.st_size)
            )
    return tuple(sorted(stats))


def _load_error_code(error):
    if isinstance(error, errors.ServingError):
        return error.code
    if isinstance(error, FileNotFoundError):
        return grpc.StatusCode.NOT_FOUND
    try:
        import tensorflow as tf

        if isinstance(error, tf.errors.OpError):
            return errors.from_tf_error(error).code
    except ImportError:  # pragma: no cover
        pass
    return grpc.StatusCode.UNKNOWN
