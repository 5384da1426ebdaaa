"""The Attention dashboard: a TensorBoard plugin backend for the summaries in `summaries.py`.

Installed through the `tensorboard_plugins` entry point (`AttentionLoader`), so plain
`tensorboard --logdir DIR` shows an "Attention" tab whenever a run holds tensor summaries whose
plugin name is `"attention"`. The frontend (`static/index.js`) is an ES module that TensorBoard
loads in an iframe; it calls these routes, all under `/data/plugin/attention/`:

| route | query | response (JSON unless noted) |
|---|---|---|
| `/index.js`, `/style.css` | | the frontend (JavaScript, CSS) |
| `/config` | | `{"export_dir": str or null}`: the export typed sentences run on |
| `/runs` | | sorted list of runs with attention data |
| `/tags` | | `{run: {tag: {"probe": str, "field": str}}}` |
| `/probes` | `run` | `[{"probe", "kinds", "source_tokens"}]`, source tokens of the latest step |
| `/steps` | `run`, `probe` | sorted list of steps with data for that probe |
| `/attention` | `run`, `probe`, `step`, `kind` | tokens and weights, see `_serve_attention` |
| `/inspect` | `text`, `kind` | the same for a typed sentence run through the export |

Typed sentences: start TensorBoard with `--attention_export_dir EXPORT_DIR` or the environment
variable `TFT_ATTENTION_EXPORT=EXPORT_DIR` (a SavedModel from `tft-export`, or its folder of
numbered versions, the newest of which is used); `/inspect` then runs the export's `attention`
signature on the sentence, exactly as `tft-inspect` does, without writing anything.

Data are read through the TensorBoard data provider, so the routes work with both the
multiplexer and the fast (Rust) data server. TensorBoard keeps 10 steps per tag by default;
`tensorboard --samples_per_plugin attention=0` keeps every step (for this plugin 0 means
"all", as it does for TensorBoard's own storage).
"""

import collections
import importlib.resources
import os
import threading

import numpy as np
from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tf_transformer.tensorboard import signature, summaries

_STATIC_FILES = {
    "/index.js": "application/javascript",
    "/style.css": "text/css",
}
# Steps read per tag when `--samples_per_plugin` gives no hint; 0 there means "all".
_DEFAULT_DOWNSAMPLING = 1000
_ALL_SAMPLES = 2**31 - 1
# Decimals sent to the browser: finer than any visible difference in opacity or colour.
_WEIGHT_DECIMALS = 4
EXPORT_ENV = "TFT_ATTENTION_EXPORT"
EXPORT_FLAG = "attention_export_dir"
# Typed sentences: longest accepted, and how many recent results are kept for kind switches.
_MAX_TEXT_CHARS = 1000
_CACHED_SENTENCES = 32


class AttentionLoader(base_plugin.TBLoader):
    """Adds the plugin's flag and builds `AttentionPlugin`; the entry point TensorBoard loads."""

    def define_flags(self, parser):
        group = parser.add_argument_group(summaries.PLUGIN_NAME)
        group.add_argument(
            f"--{EXPORT_FLAG}", metavar="EXPORT_DIR", default=None,
            help="An export of tft-export (SavedModel, or its folder of numbered versions) whose "
            "'attention' signature the Attention tab runs on typed sentences. Default: "
            f"${EXPORT_ENV}, else no sentence box.",
        )

    def load(self, context):
        return AttentionPlugin(context)


