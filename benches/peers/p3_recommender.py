#!/usr/bin/env python3
"""P3 reference in PyTorch: sigmoid dot-product recommender with diversity and novelty (PROTOCOLS.md,
P3; notebook 003_295f0bf3d3597754).

Protocol defaults: ratings of the small MovieLens (any layout works; ml-100k here); users and movies
indexed by order of first appearance; ratings min-max scaled to [0, 1]; random 90/10 split (our
seeded permutation); pred = sigmoid(p_u . q_i + b_u + c_i), k = 16, nn.Embedding tables; MSE on the
scaled rating; Adam lr 0.01; batch 64 shuffled; 10 epochs. The weights are saved with torch.save and
loaded back into a fresh model, which then produces every reported figure.

Reported: per-epoch train/val MSE on the scaled rating (mean of batch means, as the notebook),
validation RMSE and MAE in stars; for every user's top-10 (over all movies, as the notebook, and with
the user's training movies excluded): intra-list diversity (mean over the 45 pairs of 1 - cosine of
movie embeddings, then over users), the notebook's "novelty" (mean of each movie's mean original
rating), self-information novelty (-log2(count_i / n_train_rows), count = training rows of movie i,
mean over slots; Castells et al. as implemented by Microsoft recommenders) and catalogue coverage.
"""

import math
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import common


class RecommenderNet(nn.Module):
    def __init__(self, num_users, num_movies, embedding_size=16):
        super().__init__()
        self.user_embedding = nn.Embedding(num_users, embedding_size)
        self.user_bias = nn.Embedding(num_users, 1)
        self.movie_embedding = nn.Embedding(num_movies, embedding_size)
        self.movie_bias = nn.Embedding(num_movies, 1)

    def forward(self, user_indexes, movie_indexes):
        dot = (self.user_embedding(user_indexes) * self.movie_embedding(movie_indexes)).sum(1)
        return torch.sigmoid(dot + self.user_bias(user_indexes).flatten() + self.movie_bias(movie_indexes).flatten())

    def score_all(self, users):
        """Scores of every movie for each of `users` (rows), higher = better."""
        logits = self.user_embedding(users) @ self.movie_embedding.weight.T
        logits = logits + self.user_bias(users) + self.movie_bias.weight.T
        return torch.sigmoid(logits)


