"""`tft-translate`: translate a file with an export or a running server, and score it.

One line in, one line out; empty lines stay empty (they are not sent to the model). The
sentences go to the model in token-budget batches of similar length (see
`tf_transformer.translator.translate_in_batches`); the output keeps the input's order.

    tft-translate --export-dir exports/translator --input test.en --output test.es \\
        [--beam-size 4 --alpha 0.6] [--reference test.ref.es [test.ref2.es ...]]
    tft-translate --server http://127.0.0.1:8501 --model-name translator < test.en
    tft-translate --export-dir exports/translator --beam-size 4 --top-beams 4 < test.en
    tft-translate --ctranslate2 exports/ct2 --compute-type int8 < test.en

With `--top-beams K`, each input line gives K lines `index \\t rank \\t score \\t translation`
(index counts input lines from 0, rank from 1, best first; score is the beam search's
log-probability divided by the length penalty; an empty input line gives K empty translations
with score 0). With `--reference FILE [FILE ...]` (one file per set of references, as the
sacrebleu command takes them), corpus BLEU and chrF (sacrebleu, default settings) of the
(best) translations are printed to stderr with sacrebleu's signatures.

The export needs only TensorFlow and TensorFlow Text: `--beam-size 1` (the default) without
`--top-beams` runs its `serving_default` signature (greedy), anything else `translate_beams`.
`--server` sends the same requests to TF Serving's REST API (tft-serve or TensorFlow Serving).
`--ctranslate2` runs a model written by `tft-export --format ctranslate2` on CTranslate2 (the
`ctranslate2` extra), with the model's own tokenizers: greedy translations equal the
SavedModel's; beam search and its length penalty are CTranslate2's (see
`serving.ctranslate2_model`).

Bad input (missing file, reference of another length, --top-beams above --beam-size, no
SavedModel, unreachable server) is reported before anything is translated, with exit status 2;
a request the model fails exits with status 1. `--output` is written only at the end.
"""

import argparse
import os
import sys

PROG = "tft-translate"


class UsageError(Exception):
    """Bad input: the message says what was wrong and how to fix it (exit status 2)."""


