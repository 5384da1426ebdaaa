"""The main job on the bundled corpus: train, export, serve, translate.

1. Trains a small English -> Spanish Transformer on the bundled Anki corpus (`tft-train`),
   or resumes the run in --model-dir (a finished run is reused as it is).
2. Exports it as a SavedModel with the tokenizer inside (`tft-export`), as the next version
   under --export-base/translator.
3. Starts the TF-Serving-compatible server (`tft-serve`) on loopback.
4. Translates a few sentences through the REST API, printing each request and answer.

It sits above `trainers/` and `serving/` (it uses both); `make demo` runs it.

Usage:
    python -m demo [--model-dir runs/demo] [--export-base runs/demo/exports]
"""

import argparse
import json
import os
import sys

from serving.server.process import ServerProcess
from trainers.config import TrainingConfig
from trainers.train import format_summary, train

SENTENCES = [
    "I like to read books.",
    "Where is the train station?",
    "It's very cold today.",
    "My brother lives in a big city.",
    "Can you help me, please?",
]
MODEL_NAME = "translator"

# About 6-7 minutes of training on 2 CPU cores (validation BLEU about 25-29, lowercased).
# At this budget a narrow 2-layer model taking many small steps beats the `small` preset.
DEMO_TRAINING = TrainingConfig(
    vocab_size=4000, lowercase=True, max_length=32, batch_tokens=2048, epochs=12,
    steps_per_epoch=120, validation_steps=20, warmup_steps=300, bleu_samples=200,
    attention_probes=2, attention_images=True, verbose=2)
DEMO_MODEL = dict(num_encoder_layers=2, num_decoder_layers=2, d_model=128, num_heads=4,
                  d_ff=512, dropout=0.1, max_length=32)


def post(url, body):
    import requests

    print(f"POST {url}\n  {json.dumps(body, ensure_ascii=False)}", flush=True)
    response = requests.post(url, json=body, timeout=120)
    print(f"  -> {response.status_code} {json.dumps(response.json(), ensure_ascii=False)}",
          flush=True)
    response.raise_for_status()
    return response.json()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default="runs/demo/model")
    parser.add_argument("--export-base", default="runs/demo/exports")
    parser.add_argument("--epochs", type=int, default=DEMO_TRAINING.epochs)
    parser.add_argument("--steps-per-epoch", type=int, default=DEMO_TRAINING.steps_per_epoch)
    args = parser.parse_args(argv)

    print(f"== 1/4 Training on the bundled anki_spa_eng corpus (English -> Spanish) in "
          f"{args.model_dir}", flush=True)
    training = DEMO_TRAINING.replace(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch)
    summary = train(args.model_dir, training, preset="small", model_overrides=DEMO_MODEL)
    print(format_summary(summary), flush=True)

    from serving.export import export
    from tf_transformer.model_dir import load_model
    from tf_transformer.versions import next_version_dir

    export_base = os.path.abspath(os.path.join(args.export_base, MODEL_NAME))
    print(f"\n== 2/4 Exporting the best checkpoint to {export_base}", flush=True)
    model, tokenizers = load_model(args.model_dir)
    export_dir = export(model, tokenizers, next_version_dir(export_base))
    print(f"SavedModel written to {export_dir}", flush=True)

    print("\n== 3/4 Serving it with tft-serve (TF Serving's REST and gRPC APIs)", flush=True)
    print(f"$ tft-serve --model-name {MODEL_NAME} --model-base-path {export_base} "
          "--rest-port 0 --grpc-port 0", flush=True)
    server = ServerProcess(["--model-name", MODEL_NAME, "--model-base-path", export_base],
                           timeout=180)
    print("  " + "".join(server.output).strip(), flush=True)
    rest_url = server.rest_url
    try:
        print("\n== 4/4 Translating through the REST API", flush=True)
        predict = f"{rest_url}/v1/models/{MODEL_NAME}:predict"
        answer = post(predict, {"instances": SENTENCES})
        post(predict, {"signature_name": "translate_beams",
                       "inputs": {"text": SENTENCES[:2], "beam_size": 4, "top_beams": 2,
                                  "alpha": 0.6}})
        print("\nTranslations (greedy):")
        for sentence, prediction in zip(SENTENCES, answer["predictions"]):
            print(f"  {sentence}  ->  {prediction['translation']}")
    finally:
        server.terminate()
    bleu = summary.get("best_val_bleu")
    print(f"\nDone. Validation BLEU {bleu:.1f}. Serve it again with:\n  tft-serve --model-name "
          f"{MODEL_NAME} --model-base-path {export_base}" if bleu is not None else "\nDone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
