"""A synthetic corpus where every sentence is five single-piece words, and subprocess helpers.

Every pair has the same length in tokens (5 source, 5 + START/END target), so every batch of
the same size holds the same number of target tokens: the per-replica token-mean losses of a
distributed step then average to exactly the token mean of the whole step, and a distributed
run can be compared number for number with a single-device run.
"""

import json
import os
import random
import socket
import subprocess
import sys

import pytest

WORDS = ["apple", "river", "stone", "cloud", "green", "house", "light", "night", "plant",
         "sound", "table", "water", "bread", "chair", "dream", "field"]
# Target words: the source words in reverse order, each mapped to another word.
TRANSLATION = dict(zip(WORDS, ["manzana", "rio", "piedra", "nube", "verde", "casa", "luz",
                               "noche", "planta", "sonido", "mesa", "agua", "pan", "silla",
                               "sueno", "campo"]))
SENTENCE_WORDS = 5
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_corpus(directory, train_pairs=384, validation_pairs=48, seed=0):
    """Writes train, validation and test .en/.es files of the synthetic corpus."""
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    for split, count in (("train", train_pairs), ("validation", validation_pairs),
                         ("test", validation_pairs)):
        sources, targets = [], []
        for _ in range(count):
            words = [rng.choice(WORDS) for _ in range(SENTENCE_WORDS)]
            sources.append(" ".join(words))
            targets.append(" ".join(TRANSLATION[word] for word in reversed(words)))
        for lang, lines in (("en", sources), ("es", targets)):
            with open(os.path.join(directory, f"{split}.{lang}"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
    return directory


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    return write_corpus(str(tmp_path_factory.mktemp("corpus")))


def free_ports(count):
    """Loopback ports that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def python_env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1",
               PYTHONPATH=PROJECT_ROOT)
    env.update(extra)
    return env


def run_python(code, timeout=300, **env):
    """Runs `code` in a fresh interpreter; returns the JSON object its last stdout line holds."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=timeout, env=python_env(**env), cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
