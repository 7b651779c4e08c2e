"""The ranking peers of `reelvec compare` (issue 10): implicit's ALS and BPR, a NumPy EASE^R and
popularity, trained on a split file written by `reelvec compare --write-split FILE` and evaluated
with a Python copy of reelvec's ranking protocol (reelvec-metrics' `protocol::evaluate`).

The split file: a header `user<TAB>movie<TAB>rating<TAB>timestamp<TAB>part`, then one line per
rating in the data file's order with raw ids, part = train, val or test. Movies are indexed in
order of first appearance in the file (reelvec's dense order), users likewise.

The protocol, as in Rust: every user with a test (or validation) movie is evaluated; candidates
are every movie of the file except the user's train movies (and, for test, validation movies);
the list is the 20 best candidates by score, ties by lower movie index, NaN and -inf never listed;
Recall@k = hits / min(k, |R|), NDCG@k binary gains with the ideal DCG over min(k, |R|) positions,
HR@k = [hits > 0], MRR = 1 / (0-based rank of the first relevant movie among the candidates + 1);
means over users with a relevant movie. On the top-10 lists: coverage (distinct / movies), Gini of
list occurrences over every movie, mean self-information -log2(max(train count, 1) / train rows) in
bits. Genre distance needs the catalogue and is not computed here (null).

Usage:
  python benches/peers/ranking.py --split split.tsv [--models popularity,ease,als,bpr]
      [--factors 64] [--iterations 15] [--regularization 10] [--alpha 1.0] [--ease-lambda 500]
      [--bpr-lr 0.01] [--bpr-regularization 0.01] [--bpr-iterations 100] [--threads 1]
      [--part test] [--seed 42] [--seeds 1] [--json OUT]

With --seeds N > 1 each model is fitted again at seeds seed+1 .. seed+N-1 (untimed) and its entry
gains `seed_mean`: the mean of each metric over the N fits (one seed's NDCG is noisy), and
`seed_standard_error`: that mean's standard error (sample standard deviation / sqrt(N)).

Requires numpy and scipy; `als` and `bpr` need `implicit` (requirements.txt). Timing: fit wall and
process CPU seconds, and per iteration for ALS and BPR.
"""

import argparse
import json
import math
import os
import sys
import time

# implicit's solvers parallelise themselves; a BLAS thread pool under them only competes.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

KS = (10, 20)
MAX_K = 20


def read_split(path):
    """(users, movies, parts) as int arrays in file order, dense ids by first appearance."""
    user_ids, movie_ids = {}, {}
    users, movies, parts = [], [], []
    code = {"train": 0, "val": 1, "test": 2}
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["user", "movie", "rating", "timestamp", "part"]:
            sys.exit(f"{path}: not a reelvec split file (header {header})")
        for line_no, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 5 or fields[4] not in code:
                sys.exit(f"{path}:{line_no}: expected 5 tab-separated fields ending in train/val/test")
            users.append(user_ids.setdefault(fields[0], len(user_ids)))
            movies.append(movie_ids.setdefault(fields[1], len(movie_ids)))
            parts.append(code[fields[4]])
    return np.array(users), np.array(movies), np.array(parts), len(user_ids), len(movie_ids)


def rows_by_user(users, movies, mask, n_users):
    """Per user, the sorted unique movies of the masked rows."""
    out = [[] for _ in range(n_users)]
    for u, m in zip(users[mask], movies[mask]):
        out[u].append(m)
    return [np.unique(np.array(r, dtype=np.int64)) for r in out]


def csr(rows, n_users, n_items):
    import scipy.sparse as sp

    indptr = np.zeros(n_users + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_users, n_items))


def cutoff_figures(positions, n_relevant, k):
    """(recall, ndcg, hit) at k from the 0-based positions of the relevant items in the list."""
    hits = [p for p in positions if p < k]
    dcg = sum(1.0 / math.log2(p + 2) for p in hits)
    ideal = min(k, n_relevant)
    idcg = sum(1.0 / math.log2(p + 2) for p in range(ideal))
    return len(hits) / ideal, dcg / idcg, float(len(hits) > 0)


