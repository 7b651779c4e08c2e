#!/usr/bin/env python3
"""Surprise's SVD on a rating split: the peer of reelvec's P2 on the speed/accuracy frontier.

Surprise's SVD is Funk-style biased matrix factorisation, pred = mu + b_u + b_i + p_u . q_i,
trained by plain SGD over the rating rows (lr_all 0.005, reg_all 0.02, N(0, 0.1) init: its
defaults). For each (n_factors, n_epochs) given, the fit is repeated `--repeats` times (median
CPU and wall seconds of `fit` alone; building the trainset is not timed) and the fitted model is
scored on the validation rows: RMSE of the raw estimate and of Surprise's default prediction,
clipped to the rating scale.

With --split (common.py's rows format) it trains on exactly reelvec's rows; otherwise on a seeded
80/20 row split. Surprise is single-threaded (Cython), so --threads and --device are accepted
for the common command line and ignored. Writes {"implementation": "surprise", "version", ...,
"metrics": {"points": [{factors, epochs, fit_cpu_seconds, fit_wall_seconds, val_rmse,
val_rmse_clipped, runs}]}}.
"""

import json
import math
import os
import statistics
import tempfile
import time

import numpy as np
import surprise

import common


def main():
    p = common.parser(__doc__.splitlines()[0], epochs=20)
    common.add_split_args(p)
    p.add_argument("--factors", default="50,100", help="n_factors values, comma-separated")
    p.add_argument("--epoch-list", default="5,10,20,40", help="n_epochs values, comma-separated")
    p.add_argument("--repeats", type=int, default=3, help="fits per point (median time)")
    p.add_argument("--test-fraction", type=float, default=0.2)
    args = p.parse_args()
    if not args.data:
        raise SystemExit("error: pass --data PATH (or set REELVEC_DATA)")
    data = common.load(args.data)
    train, val = common.resolve_split(args, "rows", len(data),
                                      common.random_split(len(data), args.test_fraction, args.seed))
    lo, hi = float(data.rating.min()), float(data.rating.max())
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.tsv")
        with open(path, "w") as f:
            for r in train:
                f.write(f"{data.user[r]}\t{data.movie[r]}\t{data.rating[r]}\n")
        reader = surprise.Reader(line_format="user item rating", sep="\t", rating_scale=(lo, hi))
        trainset = surprise.Dataset.load_from_file(path, reader).build_full_trainset()
    val_rows = [(str(data.user[r]), str(data.movie[r]), float(data.rating[r])) for r in val]
    points = []
    for factors in [int(x) for x in args.factors.split(",")]:
        for epochs in [int(x) for x in args.epoch_list.split(",")]:
            cpu, wall = [], []
            for _ in range(max(1, args.repeats)):
                algo = surprise.SVD(n_factors=factors, n_epochs=epochs, random_state=args.seed)
                c0, w0 = time.process_time(), time.perf_counter()
                algo.fit(trainset)
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            raw = np.array([algo.predict(u, i, clip=False).est for u, i, _ in val_rows])
            truth = np.array([r for _, _, r in val_rows])
            rmse = math.sqrt(float(np.mean((raw - truth) ** 2)))
            clipped = math.sqrt(float(np.mean((np.clip(raw, lo, hi) - truth) ** 2)))
            points.append({"factors": factors, "epochs": epochs, "fit_cpu_seconds": statistics.median(cpu),
                           "fit_wall_seconds": statistics.median(wall), "val_rmse": rmse,
                           "val_rmse_clipped": clipped, "runs": len(cpu)})
            common.log(args, f"surprise SVD f={factors} e={epochs}: {statistics.median(cpu):.3f} s CPU, "
                             f"val RMSE {rmse:.4f} (clipped {clipped:.4f})")
    report = {"implementation": "surprise", "version": surprise.__version__, "pipeline": "P2-frontier",
              "train_rows": len(train), "val_rows": len(val), "metrics": {"points": points}}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
