"""Reduced-precision exports against float32: BLEU and identical translations.

    python benchmarks/export_dtype.py --model-dir MODEL_DIR [--split test] [--sentences 500]

1. `tft-export --dtype D` of the model directory's best checkpoint, for float32, bfloat16
   and float16 (the product's own command, in a temporary folder).
2. Each export translates the first --sentences sentences of --split of the data the model
   was trained on (read from the model directory), greedy and with beam search, through
   `translate_texts`, the library's batched translation path.
3. Prints corpus sacreBLEU against the references and the share of sentences translated
   exactly as the float32 export does.

On a CPU without bf16/fp16 matmul units the point is fidelity, not speed. The figures go to
--json (default benchmarks/results/export_dtype.json).
"""

import argparse
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402, F401  (the export's tokenizer ops)

from benchmarks import common  # noqa: E402
from tf_transformer.data import load_parallel  # noqa: E402
from tf_transformer.metrics import corpus_bleu  # noqa: E402
from tf_transformer.model_dir import read_config_document  # noqa: E402
from tf_transformer.translator import translate_texts  # noqa: E402
from tf_transformer.versions import latest_saved_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = ("float32", "bfloat16", "float16")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="a tft-train model directory")
    parser.add_argument("--split", default="test", help="split of the model's training data")
    parser.add_argument("--sentences", type=int, default=500,
                        help="the first N sentences of the split")
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=0.6)
    parser.add_argument("--json", default=os.path.join(HERE, "results", "export_dtype.json"))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    data = read_config_document(args.model_dir)["data"]
    pairs = load_parallel(data["name"], args.split, data["source_lang"], data["target_lang"])
    sources, references = [], []
    for source, target in pairs.take(args.sentences).as_numpy_iterator():
        sources.append(source.decode("utf-8"))
        references.append(target.decode("utf-8"))
    print(f"{data['name']} {args.split}: {len(sources)} sentences, "
          f"{data['source_lang']}->{data['target_lang']}", flush=True)

    work_dir = tempfile.mkdtemp(prefix="tft-export-dtype-")
    decoders = {"greedy": {}, f"beam {args.beam_size}": dict(beam_size=args.beam_size,
                                                            alpha=args.alpha)}
    translations, rows = {}, []
    for dtype in DTYPES:
        export_dir = os.path.join(work_dir, dtype)
        subprocess.run([sys.executable, "-m", "serving.export", "--model-dir", args.model_dir,
                        "--export-dir", export_dir, "--dtype", dtype], check=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL)
        export = tf.saved_model.load(latest_saved_model(export_dir))
        row = {"dtype": dtype}
        for decoder, options in decoders.items():
            outputs = translate_texts(export, sources, **options)
            translations[dtype, decoder] = outputs
            reference = translations["float32", decoder]
            row[decoder] = {
                "bleu": corpus_bleu(outputs, references),
                "identical": sum(a == b for a, b in zip(outputs, reference)) / len(outputs)}
        rows.append(row)
        print(f"{dtype:9} " + "  ".join(
            f"{decoder}: BLEU {row[decoder]['bleu']:.2f}, identical {row[decoder]['identical']:.1%}"
            for decoder in decoders), flush=True)

    header = "| compute | " + " | ".join(
        f"{decoder} BLEU | identical" for decoder in decoders) + " |"
    table = [header, "|---|" + "--:|--:|" * len(decoders)]
    for row in rows:
        table.append(f"| {row['dtype']} | " + " | ".join(
            f"{row[decoder]['bleu']:.2f} | {row[decoder]['identical']:.1%}"
            for decoder in decoders) + " |")
    print("\n" + "\n".join(table))
    common.write_json(args.json, {"machine": common.machine_info(), "args": vars(args),
                                  "data": data, "rows": rows, "table": "\n".join(table)})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
