"""gensim Word2Vec on a sequence corpus: the peer of `reelvec bench --suite corpus`.

Trains gensim's Word2Vec (skip-gram or CBOW with negative sampling) on a text corpus (one
sequence per line, tokens separated by spaces) with the settings reelvec used, times the
training alone (wall and process CPU seconds; vocabulary building excluded), writes the vectors
in word2vec text format (`KeyedVectors.save_word2vec_format`) so reelvec computes the quality
figure from both sides' exported vectors identically, and reports JSON:
{"fit_seconds", "fit_cpu_seconds", "epochs", "words_per_epoch", "vocab", "gensim_version", "params"}.
"""

import argparse
import json
import time

import gensim
from gensim.models import Word2Vec
from gensim.models.word2vec import LineSentence


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--corpus", required=True)
    p.add_argument("--vectors", required=True, help="word2vec text output")
    p.add_argument("--json", required=True)
    p.add_argument("--sg", type=int, choices=[0, 1], default=1)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=5)
    p.add_argument("--ns-exponent", type=float, default=0.75)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--alpha", type=float, default=0.025)
    p.add_argument("--min-alpha", type=float, default=0.0001)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()

    sentences = LineSentence(a.corpus)
    model = Word2Vec(
        vector_size=a.dim,
        window=a.window,
        min_count=a.min_count,
        sample=a.sample,
        sg=a.sg,
        hs=0,
        negative=a.negative,
        ns_exponent=a.ns_exponent,
        cbow_mean=1,
        alpha=a.alpha,
        min_alpha=a.min_alpha,
        workers=a.threads,
        seed=a.seed,
        shrink_windows=True,
    )
    model.build_vocab(sentences)
    words = model.corpus_total_words
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model.train(sentences, total_examples=model.corpus_count, epochs=a.epochs)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    model.wv.save_word2vec_format(a.vectors, binary=False)
    report = {
        "fit_seconds": wall,
        "fit_cpu_seconds": cpu,
        "epochs": a.epochs,
        "words_per_epoch": words,
        "vocab": len(model.wv),
        "gensim_version": gensim.__version__,
        "params": vars(a),
    }
    with open(a.json, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
