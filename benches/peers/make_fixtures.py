#!/usr/bin/env python3
"""Writes the PyTorch parity fixtures for reelvec's engine (crates/models/tests/fixtures/torch/).

Each fixture records a tiny model's initial weights, a fixed list of batches, the loss of every
step (computed before that step's update) and the weights after all the Adam steps, produced with
torch's own nn.Embedding / nn.Linear / nn.MSELoss / nn.CrossEntropyLoss / torch.optim.Adam exactly as
the notebooks use them. The Rust side replays the same batches from the same initial weights and must
land on the same final weights (1e-5 relative).

Models (table names follow docs/contracts: MF family and CBOW full softmax):
  mf    pred = sigmoid_range(p_u . q_i + b_u + c_i, 0, 5.5) = sigmoid(x) * 5.5, loss = MSE (mean)
        tables user_factors (U x k), movie_factors (M x k), user_bias (U x 1), movie_bias (M x 1)
  cbow  h = sum of the context rows of `embedding`, logits = h W^T + b (nn.Linear(k, V)),
        loss = softmax cross-entropy, mean over the batch's examples
        tables embedding (V x k), out_weight (V x k) = Linear.weight, out_bias (V x 1) = Linear.bias

Beside the contract's keys each fixture has "grads": per step, every table's gradient of the batch's
mean loss at the weights before that step, as torch computed it (weight decay not included: Adam adds
it), so a mismatch can be pinned on the model's backward pass or on the optimizer.

Every float is written as the exact decimal value of the float32 (so parsing it as f32 or as f64 and
casting gives the identical f32). Deterministic: torch.manual_seed per fixture; CPU; float32.

Usage: python3 benches/peers/make_fixtures.py [--out crates/models/tests/fixtures/torch]
"""

import argparse
import json
import os
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "crates" / "models" / "tests" / "fixtures" / "torch"


def table(t: torch.Tensor) -> list:
    """A 2-D float32 tensor as a list of rows of exact f32 values (1-D becomes a column)."""
    t = t.detach().to(torch.float32)
    if t.dim() == 1:
        t = t.unsqueeze(1)
    return [[float(x) for x in row] for row in t.tolist()]


def sigmoid_range(x, low, high):
    return torch.sigmoid(x) * (high - low) + low


class EmbeddingNet(nn.Module):
    """The P2 notebook's model (002_...): biased MF with a sigmoid range."""

    def __init__(self, n_users, n_movies, n_factors, y_range=(0.0, 5.5)):
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

    def tables(self):
        return {
            "user_factors": table(self.user_factors.weight),
            "movie_factors": table(self.movie_factors.weight),
            "user_bias": table(self.user_bias.weight),
            "movie_bias": table(self.movie_bias.weight),
        }


class CBOWModel(nn.Module):
    """The P0 notebook's model (000_...): summed context embeddings, full-softmax output layer."""

    def __init__(self, vocab_size, embedding_dim):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.linear = nn.Linear(embedding_dim, vocab_size)

    def forward(self, context):
        return self.linear(torch.sum(self.embeddings(context), dim=1))

    def tables(self):
        return {
            "embedding": table(self.embeddings.weight),
            "out_weight": table(self.linear.weight),
            "out_bias": table(self.linear.bias),
        }


