"""TensorBoard summaries for inspecting a Transformer's attention.

Every function here writes with the default `tf.summary` writer (set one with
`writer.as_default()`), takes plain NumPy arrays and strings, and knows nothing of the model
class, so the training callback and `tft-inspect` write exactly the same summaries.

Shape letters: L layers, N heads, S source tokens, T target tokens, P positions, D model width,
V vocabulary size.

Tags written by `write_attention` for a probe sentence `{probe}` at a step:

| tag | dashboard | value |
|---|---|---|
| `attention/{probe}/source_tokens` | Attention | string tensor `[S]` |
| `attention/{probe}/target_tokens` | Attention | string tensor `[T]`, decoder input tokens |
| `attention/{probe}/encoder_self` | Attention | float32 tensor `[L, N, S, S]` |
| `attention/{probe}/decoder_self` | Attention | float32 tensor `[L, N, T, T]` |
| `attention/{probe}/cross` | Attention | float32 tensor `[L, N, T, S]` |
| `translation/{probe}` | Text | the translation |
| `attention_heatmaps/{probe}/{kind}/layer_{l}` | Images | one grid of all heads of layer l |

The tensor summaries carry the plugin name `"attention"` (`PLUGIN_NAME`) and, as plugin
content, JSON `{"version": 1, "probe": ..., "field": ...}` where field is `source_tokens`,
`target_tokens` or one of `KINDS`; the Attention dashboard relies on that content, not on the
tag spelling. Row `q` of an attention array holds the weights query token `q` gives to every
key token, so each row sums to 1.

Written once per run:

- `position_encoding`: image summary of the positional encoding matrix, positions x dimensions.
- `write_embeddings(logdir, ...)`: for the Projector dashboard, a checkpoint (`embeddings-1.*`
  and its `checkpoint` state file) with one variable per embedding name, `{name}_metadata.tsv`
  and `projector_config.pbtxt`.
"""

import json
import os
import re

import numpy as np
import tensorflow as tf
from google.protobuf import text_format

# Figures are drawn on an explicit Agg canvas, never through pyplot, so no global backend or
# figure state is touched.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins import projector

PLUGIN_NAME = "attention"
METADATA_VERSION = 1

KINDS = ("encoder_self", "decoder_self", "cross")
"""Attention kinds, in model order."""

SOURCE_TOKENS = "source_tokens"
TARGET_TOKENS = "target_tokens"
END_TOKEN = "</s>"
"""What the last decoder position predicts; position t < T - 1 predicts target token t + 1."""

# Which token sequence the queries (rows) and keys (columns) of each kind come from.
KIND_AXES = {
    "encoder_self": (SOURCE_TOKENS, SOURCE_TOKENS),
    "decoder_self": (TARGET_TOKENS, TARGET_TOKENS),
    "cross": (TARGET_TOKENS, SOURCE_TOKENS),
}

EMBEDDING_CHECKPOINT = "embeddings"
PROJECTOR_CONFIG = "projector_config.pbtxt"

_PROBE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
_HEADS_PER_ROW = 4


def attention_tag(probe, field):
    """Returns the tensor-summary tag of `field` (a kind or a tokens field) for `probe`."""
    return f"attention/{_probe_name(probe)}/{field}"


def translation_tag(probe):
    """Returns the text-summary tag of the translation of `probe`."""
    return f"translation/{_probe_name(probe)}"


def heatmap_tag(probe, kind, layer):
    """Returns the image-summary tag of the heads of `layer` of `kind` for `probe`."""
    return f"attention_heatmaps/{_probe_name(probe)}/{kind}/layer_{layer}"


def summary_metadata(probe, field):
    """Returns the `SummaryMetadata` that marks a tensor summary for the Attention dashboard.

    Args:
        probe: str or int, the probe sentence identifier.
        field: str, `"source_tokens"`, `"target_tokens"` or one of `KINDS`.

    Returns:
        A `tensorboard.compat.proto.summary_pb2.SummaryMetadata`.
    """
    content = {"version": METADATA_VERSION, "probe": _probe_name(probe), "field": field}
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=json.dumps(content).encode("utf-8")
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


