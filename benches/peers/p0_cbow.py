#!/usr/bin/env python3
"""P0 reference in PyTorch: item2vec CBOW over viewing sequences (PROTOCOLS.md, P0; notebook
000_d46d42fa9db45a80), as a plain training loop (the notebook used Lightning; the arithmetic is the
same).

Protocol defaults: keep the 50 most-rated movies (ties: smaller movie id first), then users with at
least 20 ratings among them; tokens 0..V in ascending movie id; one sequence per user ordered by
timestamp (stable: ties keep file order); users shuffled with the seed, 80% train / 20% validation
(whole sequences, split at int(0.8 n)). Window w = 1: for position i the context is the tokens at
i-w..i+w except i, the target token i, and the notebook's collate drops the first and last position
of every sequence. Model: nn.Embedding(V, k=20), h = sum (or --context mean) of the context rows,
nn.Linear(k, V), softmax cross-entropy (mean over the batch's examples). Adam lr 1e-2. Batch = 64
user sequences, in order (the notebook's DataLoader had shuffle=False; --shuffle reshuffles each
epoch). Up to 20 epochs; early stopping on validation loss as the notebook's callback does it:
checks start at epoch index min_epochs-1 = 5, patience 3, no weight restore.

Reported: per-epoch train/val cross-entropy, both example-weighted (`train_loss`, `val_loss`) and
as Lightning logs it, the mean of batch means (`*_batch_mean`); ln(V); validation accuracy@1 and
hit-rate@10; the predicted middle movie for two-movie contexts (Fellowship + Return of the King,
and Star Wars + Return of the Jedi when present); cosine neighbours.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import common


class CBOWModel(nn.Module):
    def __init__(self, vocab_size, embedding_dim, context="sum"):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.linear = nn.Linear(embedding_dim, vocab_size)
        self.context = context

    def forward(self, context, mask=None):
        embedded = self.embeddings(context)
        if mask is None:  # every example has the same number of context tokens (w = 1)
            h = embedded.sum(dim=1) if self.context == "sum" else embedded.mean(dim=1)
        else:
            h = (embedded * mask.unsqueeze(2)).sum(dim=1)
            if self.context == "mean":
                h = h / mask.sum(dim=1, keepdim=True)
        return self.linear(h)


def examples_of(sequence, window):
    """(context tokens, target) for positions 1..n-2 (the notebook's collate drops the ends)."""
    out = []
    for i in range(1, len(sequence) - 1):
        context = [sequence[j] for j in range(max(0, i - window), min(len(sequence), i + window + 1)) if j != i]
        out.append((context, sequence[i]))
    return out


def collate(sequences, window, device):
    """One batch of user sequences -> (contexts, mask or None, targets) tensors."""
    examples = [e for seq in sequences for e in examples_of(seq, window)]
    if not examples:
        return None
    width = max(len(c) for c, _ in examples)
    ragged = any(len(c) != width for c, _ in examples)
    contexts = torch.tensor([c + [0] * (width - len(c)) for c, _ in examples], device=device)
    targets = torch.tensor([t for _, t in examples], device=device)
    mask = None
    if ragged:
        mask = torch.tensor([[1.0] * len(c) + [0.0] * (width - len(c)) for c, _ in examples], device=device)
    return contexts, mask, targets


def main():
    p = common.parser(__doc__.splitlines()[0], epochs=20)
    p.add_argument("--top-movies", type=int, default=50)
    p.add_argument("--min-user-ratings", type=int, default=20)
    p.add_argument("--dim", type=int, default=20)
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--context", choices=["sum", "mean"], default="sum")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--batch-sequences", type=int, default=64)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--min-epochs", type=int, default=6)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--no-early-stopping", action="store_true")
    p.add_argument("--shuffle", action="store_true", help="reshuffle the training sequences every epoch")
    common.add_split_args(p)
    args = p.parse_args()
    device = common.setup(args)
    wall = common.Stopwatch(device)

    data = common.load(args.data)
    movie_ids, counts = np.unique(data.movie, return_counts=True)
    order = np.lexsort((movie_ids, -counts))  # most rated first, ties by smaller id
    top = np.sort(movie_ids[order[: args.top_movies]])
    keep = np.isin(data.movie, top)
    users_kept, per_user = np.unique(data.user[keep], return_counts=True)
    good_users = users_kept[per_user >= args.min_user_ratings]
    keep &= np.isin(data.user, good_users)
    rows = np.flatnonzero(keep)
    tokens = np.searchsorted(top, data.movie[rows])
    vocab = len(top)
    # sequences: by user (ascending id), each ordered by timestamp, ties in file order
    order = np.lexsort((rows, data.timestamp[rows], data.user[rows]))
    sorted_users, sorted_tokens = data.user[rows][order], tokens[order]
    bounds = np.flatnonzero(np.diff(sorted_users)) + 1
    sequences = [s.tolist() for s in np.split(sorted_tokens, bounds)]
    seq_users = sorted_users[np.concatenate([[0], bounds])] if len(sorted_users) else sorted_users
    perm = np.random.default_rng(args.seed).permutation(len(sequences))
    n_train = int(len(sequences) * (1 - args.val_fraction))
    train_users, val_users = common.resolve_split(
        args, "users", len(sequences), (seq_users[perm[:n_train]], seq_users[perm[n_train:]]))
    position = {int(u): i for i, u in enumerate(seq_users)}
    missing = [int(u) for u in np.concatenate([train_users, val_users]) if int(u) not in position]
    if missing:
        raise SystemExit(f"error: split names users without a sequence after filtering: {missing[:5]}")
    train_seqs = [sequences[position[int(u)]] for u in train_users]
    val_seqs = [sequences[position[int(u)]] for u in val_users]

    def batches(seqs, order_idx):
        for start in range(0, len(order_idx), args.batch_sequences):
            b = collate([seqs[i] for i in order_idx[start:start + args.batch_sequences]], args.window, device)
            if b is not None:
                yield b

    # The notebook builds batches inside the DataLoader every epoch; we collate once up front for
    # the validation set and (without --shuffle) for training, which only makes PyTorch faster.
    val_batches = list(batches(val_seqs, list(range(len(val_seqs)))))
    fixed_train = None if args.shuffle else list(batches(train_seqs, list(range(len(train_seqs)))))
    n_train_examples = sum(max(len(s) - 2, 0) for s in train_seqs)

    model = CBOWModel(vocab, args.dim, args.context).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed + 1)

    def evaluate():
        with torch.no_grad():
            total, count, means, hit1, hit10 = 0.0, 0, [], 0, 0
            for contexts, mask, targets in val_batches:
                logits = model(contexts, mask)
                loss = F.cross_entropy(logits, targets, reduction="sum")
                total += float(loss)
                count += len(targets)
                means.append(float(loss) / len(targets))
                top10 = logits.topk(min(10, vocab), dim=1).indices
                hit1 += int((top10[:, 0] == targets).sum())
                hit10 += int((top10 == targets.unsqueeze(1)).any(dim=1).sum())
            return total / count, sum(means) / len(means), hit1 / count, hit10 / count

    per_epoch, best_val, wait, stopped_early = [], math.inf, 0, False
    for epoch in range(args.epochs):
        clock = common.Stopwatch(device)
        model.train()
        train_batches = fixed_train
        if train_batches is None:
            train_batches = batches(train_seqs, rng.permutation(len(train_seqs)).tolist())
        total, count, means = 0.0, 0, []
        for contexts, mask, targets in train_batches:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(contexts, mask), targets)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            total += value * len(targets)
            count += len(targets)
            means.append(value)
        seconds = clock.seconds()
        cpu_seconds = clock.cpu_seconds()
        clock = common.Stopwatch(device)
        model.eval()
        val_ce, val_mean, acc1, hit10 = evaluate()
        val_seconds = clock.seconds()
        per_epoch.append({"epoch": epoch, "train_loss": total / count, "val_loss": val_ce,
                          "train_loss_batch_mean": sum(means) / len(means), "val_loss_batch_mean": val_mean,
                          "val_accuracy_at_1": acc1, "val_hit_rate_at_10": hit10,
                          "seconds": seconds, "cpu_seconds": cpu_seconds, "val_seconds": val_seconds})
        common.log(args, f"epoch {epoch:2d}  train_ce {total / count:.4f}  val_ce {val_ce:.4f}  "
                         f"acc@1 {acc1:.3f}  hit@10 {hit10:.3f}  {seconds:.2f}s (+{val_seconds:.2f}s val)")
        # EarlyStoppingWithMinEpochs(min_epochs=6, monitor="val_loss", patience=3, mode="min")
        if not args.no_early_stopping and epoch >= args.min_epochs - 1:
            if val_mean < best_val:  # Lightning monitors the logged epoch value (mean of batch means)
                best_val, wait = val_mean, 0
            else:
                wait += 1
                if wait >= args.patience:
                    stopped_early = True
                    break

    titles = {i: data.titles.get(int(top[i]), str(int(top[i]))) for i in range(vocab)}
    token_of = {int(m): i for i, m in enumerate(top)}
    middles = {}
    for first, last in [("Lord of the Rings: The Fellowship of the Ring", "Lord of the Rings: The Return of the King"),
                        ("Star Wars (1977)", "Return of the Jedi (1983)")]:
        a, b = common.find_title(data.titles, first), common.find_title(data.titles, last)
        if a in token_of and b in token_of:
            with torch.no_grad():
                logits = model(torch.tensor([[token_of[a], token_of[b]]], device=device))[0]
            middles[f"{titles[token_of[a]]} + {titles[token_of[b]]}"] = titles[int(logits.argmax())]
    emb = model.embeddings.weight.detach().cpu().numpy()
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    neighbours = {}
    for query in ["Star Wars (1977)", "Toy Story (1995)"]:
        q = token_of.get(common.find_title(data.titles, query))
        if q is not None:
            cos = unit @ unit[q]
            cos[q] = -np.inf
            neighbours[titles[q]] = [titles[int(j)] for j in np.argsort(-cos, kind="stable")[:5]]
    last = per_epoch[-1]
    metrics = {
        "vocab": vocab, "users": len(sequences), "train_sequences": len(train_seqs), "val_sequences": len(val_seqs),
        "train_examples": n_train_examples, "val_examples": sum(len(b[2]) for b in val_batches),
        "uniform_baseline_ln_v": math.log(vocab),
        "final_train_ce": last["train_loss"], "final_val_ce": last["val_loss"],
        "best_val_ce": min(e["val_loss"] for e in per_epoch),
        "final_val_accuracy_at_1": last["val_accuracy_at_1"], "final_val_hit_rate_at_10": last["val_hit_rate_at_10"],
        "epochs_run": len(per_epoch), "stopped_early": stopped_early,
        "middle_movie": middles, "nearest_by_cosine": neighbours,
    }
    config = {"top_movies": args.top_movies, "min_user_ratings": args.min_user_ratings, "dim": args.dim,
              "window": args.window, "context": args.context, "lr": args.lr, "batch_sequences": args.batch_sequences,
              "val_fraction": args.val_fraction, "epochs": args.epochs, "min_epochs": args.min_epochs,
              "patience": args.patience, "early_stopping": not args.no_early_stopping, "shuffle": args.shuffle}
    common.report(args, "p0_cbow", device, config, per_epoch, wall.seconds(), n_train_examples, metrics)


if __name__ == "__main__":
    main()