def make_mf(seed, weight_decay, lr=3e-3, n_users=7, n_movies=9, k=4, steps=8, batch=6):
    torch.manual_seed(seed)
    model = EmbeddingNet(n_users, n_movies, k)
    initial = model.tables()
    gen = torch.Generator().manual_seed(seed + 1)
    batches = []
    for _ in range(steps):
        users = torch.randint(0, n_users, (batch,), generator=gen)
        movies = torch.randint(0, n_movies, (batch,), generator=gen)
        # half stars 0.5..5, as in the csv layouts; ml-100k's whole stars are a subset
        ratings = torch.randint(1, 11, (batch,), generator=gen).to(torch.float32) / 2.0
        batches.append((users, movies, ratings))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    criterion = nn.MSELoss()
    losses, grads = [], []
    for users, movies, ratings in batches:
        optimizer.zero_grad()
        loss = criterion(model(users, movies), ratings.unsqueeze(1))
        losses.append(float(loss.detach()))
        loss.backward()
        grads.append({"user_factors": table(model.user_factors.weight.grad),
                      "movie_factors": table(model.movie_factors.weight.grad),
                      "user_bias": table(model.user_bias.weight.grad),
                      "movie_bias": table(model.movie_bias.weight.grad)})
        optimizer.step()
    return {
        "model": "mf",
        "description": "P2 EmbeddingNet: sigmoid_range(p_u.q_i + b_u + c_i, 0, 5.5), MSE mean, torch.optim.Adam",
        "torch_version": torch.__version__,
        "seed": seed,
        "k": k,
        "n_users": n_users,
        "n_movies": n_movies,
        "y_range": [0.0, 5.5],
        "lr": lr,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": weight_decay,
        "initial": initial,
        "batches": [
            {"users": u.tolist(), "movies": m.tolist(), "ratings": [float(x) for x in r.tolist()]}
            for u, m, r in batches
        ],
        "losses": losses,
        "grads": grads,
        "final": model.tables(),
    }


def make_cbow(seed, weight_decay, lr=1e-2, vocab=12, k=5, steps=8, batch=7):
    torch.manual_seed(seed)
    model = CBOWModel(vocab, k)
    initial = model.tables()
    gen = torch.Generator().manual_seed(seed + 1)
    batches = []
    for _ in range(steps):
        # window 1 after the notebook's collate: every example has exactly two context tokens
        contexts = torch.randint(0, vocab, (batch, 2), generator=gen)
        targets = torch.randint(0, vocab, (batch,), generator=gen)
        batches.append((contexts, targets))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    criterion = nn.CrossEntropyLoss()
    losses, grads = [], []
    for contexts, targets in batches:
        optimizer.zero_grad()
        loss = criterion(model(contexts), targets)
        losses.append(float(loss.detach()))
        loss.backward()
        grads.append({"embedding": table(model.embeddings.weight.grad),
                      "out_weight": table(model.linear.weight.grad),
                      "out_bias": table(model.linear.bias.grad)})
        optimizer.step()
    return {
        "model": "cbow",
        "description": "P0 CBOWModel: h = sum of context embeddings, logits = Linear(k, V)(h), cross-entropy mean, torch.optim.Adam",
        "torch_version": torch.__version__,
        "seed": seed,
        "k": k,
        "vocab": vocab,
        "context": "sum",
        "lr": lr,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": weight_decay,
        "initial": initial,
        "batches": [{"contexts": c.tolist(), "targets": t.tolist()} for c, t in batches],
        "losses": losses,
        "grads": grads,
        "final": model.tables(),
    }


