#!/usr/bin/env python3
"""P2 reference in PyTorch: biased matrix factorisation with a sigmoid range (PROTOCOLS.md, P2;
notebook 002_161d122cd37f172b).

Protocol defaults: ml-100k u.data, ids minus 1 (other layouts: dense ids in ascending raw order);
random 80/20 split of the rating rows (our seeded permutation, not sklearn's); pred =
sigmoid_range(p_u . q_i + b_u + c_i, 0, 5.5); k = 50; all four tables nn.Embedding (N(0,1) init);
MSE; Adam lr 3e-3, weight_decay 3e-4; batch 100 shuffled; 30 epochs; the weights of the best
validation epoch are kept (the LinearLR scheduler's step stays commented out, as in the notebook).

Batching: by default batches are sliced from a seeded torch.randperm of the training rows, which is
what the notebook's DataLoader(shuffle=True) does minus its per-item collate overhead (a stronger
baseline). --dataloader uses torch.utils.data.DataLoader over a TensorDataset exactly like the
notebook, to measure that overhead too.

Reported: per-epoch train/val MSE (mean of batch means, as the notebook), best val MSE, RMSE and
MAE at the best epoch, the movies with the lowest/highest bias, and the 5 nearest movies to
Star Wars (1977) by cosine of the movie factors.
"""

import copy
import math

import numpy as np
import torch
import torch.nn as nn

import common


def sigmoid_range(x, low, high):
    return torch.sigmoid(x) * (high - low) + low


class EmbeddingNet(nn.Module):
    def __init__(self, n_users, n_movies, n_factors=50, y_range=(0.0, 5.5)):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.movie_factors = nn.Embedding(n_movies, n_factors)
        self.movie_bias = nn.Embedding(n_movies, 1)
        self.y_range = y_range

    def forward(self, user_idx, movie_idx):
        users = self.user_factors(user_idx)
        movies = self.movie_factors(movie_idx)
        res = (users * movies).sum(dim=1, keepdim=True)
        res = res + self.user_bias(user_idx) + self.movie_bias(movie_idx)
        return sigmoid_range(res, *self.y_range)