class AttentionPlugin(base_plugin.TBPlugin):
    """Serves attention weights and tokens to the Attention dashboard.

    Args:
        context: `tensorboard.plugins.base_plugin.TBContext`; its `data_provider` is read.
    """

    plugin_name = summaries.PLUGIN_NAME

    def __init__(self, context):
        self._data_provider = context.data_provider
        hint = (context.sampling_hints or {}).get(self.plugin_name, _DEFAULT_DOWNSAMPLING)
        self._downsample_to = hint or _ALL_SAMPLES
        export_dir = getattr(context.flags, EXPORT_FLAG, None) or os.environ.get(EXPORT_ENV)
        self._signature = signature.AttentionSignature(export_dir) if export_dir else None
        self._typed = collections.OrderedDict()  # text -> result of the signature, newest last
        self._typed_lock = threading.Lock()

    def get_plugin_apps(self):
        routes = {path: self._serve_static for path in _STATIC_FILES}
        routes.update(
            {
                "/config": self._serve_config,
                "/inspect": self._serve_inspect,
                "/runs": self._serve_runs,
                "/tags": self._serve_tags,
                "/probes": self._serve_probes,
                "/steps": self._serve_steps,
                "/attention": self._serve_attention,
            }
        )
        return routes

    def is_active(self):
        # TensorBoard's core marks the tab active when any run holds data of `plugin_name`.
        return False

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(
            es_module_path="/index.js", tab_name="Attention", disable_reload=True
        )

    @wrappers.Request.application
    def _serve_static(self, request):
        name = request.path.rsplit("/", 1)[-1]
        mimetype = _STATIC_FILES["/" + name]
        resource = importlib.resources.files(__package__) / "static" / name
        return http_util.Respond(request, resource.read_bytes(), mimetype)

    @wrappers.Request.application
    def _serve_config(self, request):
        export_dir = self._signature.export_dir if self._signature else None
        return http_util.Respond(request, {"export_dir": export_dir}, "application/json")

    @wrappers.Request.application
    def _serve_runs(self, request):
        return http_util.Respond(request, sorted(self._index(request)), "application/json")

    @wrappers.Request.application
    def _serve_tags(self, request):
        tags = {
            run: {
                tag: {"probe": probe, "field": field}
                for probe, fields in probes.items()
                for field, tag in fields.items()
            }
            for run, probes in self._index(request).items()
        }
        return http_util.Respond(request, tags, "application/json")

    @wrappers.Request.application
    def _serve_probes(self, request):
        run = _required_arg(request, "run")
        probes = self._run_index(request, run)
        result = []
        for probe in sorted(probes):
            fields = probes[probe]
            source = self._read(request, run, fields.get(summaries.SOURCE_TOKENS))
            result.append(
                {
                    "probe": probe,
                    "kinds": [kind for kind in summaries.KINDS if kind in fields],
                    "source_tokens": _tokens(source[-1].numpy) if source else [],
                }
            )
        return http_util.Respond(request, result, "application/json")

    @wrappers.Request.application
    def _serve_steps(self, request):
        run = _required_arg(request, "run")
        fields = self._probe_fields(request, run, _required_arg(request, "probe"))
        # A step is complete when every tag of the probe has it; TensorBoard samples each tag
        # on its own, so intersect.
        steps = None
        for tag in fields.values():
            tag_steps = {datum.step for datum in self._read(request, run, tag)}
            steps = tag_steps if steps is None else steps & tag_steps
        return http_util.Respond(request, sorted(steps or ()), "application/json")

    @wrappers.Request.application
    def _serve_attention(self, request):
        """Serves one kind of attention of one probe at one step.

        The response holds `run`, `probe`, `step` and what `_attention_response` returns.
        """
        run = _required_arg(request, "run")
        probe = _required_arg(request, "probe")
        kind = _kind_arg(request)
        step_arg = _required_arg(request, "step")
        try:
            step = int(step_arg)
        except ValueError:
            raise errors.InvalidArgumentError(
                f"step must be an integer, got {step_arg!r}") from None
        fields = self._probe_fields(request, run, probe)
        if kind not in fields:
            raise errors.NotFoundError(f"No {kind} attention for probe {probe!r} in run {run!r}")

        def value_at_step(field):
            for datum in self._read(request, run, fields.get(field)):
                if datum.step == step:
                    return datum.numpy
            raise errors.NotFoundError(
                f"No {field} for probe {probe!r} at step {step} in run {run!r}"
            )

        response = _attention_response(
            kind,
            _tokens(value_at_step(summaries.SOURCE_TOKENS)),
            _tokens(value_at_step(summaries.TARGET_TOKENS)),
            value_at_step(kind),
        )
        response.update(run=run, probe=probe, step=step)
        return http_util.Respond(request, response, "application/json")

    @wrappers.Request.application
    def _serve_inspect(self, request):
        """Serves one kind of attention of a typed sentence, run through the export.

        The response holds `text`, `translation` and what `_attention_response` returns.
        """
        if self._signature is None:
            raise errors.NotFoundError(
                "No export to run typed sentences on: start TensorBoard with "
                f"--{EXPORT_FLAG} EXPORT_DIR or {EXPORT_ENV}=EXPORT_DIR."
            )
        text = _required_arg(request, "text").strip()
        kind = _kind_arg(request)
        if not text:
            raise errors.InvalidArgumentError("text is empty; type a sentence to translate.")
        if len(text) > _MAX_TEXT_CHARS:
            raise errors.InvalidArgumentError(
                f"text has {len(text)} characters; at most {_MAX_TEXT_CHARS} are accepted."
            )
        result = self._run_typed(text)
        response = _attention_response(
            kind, result["source_tokens"], result["target_tokens"], result["attention"][kind]
        )
        response.update(text=text, translation=result["translation"])
        return http_util.Respond(request, response, "application/json")

    def _run_typed(self, text):
        """Returns the signature's result for `text`, keeping recent ones for kind switches."""
        with self._typed_lock:
            if text in self._typed:
                self._typed.move_to_end(text)
                return self._typed[text]
        try:
            (result,) = self._signature([text])
        except ValueError as error:  # A folder that is not a usable export.
            raise errors.NotFoundError(str(error)) from error
        with self._typed_lock:
            self._typed[text] = result
            while len(self._typed) > _CACHED_SENTENCES:
                self._typed.popitem(last=False)
        return result

    def _index(self, request):
        """Returns `{run: {probe: {field: tag}}}` from the plugin content of every tag."""
        listing = self._data_provider.list_tensors(
            plugin_util.context(request.environ),
            experiment_id=plugin_util.experiment_id(request.environ),
            plugin_name=self.plugin_name,
        )
        index = {}
        for run, tags in listing.items():
            for tag, series in tags.items():
                try:
                    content = summaries.parse_plugin_content(series.plugin_content)
                except ValueError:
                    continue  # Not written by `summaries`; nothing to show.
                probes = index.setdefault(run, {})
                probes.setdefault(content["probe"], {})[content["field"]] = tag
        return index

    def _run_index(self, request, run):
        probes = self._index(request).get(run)
        if probes is None:
            raise errors.NotFoundError(f"No attention data for run {run!r}")
        return probes

    def _probe_fields(self, request, run, probe):
        fields = self._run_index(request, run).get(probe)
        if fields is None:
            raise errors.NotFoundError(f"No probe {probe!r} in run {run!r}")
        return fields

    def _read(self, request, run, tag):
        """Returns the `TensorDatum`s of one tag sorted by step (empty for a missing tag)."""
        if tag is None:
            return []
        data = self._data_provider.read_tensors(
            plugin_util.context(request.environ),
            experiment_id=plugin_util.experiment_id(request.environ),
            plugin_name=self.plugin_name,
            downsample=self._downsample_to,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        return data.get(run, {}).get(tag, [])


def _required_arg(request, name):
    value = request.args.get(name)
    if value is None:
        raise errors.InvalidArgumentError(f"Missing query parameter {name!r}")
    return value


def _kind_arg(request):
    kind = _required_arg(request, "kind")
    if kind not in summaries.KIND_AXES:
        raise errors.InvalidArgumentError(
            f"Unknown kind {kind!r}; expected one of {list(summaries.KINDS)}"
        )
    return kind


def _attention_response(kind, source_tokens, target_tokens, weights):
    """The JSON body for one kind of attention of one sentence.

    Args:
        kind: str, one of `summaries.KINDS`.
        source_tokens: list of str `[S]`.
        target_tokens: list of str `[T]`, the decoder inputs (`<s>` then the translation).
        weights: float array `[L, N, Tq, Tk]`.

    Returns:
        A dict with `kind`, `source_tokens`, `target_tokens`, `predicted_tokens [T]` (the
        token each decoder position predicts: the next target token, then `</s>`),
        `query_field` and `key_field` (which token lists are the rows and columns),
        `query_tokens [Tq]`, `key_tokens [Tk]`, `num_layers`, `num_heads` and
        `weights [L][N][Tq][Tk]`.
    """
    weights = np.asarray(weights, dtype=np.float32)  # [L, N, Tq, Tk]
    tokens = {summaries.SOURCE_TOKENS: source_tokens, summaries.TARGET_TOKENS: target_tokens}
    query_field, key_field = summaries.KIND_AXES[kind]
    return {
        "kind": kind,
        "source_tokens": source_tokens,
        "target_tokens": target_tokens,
        "predicted_tokens": list(target_tokens[1:]) + [summaries.END_TOKEN],
        "query_field": query_field,
        "key_field": key_field,
        "query_tokens": tokens[query_field],
        "key_tokens": tokens[key_field],
        "num_layers": int(weights.shape[0]),
        "num_heads": int(weights.shape[1]),
        "weights": np.round(weights, _WEIGHT_DECIMALS).tolist(),
    }


def _tokens(values):
    return [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in values]