def replay_with_numpy(fixture):
    """Replays a fixture with the documented formulas in float64 NumPy (hand-written gradients and
    PyTorch's Adam: g += wd * p; m, v moments; bias corrections; eps outside the square root; every
    row updated every step). Returns the max relative errors of the final tables, of the losses and
    of the gradients (relative to each table's largest gradient)."""
    import numpy as np

    params = {name: np.array(rows, dtype=np.float64) for name, rows in fixture["initial"].items()}
    m = {n: np.zeros_like(p) for n, p in params.items()}
    v = {n: np.zeros_like(p) for n, p in params.items()}
    lr, wd, eps = fixture["lr"], fixture["weight_decay"], fixture["eps"]
    b1, b2 = fixture["betas"]
    loss_err, grad_err = 0.0, 0.0
    for t, batch in enumerate(fixture["batches"], start=1):
        grads = {n: np.zeros_like(p) for n, p in params.items()}
        if fixture["model"] == "mf":
            u, i, r = np.array(batch["users"]), np.array(batch["movies"]), np.array(batch["ratings"])
            P, Q = params["user_factors"], params["movie_factors"]
            x = (P[u] * Q[i]).sum(1) + params["user_bias"][u, 0] + params["movie_bias"][i, 0]
            s = 1.0 / (1.0 + np.exp(-x))
            lo, hi = fixture["y_range"]
            pred = s * (hi - lo) + lo
            loss = np.mean((pred - r) ** 2)
            g = 2.0 * (pred - r) / len(r) * (hi - lo) * s * (1.0 - s)  # dL/dx per example
            np.add.at(grads["user_factors"], u, g[:, None] * Q[i])
            np.add.at(grads["movie_factors"], i, g[:, None] * P[u])
            np.add.at(grads["user_bias"], u, g[:, None])
            np.add.at(grads["movie_bias"], i, g[:, None])
        else:
            c, y = np.array(batch["contexts"]), np.array(batch["targets"])
            E, W, b = params["embedding"], params["out_weight"], params["out_bias"][:, 0]
            h = E[c].sum(1)
            z = h @ W.T + b
            z = z - z.max(1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            loss = -np.mean(np.log(prob[np.arange(len(y)), y]))
            dz = prob.copy()
            dz[np.arange(len(y)), y] -= 1.0
            dz /= len(y)
            grads["out_weight"] += dz.T @ h
            grads["out_bias"][:, 0] += dz.sum(0)
            dh = dz @ W
            for j in range(c.shape[1]):
                np.add.at(grads["embedding"], c[:, j], dh)
        loss_err = max(loss_err, abs(loss - fixture["losses"][t - 1]) / abs(loss))
        for n, g in grads.items():
            want = np.array(fixture["grads"][t - 1][n])
            grad_err = max(grad_err, float(np.max(np.abs(g - want)) / max(float(np.max(np.abs(want))), 1e-12)))
        for n, p in params.items():
            g = grads[n] + wd * p
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            denom = np.sqrt(v[n]) / np.sqrt(1 - b2**t) + eps
            params[n] = p - lr / (1 - b1**t) * m[n] / denom
    rel = 0.0
    for n, p in params.items():
        want = np.array(fixture["final"][n])
        rel = max(rel, float(np.max(np.abs(p - want) / np.maximum(np.abs(want), 1e-3))))
    return rel, loss_err, grad_err


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)  # deterministic reductions
    fixtures = {
        "mf_adam.json": make_mf(seed=11, weight_decay=0.0),
        # the notebook's weight decay, and an exaggerated one so the decay term dominates a step
        "mf_adam_wd.json": make_mf(seed=12, weight_decay=3e-4),
        "mf_adam_wd_strong.json": make_mf(seed=13, weight_decay=0.1),
        "cbow_adam.json": make_cbow(seed=21, weight_decay=0.0),
        "cbow_adam_wd.json": make_cbow(seed=22, weight_decay=0.1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fixture in fixtures.items():
        path = args.out / name
        tmp = path.with_suffix(".json.tmp")
        # one top-level key per line, each value compact: small diffs, still readable
        body = ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in fixture.items())
        tmp.write_text("{\n" + body + "\n}\n")
        os.replace(tmp, path)
        first, last = fixture["losses"][0], fixture["losses"][-1]
        rel, loss_err, grad_err = replay_with_numpy(fixture)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
              f"{len(fixture['losses'])} steps, loss {first:.6f} -> {last:.6f}, {path.stat().st_size} bytes; "
              f"NumPy replay: max rel err {rel:.1e} (weights), {loss_err:.1e} (losses), {grad_err:.1e} (grads)")
        if rel > 1e-5 or loss_err > 1e-5 or grad_err > 1e-5:
            raise SystemExit(f"{name}: the NumPy replay of the documented formulas disagrees with torch")


if __name__ == "__main__":
    main()