def ranks_before(sa, a, sb, b):
    sa = -math.inf if math.isnan(sa) else sa
    sb = -math.inf if math.isnan(sb) else sb
    return sa > sb or (sa == sb and a < b)


def evaluate(score_block, users, exclude, relevant, train_counts, n_items, block=64):
    """The protocol's figures for `score_block(users) -> (len(users), n_items)` scores."""
    sums = {f"{name}@{k}": 0.0 for k in KS for name in ("recall", "ndcg", "hr")}
    sums["mrr"] = 0.0
    counted = 0
    lists = []
    for start in range(0, len(users), block):
        chunk = users[start : start + block]
        scores = np.asarray(score_block(chunk), dtype=np.float32).copy()
        for r, u in enumerate(chunk):
            row = scores[r]
            row[np.isnan(row)] = -np.inf
            row[exclude[u]] = np.nan
            key = np.where(np.isnan(row), -np.inf, row)
            order = np.argsort(-key, kind="stable")  # ties by lower index
            top = [int(j) for j in order[:MAX_K] if key[j] > -np.inf]
            lists.append(top)
            rel = np.setdiff1d(relevant[u], exclude[u])
            if len(rel) == 0:
                continue
            counted += 1
            rel_set = set(int(j) for j in rel)
            positions = [p for p, j in enumerate(top) if j in rel_set]
            for k in KS:
                recall, ndcg, hit = cutoff_figures(positions, len(rel), k)
                sums[f"recall@{k}"] += recall
                sums[f"ndcg@{k}"] += ndcg
                sums[f"hr@{k}"] += hit
            first = int(rel[0])
            for j in rel[1:]:
                if ranks_before(float(row[j]), int(j), float(row[first]), first):
                    first = int(j)
            candidate = np.ones(n_items, dtype=bool)
            candidate[exclude[u]] = False
            candidate[first] = False
            fs = key[first]
            idx = np.arange(n_items)
            before = int((candidate & ((key > fs) | ((key == fs) & (idx < first)))).sum())
            sums["mrr"] += 1.0 / (before + 1)
    out = {name: (value / counted if counted else None) for name, value in sums.items()}
    counts = np.zeros(n_items, dtype=np.int64)
    slots = 0
    info = -np.log2(np.maximum(train_counts, 1) / max(train_counts.sum(), 1))
    novelty = 0.0
    for top in lists:
        for j in top[:10]:
            counts[j] += 1
            slots += 1
            novelty += info[j]
    out["coverage@10"] = float((counts > 0).sum() / n_items)
    total = counts.sum()
    if total:
        x = np.sort(counts).astype(np.float64)
        n = len(x)
        out["gini@10"] = float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * total))
        out["novelty_bits@10"] = novelty / slots
    else:
        out["gini@10"] = out["novelty_bits@10"] = None
    out["genre_diversity@10"] = None
    order = [
        "recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@10", "hr@20", "mrr",
        "coverage@10", "gini@10", "novelty_bits@10", "genre_diversity@10",
    ]
    return {name: out[name] for name in order}, lists


def fit_popularity(x, args):
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
    return lambda users: np.tile(counts, (len(users), 1)), {}


def fit_ease(x, args):
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += args.ease_lambda
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    b = b.astype(np.float32)
    return lambda users: (x[users] @ b), {"lambda": args.ease_lambda}


def fit_als(x, args):
    from implicit.cpu.als import AlternatingLeastSquares

    # Hu et al.'s confidence c = 1 + alpha r with r = 1 (every rating an interaction), as
    # reelvec's ials; implicit takes the matrix entries as the confidence itself (its own `alpha`
    # only multiplies them), so the entries are 1 + alpha and implicit's alpha stays 1.
    x = x * (1.0 + args.alpha)
    model = AlternatingLeastSquares(
        factors=args.factors,
        regularization=args.regularization,
        alpha=1.0,
        iterations=args.iterations,
        use_cg=True,
        calculate_training_loss=False,
        random_state=args.seed,
        num_threads=args.threads,
    )
    model.fit(x, show_progress=False)
    u, v = np.asarray(model.user_factors), np.asarray(model.item_factors)
    params = {"factors": args.factors, "regularization": args.regularization, "alpha": args.alpha,
              "iterations": args.iterations}
    return lambda users: u[users] @ v.T, params


