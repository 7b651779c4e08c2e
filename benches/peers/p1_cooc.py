#!/usr/bin/env python3
"""P1 reference in PyTorch: co-occurrence factorisation, the dense M x M formulation (PROTOCOLS.md,
P1; notebook 001_31175209dfa845d8, which never trained; this is the standard completion).

Protocol: every catalogue movie (ml-latest-small: the 9,742 of movies.csv; ml-100k: the 1,682 of
u.item); liked_ui = 1 if r_ui >= 4; L the users x movies like matrix; X = L^T L with its diagonal set
to 0. Cost c(V) = sum over i != j of (v_i . v_j - X_ij)^2 with V of shape M x k (k = 20), computed as
the notebook wrote it: ((1 - I) * (V V^T - X)^2).sum() (the mask is built once, not every step).
Training: full-batch Adam on V, init N(0, 1) like the notebook's torch.randn; lr 0.2 and 500 steps
by default (one "epoch" = one full-batch step), which converge on ml-100k.

Reference: the rank-k truncation of X's eigendecomposition keeping positive eigenvalues,
V* = U_k sqrt(Lambda_k) (float64 numpy.linalg.eigh), and its cost with the diagonal masked. It is the
exact optimum when the diagonal is not masked; with the mask the optimizer can go a little below it.

Reported: cost per step, seconds per step (the dense formulation costs O(M^2 k) per step, the figure
reelvec's O(nnz(L) k + M k^2) step is compared with), the reference cost, the final/reference ratio,
and cosine neighbours of a few movies.
"""

import math
import time

import numpy as np
import torch

import common


def main():
    p = common.parser(__doc__.splitlines()[0], epochs=500)
    p.add_argument("--dim", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--like-threshold", type=float, default=4.0)
    p.add_argument("--init-scale", type=float, default=1.0)
    p.add_argument("--reference", choices=["eigh", "none"], default="eigh")
    p.add_argument("--log-every", type=int, default=50)
    args = p.parse_args()
    device = common.setup(args)
    wall = common.Stopwatch(device)

    data = common.load(args.data)
    # the catalogue defines the movie axis (movies never rated stay as all-zero columns)
    catalogue = np.array(sorted(set(data.titles) | set(np.unique(data.movie).tolist())), dtype=np.int64)
    users, _ = common.index_sorted(data.user)
    movies = np.searchsorted(catalogue, data.movie)
    n_users, n_movies = int(users.max()) + 1, len(catalogue)
    liked = data.rating >= args.like_threshold
    like = np.zeros((n_users, n_movies), dtype=np.float32)
    like[users[liked], movies[liked]] = 1.0
    x = like.T @ like
    np.fill_diagonal(x, 0.0)
    nnz = int(like.sum())

    reference, eig_seconds = None, None
    if args.reference == "eigh":
        t = time.perf_counter()
        w, u = np.linalg.eigh(x.astype(np.float64))
        eig_seconds = time.perf_counter() - t
        top = np.argsort(w)[::-1][: args.dim]
        v_star = u[:, top] * np.sqrt(np.clip(w[top], 0.0, None))
        resid = v_star @ v_star.T - x
        np.fill_diagonal(resid, 0.0)
        reference = float((resid ** 2).sum())
        common.log(args, f"reference (rank-{args.dim} eigendecomposition): cost {reference:.6g} in {eig_seconds:.1f}s")

    xt = torch.as_tensor(x, device=device)
    mask = 1.0 - torch.eye(n_movies, device=device)
    v = (torch.randn(n_movies, args.dim) * args.init_scale).to(device).requires_grad_()
    optimizer = torch.optim.Adam([v], lr=args.lr)
    per_epoch = []
    for step in range(args.epochs):
        clock = common.Stopwatch(device)
        optimizer.zero_grad()
        cost = (mask * (v @ v.t() - xt) ** 2).sum()
        cost.backward()
        optimizer.step()
        seconds = clock.seconds()
        cpu_seconds = clock.cpu_seconds()
        value = float(cost.detach())  # the cost at V before this step
        per_epoch.append({"epoch": step, "train_loss": value, "val_loss": None, "seconds": seconds, "cpu_seconds": cpu_seconds})
        if step % args.log_every == 0 or step == args.epochs - 1:
            ratio = f"  ({value / reference:.4f} x reference)" if reference else ""
            common.log(args, f"step {step:4d}  cost {value:.6g}{ratio}  {seconds * 1e3:.1f} ms")
    with torch.no_grad():
        final = float((mask * (v @ v.t() - xt) ** 2).sum())

    emb = v.detach().cpu().numpy().astype(np.float64)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-300)
    neighbours = {}
    for query in ["Star Wars (1977)", "Toy Story (1995)", "Matrix, The (1999)"]:
        raw = common.find_title(data.titles, query)
        if raw is not None:
            q = int(np.searchsorted(catalogue, raw))
            cos = unit @ unit[q]
            cos[q] = -np.inf
            neighbours[data.titles[raw]] = [data.titles.get(int(catalogue[j]), str(int(catalogue[j])))
                                            for j in np.argsort(-cos, kind="stable")[:5]]
    metrics = {
        "n_users": n_users, "n_movies": n_movies, "likes": nnz, "x_max": float(x.max()),
        "sum_x_squared": float((x.astype(np.float64) ** 2).sum()),
        "initial_cost": per_epoch[0]["train_loss"], "final_cost": final,
        "reference_cost": reference, "final_over_reference": final / reference if reference else None,
        "eigh_seconds": eig_seconds,
        "mean_step_seconds": sum(e["seconds"] for e in per_epoch) / len(per_epoch),
        "nearest_by_cosine": neighbours,
    }
    config = {"dim": args.dim, "lr": args.lr, "steps": args.epochs, "like_threshold": args.like_threshold,
              "init_scale": args.init_scale, "formulation": "dense M x M"}
    common.report(args, "p1_cooc", device, config, per_epoch, wall.seconds(), n_movies, metrics)


if __name__ == "__main__":
    main()