def main():
    p = common.parser(__doc__.splitlines()[0], epochs=30)
    p.add_argument("--factors", type=int, default=50)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--dataloader", action="store_true", help="batch with torch DataLoader like the notebook")
    common.add_split_args(p)
    args = p.parse_args()
    device = common.setup(args)
    wall = common.Stopwatch(device)

    data = common.load(args.data)
    if data.layout == "ml-100k":
        users, movies = data.user - 1, data.movie - 1  # the notebook's `- 1`
        n_users, n_movies = int(users.max()) + 1, int(movies.max()) + 1
        movie_raw = np.arange(1, n_movies + 1)
    else:
        users, _ = common.index_sorted(data.user)
        movies, movie_raw = common.index_sorted(data.movie)
        n_users, n_movies = int(users.max()) + 1, len(movie_raw)
    train_rows, val_rows = common.resolve_split(args, "rows", len(data),
                                                common.random_split(len(data), args.test_fraction, args.seed))

    def tensors(rows):
        return (torch.as_tensor(users[rows], device=device), torch.as_tensor(movies[rows], device=device),
                torch.as_tensor(data.rating[rows], device=device).unsqueeze(1))

    train_u, train_m, train_r = tensors(train_rows)
    val_u, val_m, val_r = tensors(val_rows)
    model = EmbeddingNet(n_users, n_movies, args.factors).to(device)
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    generator = torch.Generator().manual_seed(args.seed)
    loader = None
    if args.dataloader:
        dataset = torch.utils.data.TensorDataset(train_u, train_m, train_r)
        loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, generator=generator)

    def train_batches():
        if loader is not None:
            yield from loader
            return
        perm = torch.randperm(len(train_r), generator=generator).to(device)
        for start in range(0, len(perm), args.batch_size):
            idx = perm[start:start + args.batch_size]
            yield train_u[idx], train_m[idx], train_r[idx]

    def evaluate():
        """Mean of batch means over the validation rows (batches of batch_size, like the notebook)."""
        with torch.no_grad():
            losses, abs_err, sq_err = [], 0.0, 0.0
            for start in range(0, len(val_r), args.batch_size):
                pred = model(val_u[start:start + args.batch_size], val_m[start:start + args.batch_size])
                target = val_r[start:start + args.batch_size]
                losses.append(float(criterion(pred, target)))
                abs_err += float((pred - target).abs().sum())
                sq_err += float(((pred - target) ** 2).sum())
            n = len(val_r)
            return sum(losses) / len(losses), math.sqrt(sq_err / n), abs_err / n

    per_epoch, best = [], {"val_mse": math.inf}
    for epoch in range(args.epochs):
        clock = common.Stopwatch(device)
        model.train()
        total, n_batches = 0.0, 0
        for u, m, r in train_batches():
            optimizer.zero_grad()
            loss = criterion(model(u, m), r)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            n_batches += 1
        train_loss = float(total) / n_batches
        seconds = clock.seconds()
        cpu_seconds = clock.cpu_seconds()
        clock = common.Stopwatch(device)
        model.eval()
        val_mse, val_rmse, val_mae = evaluate()
        val_seconds = clock.seconds()
        if val_mse < best["val_mse"]:
            best = {"epoch": epoch, "val_mse": val_mse, "val_rmse": val_rmse, "val_mae": val_mae,
                    "weights": copy.deepcopy(model.state_dict())}
        per_epoch.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_mse, "val_rmse": val_rmse,
                          "seconds": seconds, "cpu_seconds": cpu_seconds, "val_seconds": val_seconds})
        common.log(args, f"epoch {epoch:2d}  train_mse {train_loss:.4f}  val_mse {val_mse:.4f}  "
                         f"val_rmse {val_rmse:.4f}  {seconds:.2f}s (+{val_seconds:.2f}s val)")
    model.load_state_dict(best["weights"])  # keep the best validation epoch

    bias = model.movie_bias.weight.detach().cpu().numpy()[:, 0]
    order = np.argsort(bias, kind="stable")
    title = lambda dense: data.titles.get(int(movie_raw[dense]), str(int(movie_raw[dense])))
    factors = model.movie_factors.weight.detach().cpu().numpy()
    unit = factors / np.maximum(np.linalg.norm(factors, axis=1, keepdims=True), 1e-12)
    neighbours = {}
    star_wars = common.find_title(data.titles, "Star Wars (1977)")
    if star_wars is not None and star_wars in set(movie_raw.tolist()):
        q = int(np.searchsorted(movie_raw, star_wars)) if data.layout != "ml-100k" else star_wars - 1
        cos = unit @ unit[q]
        cos[q] = -np.inf
        neighbours[title(q)] = [title(int(j)) for j in np.argsort(-cos, kind="stable")[:5]]
    metrics = {
        "best_epoch": best["epoch"],
        "best_val_mse": best["val_mse"],
        "best_val_rmse": best["val_rmse"],
        "best_val_mae": best["val_mae"],
        "final_train_mse": per_epoch[-1]["train_loss"],
        "n_users": n_users, "n_movies": n_movies, "n_train": len(train_rows), "n_val": len(val_rows),
        "lowest_bias": [title(int(j)) for j in order[:5]],
        "highest_bias": [title(int(j)) for j in order[::-1][:5]],
        "nearest_by_cosine": neighbours,
    }
    config = {"factors": args.factors, "lr": args.lr, "weight_decay": args.weight_decay,
              "batch_size": args.batch_size, "epochs": args.epochs, "test_fraction": args.test_fraction,
              "y_range": [0.0, 5.5], "batching": "DataLoader" if args.dataloader else "randperm slices"}
    common.report(args, "p2_mf", device, config, per_epoch, wall.seconds(), len(train_rows), metrics)


if __name__ == "__main__":
    main()
