#!/usr/bin/env python3
"""P4 reference in PyTorch: residual matrix factorisation (PROTOCOLS.md, P4; notebook
004_720ee5258f7621d1).

Protocol defaults: all ratings (ml-latest-small in the notebook; any layout works); g = global mean;
r' = r - g; user_avg = mean of r' per user, movie_avg = mean of r' per movie; target
t_ui = r'_ui - user_avg_u - movie_avg_i. Model pred = p_u . q_i, k = 2, no biases, nn.Embedding tables
indexed by raw ids (size max id + 1, as the notebook; --dense-ids maps ids densely, which gives the
same result because Adam leaves never-used rows untouched). MSE; Adam lr 3e-4; batch 300 in file
order (no shuffle); 100 epochs; no validation split (the notebook trains on everything).

Reported: the loss of the last batch of every epoch (what the notebook prints: 4.24 at epoch 0 on
ml-latest-small) and the example-weighted mean over the epoch's batches; the RMSE in stars of
g + user_avg + movie_avg (the baseline) and of g + user_avg + movie_avg + p_u . q_i, over all rows.
"""

import math

import numpy as np
import torch
import torch.nn as nn

import common


class RecSys(nn.Module):
    def __init__(self, n_user_rows, n_movie_rows, emb_dim=2):
        super().__init__()
        self.users = nn.Embedding(n_user_rows, emb_dim)
        self.movies = nn.Embedding(n_movie_rows, emb_dim)

    def forward(self, uid, mid):
        return (self.users(uid) * self.movies(mid)).sum(dim=-1)


def main():
    p = common.parser(__doc__.splitlines()[0], epochs=100)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=300)
    p.add_argument("--dense-ids", action="store_true")
    args = p.parse_args()
    device = common.setup(args)
    wall = common.Stopwatch(device)

    data = common.load(args.data)
    rating = data.rating.astype(np.float64)  # the notebook's pandas columns are float64
    g = rating.mean()
    centred = rating - g
    if args.dense_ids:
        users, _ = common.index_sorted(data.user)
        movies, _ = common.index_sorted(data.movie)
    else:
        users, movies = data.user, data.movie
    n_user_rows, n_movie_rows = int(users.max()) + 1, int(movies.max()) + 1
    user_avg = np.bincount(users, weights=centred, minlength=n_user_rows) / np.maximum(
        np.bincount(users, minlength=n_user_rows), 1)
    movie_avg = np.bincount(movies, weights=centred, minlength=n_movie_rows) / np.maximum(
        np.bincount(movies, minlength=n_movie_rows), 1)
    target = centred - user_avg[users] - movie_avg[movies]

    u_all = torch.as_tensor(users, device=device)
    m_all = torch.as_tensor(movies, device=device)
    t_all = torch.as_tensor(target, dtype=torch.float32, device=device)  # y.float() in the notebook
    model = RecSys(n_user_rows, n_movie_rows, args.dim).to(device)
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    per_epoch = []
    for epoch in range(args.epochs):
        clock = common.Stopwatch(device)
        total = torch.zeros((), device=device)
        for start in range(0, len(t_all), args.batch_size):  # DataLoader(batch_size=300), no shuffle
            sl = slice(start, start + args.batch_size)
            optimizer.zero_grad()
            loss = loss_fn(model(u_all[sl], m_all[sl]), t_all[sl])
            loss.backward()
            optimizer.step()
            total += loss.detach() * (min(start + args.batch_size, len(t_all)) - start)
        last = float(loss.detach())
        seconds = clock.seconds()
        cpu_seconds = clock.cpu_seconds()
        mean = float(total) / len(t_all)
        per_epoch.append({"epoch": epoch, "train_loss": mean, "last_batch_loss": last, "val_loss": None,
                          "seconds": seconds, "cpu_seconds": cpu_seconds})
        if epoch % 10 == 0 or epoch == args.epochs - 1:
            common.log(args, f"Epoch: {epoch} Loss: {last:.3f}  (epoch mean {mean:.4f})  {seconds:.2f}s")

    with torch.no_grad():
        dot = model(u_all, m_all).double().cpu().numpy()
    baseline = g + user_avg[users] + movie_avg[movies]
    metrics = {
        "global_mean": g,
        "first_epoch_last_batch_loss": per_epoch[0]["last_batch_loss"],
        "final_last_batch_loss": per_epoch[-1]["last_batch_loss"],
        "final_train_mse": per_epoch[-1]["train_loss"],
        "rmse_baseline_stars": math.sqrt(np.mean((baseline - rating) ** 2)),
        "rmse_stars": math.sqrt(np.mean((baseline + dot - rating) ** 2)),
        "user_rows": n_user_rows, "movie_rows": n_movie_rows, "ratings": len(rating),
    }
    config = {"dim": args.dim, "lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs,
              "shuffle": False, "dense_ids": args.dense_ids}
    common.report(args, "p4_residual", device, config, per_epoch, wall.seconds(), len(t_all), metrics)


if __name__ == "__main__":
    main()