def main():
    p = common.parser(__doc__.splitlines()[0], epochs=10)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--top-n", type=int, default=10)
    common.add_split_args(p)
    args = p.parse_args()
    device = common.setup(args)
    wall = common.Stopwatch(device)

    data = common.load(args.data)
    users, user_ids = common.index_by_first_appearance(data.user)
    movies, movie_ids = common.index_by_first_appearance(data.movie)
    n_users, n_movies = len(user_ids), len(movie_ids)
    lo, hi = float(data.rating.min()), float(data.rating.max())
    scaled = ((data.rating - lo) / (hi - lo)).astype(np.float32)  # MinMaxScaler
    train_rows, val_rows = common.resolve_split(args, "rows", len(data),
                                                common.random_split(len(data), args.test_fraction, args.seed))

    def tensors(rows):
        return (torch.as_tensor(users[rows], device=device), torch.as_tensor(movies[rows], device=device),
                torch.as_tensor(scaled[rows], device=device))

    train_u, train_m, train_r = tensors(train_rows)
    val_u, val_m, val_r = tensors(val_rows)
    model = RecommenderNet(n_users, n_movies, args.dim).to(device)
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)

    def validate(net):
        with torch.no_grad():
            means, sq, ab = [], 0.0, 0.0
            for start in range(0, len(val_r), args.batch_size):
                sl = slice(start, start + args.batch_size)
                pred = net(val_u[sl], val_m[sl])
                means.append(float(loss_fn(pred, val_r[sl])))
                err = (pred - val_r[sl]) * (hi - lo)  # in stars
                sq += float((err ** 2).sum())
                ab += float(err.abs().sum())
            return sum(means) / len(means), math.sqrt(sq / len(val_r)), ab / len(val_r)

    per_epoch = []
    for epoch in range(args.epochs):
        clock = common.Stopwatch(device)
        model.train()
        perm = torch.randperm(len(train_r), generator=generator).to(device)
        running, n_batches = 0.0, 0
        for start in range(0, len(perm), args.batch_size):
            idx = perm[start:start + args.batch_size]
            model.zero_grad()
            loss = loss_fn(model(train_u[idx], train_m[idx]), train_r[idx])
            loss.backward()
            optimizer.step()
            running += loss.detach()
            n_batches += 1
        seconds = clock.seconds()
        cpu_seconds = clock.cpu_seconds()
        clock = common.Stopwatch(device)
        model.eval()
        val_mse, val_rmse, val_mae = validate(model)
        val_seconds = clock.seconds()
        train_loss = float(running) / n_batches
        per_epoch.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_mse, "val_rmse_stars": val_rmse,
                          "seconds": seconds, "cpu_seconds": cpu_seconds, "val_seconds": val_seconds})
        common.log(args, f"epoch {epoch:2d}  loss {train_loss:.5f}  val_loss {val_mse:.5f}  "
                         f"val_rmse {val_rmse:.4f} stars  {seconds:.2f}s (+{val_seconds:.2f}s val)")

    # save and reload into a fresh model, as the notebook does; the reloaded model reports
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model_weights.pth"
        torch.save(model.state_dict(), path)
        reloaded = RecommenderNet(n_users, n_movies, args.dim).to(device)
        reloaded.load_state_dict(torch.load(path))
        reloaded.eval()
    _, val_rmse, val_mae = validate(reloaded)

    # top-N for every user, with and without the user's training movies
    clock = common.Stopwatch(device)
    seen = torch.zeros(n_users, n_movies, dtype=torch.bool, device=device)
    seen[train_u, train_m] = True
    with torch.no_grad():
        scores = reloaded.score_all(torch.arange(n_users, device=device))
        top_all = scores.topk(args.top_n, dim=1).indices.cpu().numpy()
        top_unseen = scores.masked_fill(seen, -math.inf).topk(args.top_n, dim=1).indices.cpu().numpy()
    emb = reloaded.movie_embedding.weight.detach().cpu().numpy().astype(np.float64)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-300)
    mean_rating = np.bincount(movies, weights=data.rating, minlength=n_movies) / np.maximum(
        np.bincount(movies, minlength=n_movies), 1)
    train_counts = np.bincount(movies[train_rows], minlength=n_movies)
    self_info = np.where(train_counts > 0, -np.log2(np.maximum(train_counts, 1) / len(train_rows)), 0.0)

    def beyond(lists):
        sims = np.einsum("uik,ujk->uij", unit[lists], unit[lists])
        iu = np.triu_indices(lists.shape[1], k=1)
        diversity = float(np.mean(1.0 - sims[:, iu[0], iu[1]]))  # 45 pairs per top-10
        return {"diversity": diversity,
                "novelty_mean_rating": float(np.mean(mean_rating[lists])),
                "novelty_self_information": float(np.mean(self_info[lists])),
                "coverage": len(np.unique(lists)) / n_movies}

    topn_seconds = clock.seconds()
    metrics = {
        "val_mse_scaled": per_epoch[-1]["val_loss"], "val_rmse_stars": val_rmse, "val_mae_stars": val_mae,
        "rating_min": lo, "rating_max": hi, "n_users": n_users, "n_movies": n_movies,
        "n_train": len(train_rows), "n_val": len(val_rows),
        "top_n_all_movies": beyond(top_all), "top_n_unseen_movies": beyond(top_unseen),
        "top_n_seconds": topn_seconds,
        "example_top_n_user_0": [data.titles.get(int(movie_ids[j]), str(int(movie_ids[j]))) for j in top_unseen[0]],
    }
    config = {"dim": args.dim, "lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs,
              "test_fraction": args.test_fraction, "top_n": args.top_n}
    common.report(args, "p3_recommender", device, config, per_epoch, wall.seconds(), len(train_rows), metrics)


if __name__ == "__main__":
    main()