def parse_plugin_content(content):
    """Parses the plugin content written by `summary_metadata`.

    Args:
        content: bytes, `SummaryMetadata.plugin_data.content`.

    Returns:
        A dict with keys `version`, `probe` and `field`.

    Raises:
        ValueError: if `content` is not such JSON or has a newer version.
    """
    try:
        parsed = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Attention plugin content is not JSON: {content!r}") from error
    if not isinstance(parsed, dict) or not {"version", "probe", "field"} <= parsed.keys():
        raise ValueError(f"Attention plugin content lacks version/probe/field: {parsed!r}")
    if parsed["version"] > METADATA_VERSION:
        raise ValueError(
            f"Attention plugin content version {parsed['version']} is newer than "
            f"{METADATA_VERSION}; upgrade tf-transformer."
        )
    return parsed


def write_attention(
    step, probe, source_tokens, target_tokens, attention, translation=None, images=True
):
    """Writes one probe sentence's attention weights, tokens, translation and heatmaps.

    Args:
        step: int, the summary step (the training step or epoch).
        probe: str or int, identifies the probe sentence across steps; letters, digits,
            `_`, `.` and `-` only.
        source_tokens: sequence of str or bytes `[S]`, the source tokens without padding.
        target_tokens: sequence of str or bytes `[T]`, the decoder input tokens without
            padding (`<s>` followed by the translation's tokens).
        attention: dict from kind (`"encoder_self"`, `"decoder_self"`, `"cross"`; any subset)
            to a float array `[L, N, Tq, Tk]` trimmed to the real tokens: `[L, N, S, S]`,
            `[L, N, T, T]` and `[L, N, T, S]` respectively.
        translation: optional str, the translation, written as a text summary.
        images: bool, default True. Whether to also write the heatmap image summaries (the
            slowest part: one matplotlib figure per kind and layer).

    Returns:
        bool, whether summaries were written (False when there is no default writer or
        `tf.summary.record_if` is off, as for `tf.summary.write`).

    Raises:
        ValueError: if `probe` is not a valid identifier, a kind is unknown, or an array's
            shape does not match the tokens.
    """
    probe = _probe_name(probe)
    tokens = {
        SOURCE_TOKENS: _token_array(source_tokens, SOURCE_TOKENS),
        TARGET_TOKENS: _token_array(target_tokens, TARGET_TOKENS),
    }
    arrays = {kind: _attention_array(kind, weights, tokens) for kind, weights in attention.items()}

    if not tf.summary.should_record_summaries():
        return False
    for field, values in tokens.items():
        tf.summary.write(
            attention_tag(probe, field),
            tf.constant(values, dtype=tf.string),  # [S] or [T]
            step=step,
            metadata=summary_metadata(probe, field),
        )
    for kind, weights in arrays.items():
        tf.summary.write(
            attention_tag(probe, kind),
            tf.constant(weights),  # [L, N, Tq, Tk]
            step=step,
            metadata=summary_metadata(probe, kind),
        )
    if translation is not None:
        tf.summary.text(translation_tag(probe), _as_text(translation), step=step)
    if images:
        for kind, weights in arrays.items():
            query_field, key_field = KIND_AXES[kind]
            for layer, layer_weights in enumerate(weights):
                image = attention_heatmap(
                    layer_weights,
                    query_tokens=tokens[query_field],
                    key_tokens=tokens[key_field],
                    title=f"{probe}: {kind} layer {layer}",
                    query_label=query_field.split("_")[0],
                    key_label=key_field.split("_")[0],
                )
                tf.summary.image(heatmap_tag(probe, kind, layer), image[np.newaxis], step=step)
    return True


