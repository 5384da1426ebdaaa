"""The encoder-decoder Transformer as a Keras model.

Shape letters: B batch, S source length, T target length, D model width, V target vocabulary,
L layers, N heads, K hypotheses per sentence (beam search).
"""

import keras
import tensorflow as tf

from tf_transformer.config import TransformerConfig
from tf_transformer.layers import masks as masks_lib
from tf_transformer.layers.decoder import Decoder
from tf_transformer.layers.embedding import TokenEmbedding
from tf_transformer.layers.encoder import Encoder
from tf_transformer.layers.position import LearnedPositionEmbedding, SinusoidalPositionEncoding


@keras.saving.register_keras_serializable(package="tf_transformer")
class Transformer(keras.Model):
    """The Transformer of "Attention Is All You Need": encoder, decoder and output projection.

    The padding id (`config.pad_id`, 0 by default) is masked everywhere: padded source tokens
    get no attention, and the decoder self-attention is causal.

    Args:
        config: `TransformerConfig` (or its dict form). The hyperparameters.
        **kwargs: passed to `keras.Model` (`name`, `dtype`: a dtype policy such as
            "mixed_bfloat16" or "mixed_float16" for mixed precision).

    Call arguments:
        inputs: tuple (source_ids [B, S], target_input_ids [B, T]) of int tensors; the target
            input starts with START and is the target shifted right.
        training: bool.

    Returns:
        Logits [B, T, V], float32 whatever the compute dtype.

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = TransformerConfig.from_dict(config)
        if not isinstance(config, TransformerConfig):
            raise ValueError(
                f"`config` must be a TransformerConfig or a dict; received {config!r}.")
        self.transformer_config = config
        c, policy = config, self.dtype_policy
        self.source_embedding = TokenEmbedding(
            c.source_vocab_size, c.d_model, dtype=policy,
            name="shared_embedding" if c.share_embeddings else "source_embedding")
        self.target_embedding = self.source_embedding if c.share_embeddings else TokenEmbedding(
            c.target_vocab_size, c.d_model, dtype=policy, name="target_embedding")
        self.source_position = self._position_layer("source_position")
        self.target_position = self._position_layer("target_position")
        self.embedding_dropout = keras.layers.Dropout(c.dropout, dtype=policy)
        stack_args = dict(num_layers=None, num_heads=c.num_heads, inner_dim=c.d_ff,
                          dropout=c.dropout, attention_dropout=c.attention_dropout,
                          norm_first=c.norm_first, layer_norm_epsilon=c.layer_norm_epsilon,
                          dtype=policy)
        self.encoder = Encoder(**(stack_args | {"num_layers": c.num_encoder_layers}),
                               name="encoder")
        self.decoder = Decoder(**(stack_args | {"num_layers": c.num_decoder_layers}),
                               name="decoder")
        self.output_projection = None if c.tie_output else keras.layers.Dense(
            c.target_vocab_size, dtype=policy, name="output_projection")
        self.build()

    def _position_layer(self, name):
        c = self.transformer_config
        if c.position_encoding == "learned":
            return LearnedPositionEmbedding(c.max_length, dtype=self.dtype_policy, name=name)
        return SinusoidalPositionEncoding(c.max_length, variant=c.position_encoding,
                                          dtype=self.dtype_policy, name=name)

    def build(self, input_shape=None):
        # Build every sublayer now so that weights exist before the first call: restoring a
        # checkpoint and exporting a SavedModel rely on it.
        width = self.transformer_config.d_model
        hidden = (None, None, width)
        self.source_embedding.build()
        if not self.target_embedding.built:  # shared with the source
            self.target_embedding.build()
        self.source_position.build(hidden)
        self.target_position.build(hidden)
        self.encoder.build(hidden)
        self.decoder.build(hidden, hidden)
        if self.output_projection is not None:
            self.output_projection.build(hidden)
        self.built = True

    def call(self, inputs, training=None):
        source_ids, target_ids = inputs
        memory = self.encode(source_ids, training=training)  # [B, S, D]
        return self.decode(target_ids, memory, source_ids, training=training)  # [B, T, V]

    def _embed(self, embedding, position, token_ids, training, start_index=0):
        vectors = embedding(token_ids)  # [B, T, D]
        vectors = vectors + position(vectors, start_index=start_index,
                                     broadcast=False)  # [B, T, D]
        return self.embedding_dropout(vectors, training=training)

    def _logits(self, hidden):
        if self.output_projection is None:
            logits = self.target_embedding.logits(hidden)  # [B, T, V]
        else:
            logits = self.output_projection(hidden)  # [B, T, V]
        # Softmax and loss in float32: bf16/fp16 logits lose the small probabilities.
        return tf.cast(logits, tf.float32)

    def encode(self, source_ids, training=False):
        """Runs the encoder: source ids [B, S] -> memory [B, S, D]."""
        self._check_length(source_ids, "source")
        return self.encoder(
            self._embed(self.source_embedding, self.source_position, source_ids, training),
            padding_mask=self._padding_mask(source_ids), training=training)  # [B, S, D]

    def decode(self, target_ids, memory, source_ids, training=False):
        """Runs the decoder on a whole target prefix: [B, T] -> logits [B, T, V] float32.

        Args:
            target_ids: [B, T] int tensor, START followed by the target prefix.
            memory: [B, S, D] encoder output of `source_ids`.
            source_ids: [B, S] int tensor, for the source padding mask.
            training: bool.
        """
        self._check_length(target_ids, "target")
        hidden = self.decoder(
            self._embed(self.target_embedding, self.target_position, target_ids, training),
            memory, padding_mask=self._padding_mask(target_ids),
            memory_padding_mask=self._padding_mask(source_ids),
            training=training)  # [B, T, D]
        return self._logits(hidden)  # [B, T, V]

    def _padding_mask(self, token_ids):
        return masks_lib.padding_mask(token_ids, self.transformer_config.pad_id)  # [B, T]

    def _check_length(self, token_ids, what):
        tf.debugging.assert_less_equal(
            tf.shape(token_ids)[1], self.transformer_config.max_length,
            message=f"The {what} sequence is longer than the model's max_length="
                    f"{self.transformer_config.max_length}; truncate it first.")

    def init_cache(self, memory, source_ids, beam_size=1):
        """Returns the incremental decoding cache for `memory` [B, S, D].

        Args:
            memory: [B, S, D] encoder output of `source_ids`.
            source_ids: [B, S] int tensor; its padding is masked in encoder-decoder attention.
            beam_size: int or int32 scalar K, default 1. Hypotheses per sentence: the
                decoder steps take B*K tokens, grouped by sentence.

        Returns:
            A nested dict of tensors: "layers", one dict per decoder layer with "self" (keys
            and values of the positions decoded so far, [B*K, N, T, H], T=0 at first),
            "cross" (encoder keys/values, [B, N, S, H]) and "kernels" (the step's weights in
            the compute dtype, no batch axis, see `DecoderLayer.init_cache`); "memory_mask"
            [B, 1, 1, S]; and "output" (the output projection laid out for a step, see
            `_step_output_projection`).
            `select_cache` picks rows of it.
        """
        return {"layers": self.decoder.init_cache(memory, beam_size),
                "memory_mask": masks_lib.merge_masks(
                    masks_lib.padding_mask(source_ids, self.transformer_config.pad_id)),
                "output": self._step_output_projection()}

    def _step_output_projection(self):
        """The output projection as {"kernel": [D, V]} (and "bias": [V] when untied).

        The tied embedding table is [V, D]. TensorFlow's CPU matmul reads it through
        `transpose_b` about twice as slowly as a [D, V] copy at a decoding step's few rows
        (the step streams the whole table for a few rows), so decoding transposes it once per
        call, not at every step.
        """
        dtype = self.compute_dtype
        if self.output_projection is None:
            return {"kernel": tf.transpose(tf.cast(self.target_embedding.embeddings,
                                                   dtype))}  # [D, V]
        projection = {"kernel": tf.cast(self.output_projection.kernel, dtype)}  # [D, V]
        if self.output_projection.bias is not None:
            projection["bias"] = tf.cast(self.output_projection.bias, dtype)  # [V]
        return projection

    @staticmethod
    def select_cache(cache, hypotheses=None, sentences=None):
        """Picks rows of a decoding cache: beam reordering, or dropping finished sentences.

        Args:
            cache: from `init_cache` or `decode_step`.
            hypotheses: [B'*K] int tensor or None: the hypothesis rows to keep, in order, of
                the self-attention keys/values. None keeps them as they are.
            sentences: [B'] int tensor or None: the sentence rows to keep of the encoder
                keys/values and mask. None keeps them as they are.

        Returns:
            The cache with those rows.
        """
        def pick(structure, indices):
            if indices is None:
                return structure
            return tf.nest.map_structure(lambda t: tf.gather(t, indices), structure)

        return {"layers": [{"self": pick(layer["self"], hypotheses),
                            "cross": pick(layer["cross"], sentences),
                            "kernels": layer["kernels"]}
                           for layer in cache["layers"]],
                "memory_mask": pick(cache["memory_mask"], sentences),
                "output": cache["output"]}

    def decode_step(self, token_ids, step, cache):
        """Decodes one position from the cache.

        Args:
            token_ids: [B*K] int tensor, the tokens at position `step` (START at step 0), K
                hypotheses per sentence as in `init_cache`.
            step: int32 scalar, the position of `token_ids` (the number of cached positions).
            cache: from `init_cache` or the previous `decode_step`.

        Returns:
            (logits [B*K, V] float32 for position step + 1, updated cache).
        """
        embedded = self._embed(self.target_embedding, self.target_position, token_ids[:, None],
                               training=False, start_index=step)  # [B*K, 1, D]
        hidden, layers = self.decoder.decode_step(embedded, cache["layers"],
                                                  cache["memory_mask"])  # [B*K, 1, D]
        output = cache["output"]
        logits = tf.matmul(hidden[:, 0], output["kernel"])  # [B*K, V]
        if "bias" in output:
            logits = tf.nn.bias_add(logits, output["bias"])
        new_cache = {"layers": layers, "memory_mask": cache["memory_mask"], "output": output}
        # Float32 as `_logits`.
        return tf.cast(logits, tf.float32), new_cache  # [B*K, V]

    def attention_maps(self, source_ids, target_ids):
        """Attention weights of every layer and head, for inspection.

        Args:
            source_ids: [B, S] int tensor.
            target_ids: [B, T] int tensor (the decoder input: START + target prefix).

        Returns:
            dict of float32 tensors: "encoder_self" [B, L, N, S, S], "decoder_self"
            [B, L, N, T, T], "cross" [B, L, N, T, S], and "logits" [B, T, V].
        """
        memory, encoder_self = self.encoder(
            self._embed(self.source_embedding, self.source_position, source_ids, False),
            padding_mask=self._padding_mask(source_ids), training=False,
            return_attention_scores=True)
        hidden, (decoder_self, cross) = self.decoder(
            self._embed(self.target_embedding, self.target_position, target_ids, False),
            memory, padding_mask=self._padding_mask(target_ids),
            memory_padding_mask=self._padding_mask(source_ids), training=False,
            return_attention_scores=True)
        return {"encoder_self": encoder_self, "decoder_self": decoder_self, "cross": cross,
                "logits": self._logits(hidden)}

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under tf.distribute, Keras 3 builds the compiled loss and metrics from a batch it
        # takes off the training iterator and all-reduces (which fails for integer batches
        # under MultiWorkerMirroredStrategy). The inputs of this model are always int32
        # [B, S], [B, T] and labels [B, T], so build from those specs and leave the data alone.
        # A private Keras method: setup.cfg pins the Keras minor version it was written for.
        if self._distribute_strategy is None:
            return
        ids = keras.KerasTensor((None, None), "int32")
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=((ids, ids), ids))

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy),
                "config": self.transformer_config.to_dict()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        dtype = config.pop("dtype", None)
        if isinstance(dtype, dict):
            dtype = keras.dtype_policies.deserialize(dtype)
        return cls(dtype=dtype, **config)


COMPUTE_DTYPES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def with_compute_dtype(model, dtype):
    """Returns `model` rebuilt to compute in `dtype`, with the same (float32) weights.

    Reduced precision halves the memory traffic of every matmul; it pays on GPUs and on CPUs
    with AVX512-BF16 or AMX. Weights stay float32 (a Keras `mixed_*` dtype policy); softmax,
    logits and scores stay float32 whatever the compute dtype.

    Args:
        model: a `Transformer`.
        dtype: str, "float32", "bfloat16" or "float16".

    Returns:
        A `Transformer` whose layers compute in `dtype` (`model` itself for its own dtype).
    """
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"Unknown compute dtype {dtype!r}; choose one of "
                         f"{sorted(COMPUTE_DTYPES)}.")
    policy = COMPUTE_DTYPES[dtype]
    if model.dtype_policy.name == policy:
        return model
    rebuilt = Transformer(model.transformer_config, dtype=policy, name=model.name)
    rebuilt.set_weights(model.get_weights())
    return rebuilt