def fit_bpr(x, args):
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    model = BayesianPersonalizedRanking(
        factors=args.factors,
        learning_rate=args.bpr_lr,
        regularization=args.bpr_regularization,
        iterations=args.bpr_iterations,
        random_state=args.seed,
        num_threads=args.threads,
    )
    model.fit(x, show_progress=False)
    u, v = np.asarray(model.user_factors), np.asarray(model.item_factors)
    params = {"factors": args.factors, "learning_rate": args.bpr_lr,
              "regularization": args.bpr_regularization, "iterations": args.bpr_iterations}
    return lambda users: u[users] @ v.T, params


FITS = {"popularity": fit_popularity, "ease": fit_ease, "als": fit_als, "bpr": fit_bpr}
ITERATIONS = {"als": lambda a: a.iterations, "bpr": lambda a: a.bpr_iterations}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", required=True)
    ap.add_argument("--models", default="popularity,ease,als,bpr")
    ap.add_argument("--part", choices=["val", "test"], default="test")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--regularization", type=float, default=10.0)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--ease-lambda", type=float, default=500.0)
    ap.add_argument("--bpr-lr", type=float, default=0.01)
    ap.add_argument("--bpr-regularization", type=float, default=0.01)
    ap.add_argument("--bpr-iterations", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()

    users, movies, parts, n_users, n_items = read_split(args.split)
    train = rows_by_user(users, movies, parts == 0, n_users)
    val = rows_by_user(users, movies, parts == 1, n_users)
    test = rows_by_user(users, movies, parts == 2, n_users)
    if args.part == "test":
        exclude = [np.union1d(a, b) for a, b in zip(train, val)]
        relevant = test
    else:
        exclude, relevant = train, val
    evaluated = [u for u in range(n_users) if len(test[u]) > 0]
    x = csr(train, n_users, n_items)
    train_counts = np.bincount(movies[parts == 0], minlength=n_items)

    results = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name not in FITS:
            sys.exit(f"unknown model {name!r}: expected one of {', '.join(FITS)}")
        wall, cpu = time.perf_counter(), time.process_time()
        score, params = FITS[name](x, args)
        fit_seconds, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall = time.perf_counter()
        metrics, _ = evaluate(score, evaluated, exclude, relevant, train_counts, n_items)
        entry = {"params": params, args.part: metrics, "fit_seconds": fit_seconds,
                 "fit_cpu_seconds": fit_cpu, "score_seconds": time.perf_counter() - wall}
        if name in ITERATIONS:
            n = ITERATIONS[name](args)
            entry["seconds_per_iteration"] = fit_seconds / n
            entry["cpu_seconds_per_iteration"] = fit_cpu / n
        if args.seeds > 1:
            runs = [metrics]
            for extra in range(1, args.seeds):
                again = argparse.Namespace(**{**vars(args), "seed": args.seed + extra})
                score_again, _ = FITS[name](x, again)
                runs.append(evaluate(score_again, evaluated, exclude, relevant, train_counts, n_items)[0])
            numeric = [key for key in metrics if isinstance(metrics[key], (int, float))]
            entry["seed_mean"] = {key: float(np.mean([r[key] for r in runs])) for key in numeric}
            entry["seed_standard_error"] = {
                key: float(np.std([r[key] for r in runs], ddof=1) / math.sqrt(len(runs))) for key in numeric
            }
        results[name] = entry
        print(f"{name:<10} ndcg@10 {metrics['ndcg@10']:.4f} recall@10 {metrics['recall@10']:.4f} "
              f"fit {fit_seconds:.2f}s", file=sys.stderr)
    report = {"split": args.split, "part": args.part, "threads": args.threads, "models": results}
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