class TranslationError(Exception):
    """The model (or the server) failed to answer a batch (exit status 1)."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Translate a text file, one sentence per line, with an exported "
        "model or a running server; optionally score it against a reference.")
    model = parser.add_argument_group("model (one of)")
    model.add_argument("--export-dir", metavar="DIR", help="a SavedModel written by tft-export, or "
                       "EXPORT_BASE/NAME (its newest numeric version is used)")
    model.add_argument("--server", metavar="URL",
                       help="REST address of tft-serve or TensorFlow Serving, "
                            "e.g. http://127.0.0.1:8501")
    model.add_argument("--model-name", default="translator", metavar="NAME",
                       help="model name on the server (default: translator)")
    model.add_argument("--ctranslate2", metavar="DIR",
                       help="a CTranslate2 model written by tft-export --format ctranslate2 "
                            "(or a folder of numbered versions of one)")
    model.add_argument("--compute-type", default="default", metavar="TYPE",
                       help="with --ctranslate2: CTranslate2's compute type, e.g. int8, "
                            "float32 (default: the stored weights' type)")
    model.add_argument("--threads", type=int, default=0, metavar="N",
                       help="with --ctranslate2: CPU threads (default: CTranslate2's)")
    files = parser.add_argument_group("files")
    files.add_argument("--input", metavar="FILE",
                       help="source sentences, one per line (default: stdin)")
    files.add_argument("--output", metavar="FILE", help="translations (default: stdout); "
                       "written only when everything is translated")
    files.add_argument("--reference", metavar="FILE", nargs="+",
                       help="reference translations, one per input line (several files: "
                       "several references per line): print corpus BLEU and chrF to stderr")
    decoding = parser.add_argument_group("decoding")
    decoding.add_argument("--beam-size", type=int, default=1, metavar="N",
                          help="1 = greedy (default), more = beam search")
    decoding.add_argument("--alpha", type=float, default=0.6,
                          help="length penalty of beam search (GNMT's alpha; default 0.6)")
    decoding.add_argument("--top-beams", type=int, default=None, metavar="K",
                          help="write the K best translations of each line as "
                               "'index<TAB>rank<TAB>score<TAB>translation' lines")
    decoding.add_argument("--batch-tokens", type=int, default=4096, metavar="N",
                          help="padded source words per batch: sentences x longest sentence "
                               "(default 4096)")
    decoding.add_argument("--max-sentences", type=int, default=256, metavar="N",
                          help="most sentences per batch (default 256; at most a server's "
                               "--max-instances)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def check_arguments(args):
    """Raises UsageError for argument combinations that cannot work."""
    given = [args.export_dir, args.server, args.ctranslate2]
    if sum(value is not None for value in given) != 1:
        raise UsageError("give exactly one of --export-dir DIR (a SavedModel), --server URL (a "
                         "running tft-serve or TensorFlow Serving) and --ctranslate2 DIR (a "
                         "model written by tft-export --format ctranslate2)")
    if args.ctranslate2 is None and (args.compute_type != "default" or args.threads):
        raise UsageError("--compute-type and --threads are for --ctranslate2")
    if args.server is not None and not args.server.startswith(("http://", "https://")):
        raise UsageError(f"--server takes the REST address with its scheme, such as "
                         f"http://127.0.0.1:8501; got {args.server!r}")
    if args.beam_size < 1:
        raise UsageError(f"--beam-size must be at least 1, got {args.beam_size}")
    if args.top_beams is not None and not 1 <= args.top_beams <= args.beam_size:
        raise UsageError(f"--top-beams {args.top_beams} must be between 1 and --beam-size "
                         f"({args.beam_size}); raise --beam-size to at least {args.top_beams}")
    for option in ("batch_tokens", "max_sentences"):
        if getattr(args, option) < 1:
            raise UsageError(f"--{option.replace('_', '-')} must be positive, got "
                             f"{getattr(args, option)}")
    if args.output is not None:
        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder):
            raise UsageError(f"--output {args.output}: the folder {folder} does not exist")


def read_lines(path, what):
    """Lines of a UTF-8 file (or stdin if `path` is None), without their line ends."""
    try:
        if path is None:
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a folder; give a text file") from None
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise UsageError(f"{what} {path or '(stdin)'}, line {line}, is not UTF-8 text "
                         f"({error.reason} at byte {error.start}); convert the file to UTF-8, "
                         f"e.g. with iconv -f LATIN1 -t UTF-8") from None
    # Only "\n" ends a line: str.splitlines() would also split on characters such as U+2028,
    # and the output would no longer match the input line for line.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def write_output(path, text):
    """Writes `text` as UTF-8 to `path` at once (a file beside it renamed into place), or to
    stdout."""
    data = text.encode("utf-8")
    if path is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    path = os.path.abspath(path)
    staging = os.path.join(os.path.dirname(path),
                           f".{os.path.basename(path)}.tft-translate-{os.getpid()}")
    try:
        with open(staging, "xb") as f:
            f.write(data)
        os.replace(staging, path)
    except BaseException:
        if os.path.exists(staging):
            os.unlink(staging)
        raise


class ExportModel:
    """The signatures of an exported translator, called in this process.

    Args:
        export_dir: str, a SavedModel or a folder of numbered SavedModel versions.
    """

    def __init__(self, export_dir):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

        from tf_transformer.versions import latest_saved_model

        try:
            self.path = latest_saved_model(export_dir)
        except ValueError as error:
            raise UsageError(f"--export-dir {error} Write one with: tft-export --model-dir "
                             f"MODEL_DIR --export-dir {export_dir}") from None

        self._tf = tf
        self.errors = (tf.errors.OpError,)  # a request the model could not answer
        self.signatures = tf.saved_model.load(self.path).signatures
        missing = {"serving_default", "translate_beams"} - set(self.signatures)
        if missing:
            raise UsageError(f"the SavedModel {self.path} has no signature "
                             f"{', '.join(sorted(missing))}; export it with tft-export")

    def greedy(self, texts):
        """[B] str -> ([B] translations, [B] scores)."""
        answer = self.signatures["serving_default"](text=self._tf.constant(texts))
        return ([t.decode("utf-8") for t in answer["translation"].numpy()],
                answer["score"].numpy().tolist())

    def beams(self, texts, beam_size, top_beams, alpha):
        """[B] str -> ([B, K] translations, [B, K] scores), best first."""
        tf = self._tf
        answer = self.signatures["translate_beams"](
            text=tf.constant(texts), beam_size=tf.constant(beam_size, tf.int32),
            top_beams=tf.constant(top_beams, tf.int32), alpha=tf.constant(alpha, tf.float32))
        return ([[t.decode("utf-8") for t in row] for row in answer["translations"].numpy()],
                answer["scores"].numpy().tolist())


class ServerModel:
    """The same signatures over TF Serving's REST API.

    Args:
        url: str, e.g. "http://127.0.0.1:8501".
        model_name: str.

    Raises:
        UsageError: the server cannot be reached or does not serve `model_name`.
    """

    def __init__(self, url, model_name):
        import requests

        from serving.client import RestClient, ServingClientError

        self.client = RestClient(url, model_name, timeout=600.0)
        self.errors = (ServingClientError, requests.RequestException)
        try:
            self.client.status()
        except requests.RequestException as error:
            raise UsageError(
                f"cannot reach a server at {url} ({type(error).__name__}). Start one with: "
                f"tft-serve --model-name {model_name} --model-base-path EXPORT_BASE/"
                f"{model_name} --rest-port PORT, or translate without a server: "
                "--export-dir EXPORT_BASE/NAME") from None
        except ServingClientError as error:
            raise UsageError(f"the server at {url} cannot serve model {model_name!r}: "
                             f"{error.message}") from None

    def greedy(self, texts):
        predictions = self.client.translate(texts)
        return [p["translation"] for p in predictions], [p["score"] for p in predictions]

    def beams(self, texts, beam_size, top_beams, alpha):
        outputs = self.client.translate_beams(texts, beam_size=beam_size, top_beams=top_beams,
                                              alpha=alpha)
        return outputs["translations"], outputs["scores"]


def ctranslate2_model(directory, compute_type, threads):
    """A model written by `tft-export --format ctranslate2`, run by CTranslate2 in this process
    (`serving.ctranslate2_model.CTranslate2Translator`).

    Raises:
        UsageError: CTranslate2 is not installed, or cannot load the folder.
    """
    from serving.ctranslate2_model import CTranslate2Translator

    try:
        return CTranslate2Translator(directory, compute_type, threads)
    except ValueError as error:
        raise UsageError(f"--ctranslate2 {error}") from None


def nbest_lines(translations, scores):
    """`index \\t rank \\t score \\t translation` lines; [N][K] lists in."""
    return [f"{index}\t{rank}\t{score:.6f}\t{translation}"
            for index, (row, row_scores) in enumerate(zip(translations, scores))
            for rank, (translation, score) in enumerate(zip(row, row_scores), start=1)]


def score_lines(hypotheses, references):
    """Corpus BLEU and chrF lines, formatted like the sacrebleu command's text output.

    Args:
        hypotheses: [N] str.
        references: one or more reference sets, each [N] str.
    """
    from sacrebleu.metrics import BLEU, CHRF

    lines = []
    for metric in (BLEU(), CHRF()):
        score = metric.corpus_score(hypotheses, references)
        lines.append(score.format(signature=metric.get_signature().format()))
    return lines


def translate_lines(model, lines, args):
    """Translates `lines`; returns ([N][K] translations, [N][K] scores), K = 1 for greedy.

    Empty (or whitespace-only) lines get "" and score 0 without going to the model.
    """
    from tqdm import tqdm

    from tf_transformer.translator import translate_in_batches

    top_beams = args.top_beams or 1

    def translate_batch(texts):
        if args.beam_size == 1 and args.top_beams is None:
            translations, scores = model.greedy(texts)
            return [([t], [s]) for t, s in zip(translations, scores)]
        translations, scores = model.beams(texts, args.beam_size, top_beams, args.alpha)
        return list(zip(translations, scores))

    indexes = [i for i, line in enumerate(lines) if line.strip()]
    results = [([""] * top_beams, [0.0] * top_beams)] * len(lines)
    bar = tqdm(total=len(indexes), unit="sentence", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet or not sys.stderr.isatty())
    with bar:
        translated = translate_in_batches([lines[i] for i in indexes], translate_batch,
                                          batch_tokens=args.batch_tokens,
                                          max_sentences=args.max_sentences,
                                          progress=lambda done, total: bar.update(done - bar.n))
    for i, result in zip(indexes, translated):
        results[i] = result
    return [list(t) for t, _ in results], [list(s) for _, s in results]


def run(args):
    check_arguments(args)
    lines = read_lines(args.input, "--input")
    references = None
    if args.reference is not None:
        references = [read_lines(path, "--reference") for path in args.reference]
        for path, reference in zip(args.reference, references):
            if len(reference) != len(lines):
                raise UsageError(
                    f"--reference {path} has {len(reference)} lines but the input "
                    f"({args.input or 'stdin'}) has {len(lines)}; they must match line for "
                    f"line")
    if args.export_dir is not None:
        model = ExportModel(args.export_dir)
    elif args.server is not None:
        model = ServerModel(args.server, args.model_name)
    else:
        model = ctranslate2_model(args.ctranslate2, args.compute_type, args.threads)

    try:
        translations, scores = translate_lines(model, lines, args)
    except model.errors as error:
        hint = ""
        if getattr(error, "status", None) in (400, 413):
            hint = (" (a request too large for the server? lower --max-sentences or "
                    "--batch-tokens)")
        raise TranslationError(f"translation failed: {error}{hint}") from error
    if args.top_beams is not None:
        out = nbest_lines(translations, scores)
    else:
        out = [row[0] for row in translations]
    write_output(args.output, "".join(line + "\n" for line in out))
    if references is not None:
        for line in score_lines([row[0] for row in translations], references):
            print(line, file=sys.stderr)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except TranslationError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