def write_position_encoding(matrix, step=0, tag="position_encoding"):
    """Writes the positional encoding matrix as a heatmap image summary.

    Args:
        matrix: float array `[P, D]`, the encoding of positions 0..P-1.
        step: int, default 0.
        tag: str, default `"position_encoding"`.

    Returns:
        bool, whether the summary was written.

    Raises:
        ValueError: if `matrix` is not 2-D.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(
            f"Expected a non-empty positions x dimensions matrix [P, D], got shape {matrix.shape}."
        )
    num_positions, depth = matrix.shape
    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    limit = float(np.max(np.abs(matrix))) or 1.0
    image = axes.imshow(
        matrix, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest"
    )
    axes.set_xlabel(f"dimension (0..{depth - 1})")
    axes.set_ylabel(f"position (0..{num_positions - 1})")
    axes.set_title("Positional encoding")
    figure.colorbar(image, ax=axes)
    return bool(tf.summary.image(tag, _render(figure)[np.newaxis], step=step))


def write_embeddings(logdir, embedding_matrix, vocabulary, name="token_embedding"):
    """Writes token embeddings for TensorBoard's Projector dashboard.

    Writes a checkpoint holding the matrix as variable `name`, `{name}_metadata.tsv` with one
    token per line (row order) and `projector_config.pbtxt` linking them. Calling again with
    another `name` (say source and target embeddings of unshared vocabularies) adds that
    embedding and keeps the others; the same `name` replaces it.

    The Projector looks for `projector_config.pbtxt` only in runs (folders with event files)
    and the logdir root, so an (empty) event file is added to a folder that has none: any
    folder under the logdir then shows up as a run in the Projector.

    Args:
        logdir: str, the folder to write into (created if missing).
        embedding_matrix: float array `[V, D]`.
        vocabulary: sequence of str `[V]`, the token of each row.
        name: str, default `"token_embedding"`; letters, digits, `_`, `.` and `-` only.

    Returns:
        str, the path of `projector_config.pbtxt`.

    Raises:
        ValueError: if the matrix is not 2-D, its row count differs from the vocabulary size,
            or `name` is not a valid identifier.
    """
    embedding_matrix = np.asarray(embedding_matrix, dtype=np.float32)
    vocabulary = [_as_text(token) for token in vocabulary]
    if embedding_matrix.ndim != 2:
        raise ValueError(
            f"Expected an embedding matrix [V, D], got shape {embedding_matrix.shape}."
        )
    if embedding_matrix.shape[0] != len(vocabulary):
        raise ValueError(
            f"Embedding matrix has {embedding_matrix.shape[0]} rows but the vocabulary has "
            f"{len(vocabulary)} tokens."
        )
    if not _PROBE_PATTERN.match(name):
        raise ValueError(
            f"Embedding names may hold only letters, digits, '_', '.' and '-', got {name!r}."
        )
    tf.io.gfile.makedirs(logdir)
    if not tf.io.gfile.glob(os.path.join(logdir, "*tfevents*")):
        tf.summary.create_file_writer(logdir).close()
    config_path = os.path.join(logdir, PROJECTOR_CONFIG)

    # Keep the embeddings written by earlier calls: read them back from their checkpoint.
    config = projector.ProjectorConfig()
    matrices = {}
    if tf.io.gfile.exists(config_path):
        with tf.io.gfile.GFile(config_path) as file:
            text_format.Parse(file.read(), config)
        reader = tf.train.load_checkpoint(logdir)
        for embedding in config.embeddings:
            matrices[embedding.tensor_name.split("/")[0]] = reader.get_tensor(embedding.tensor_name)
    matrices[name] = embedding_matrix

    metadata_path = f"{name}_metadata.tsv"
    with tf.io.gfile.GFile(os.path.join(logdir, metadata_path), "w") as file:
        # A single-column metadata file has no header row; escape what would break the TSV.
        for token in vocabulary:
            file.write(token.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n") + "\n")
    checkpoint = tf.train.Checkpoint(
        **{key: tf.Variable(value, name=key) for key, value in matrices.items()}
    )
    # The Projector finds the checkpoint through the `checkpoint` state file in `logdir` (it
    # would resolve a relative `model_checkpoint_path` against its working directory).
    tf.train.CheckpointManager(
        checkpoint, logdir, max_to_keep=1, checkpoint_name=EMBEDDING_CHECKPOINT
    ).save()

    metadata_paths = {
        embedding.tensor_name.split("/")[0]: embedding.metadata_path
        for embedding in config.embeddings
    }
    metadata_paths[name] = metadata_path
    config = projector.ProjectorConfig()
    for key, path in metadata_paths.items():
        # Object-based checkpoints store variable `key` of the Checkpoint under this name.
        config.embeddings.add(tensor_name=f"{key}/.ATTRIBUTES/VARIABLE_VALUE", metadata_path=path)
    with tf.io.gfile.GFile(config_path, "w") as file:
        file.write(text_format.MessageToString(config))
    return config_path


def attention_heatmap(
    weights, query_tokens, key_tokens, title="", query_label="query", key_label="key"
):
    """Renders all heads of one layer as a grid of heatmaps with the tokens on the axes.

    Args:
        weights: float array `[N, Tq, Tk]`.
        query_tokens: sequence of str `[Tq]`, shown down the rows.
        key_tokens: sequence of str `[Tk]`, shown along the columns.
        title: str, the figure title.
        query_label: str, default "query", the label of the row axis.
        key_label: str, default "key", the label of the column axis.

    Returns:
        uint8 array `[height, width, 3]`, the RGB image.
    """
    weights = np.asarray(weights, dtype=np.float32)  # [N, Tq, Tk]
    query_labels = [_as_text(token) for token in query_tokens]
    key_labels = [_as_text(token) for token in key_tokens]
    num_heads, num_queries, num_keys = weights.shape
    columns = min(num_heads, _HEADS_PER_ROW)
    rows = -(-num_heads // columns)
    # About 0.2 inch per token keeps 7 pt labels apart; never smaller than 2.2 inches.
    cell_width = max(2.2, 0.2 * num_keys + 0.8)
    cell_height = max(2.2, 0.2 * num_queries + 0.8)
    figure = Figure(
        figsize=(columns * cell_width + 0.8, rows * cell_height + 0.5),
        dpi=80,
        layout="constrained",
    )
    figure.suptitle(title, fontsize=9)
    grid = figure.subplots(rows, columns, squeeze=False)
    image = None
    for head, axes in enumerate(grid.flat):
        if head >= num_heads:
            axes.set_axis_off()
            continue
        image = axes.imshow(
            weights[head], cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest"
        )
        axes.set_title(f"head {head}", fontsize=8)
        axes.set_xticks(range(num_keys), key_labels, rotation=90, fontsize=7)
        axes.set_yticks(range(num_queries), query_labels, fontsize=7)
    figure.supylabel(f"{query_label} (attends)", fontsize=8)
    figure.supxlabel(f"{key_label} (attended to)", fontsize=8)
    figure.colorbar(image, ax=grid.ravel().tolist(), shrink=0.6)
    return _render(figure)


def _render(figure):
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # [height, width, 3]


def _probe_name(probe):
    name = str(probe)
    if not _PROBE_PATTERN.match(name):
        raise ValueError(
            f"Probe identifiers may hold only letters, digits, '_', '.' and '-', got {probe!r}."
        )
    return name


def _as_text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _token_array(tokens, field):
    values = np.asarray([_as_text(token) for token in tokens], dtype=object)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{field} must be a non-empty 1-D sequence of tokens, got {tokens!r}.")
    return values


def _attention_array(kind, weights, tokens):
    if kind not in KIND_AXES:
        raise ValueError(f"Unknown attention kind {kind!r}; expected one of {KINDS}.")
    weights = np.asarray(weights, dtype=np.float32)
    query_field, key_field = KIND_AXES[kind]
    expected = (len(tokens[query_field]), len(tokens[key_field]))
    if weights.ndim != 4 or weights.shape[2:] != expected:
        raise ValueError(
            f"{kind} attention must have shape [L, N, {expected[0]}, {expected[1]}] "
            f"({query_field} x {key_field}), got {weights.shape}."
        )
    return weights
