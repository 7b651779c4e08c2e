#!/usr/bin/env python3
"""Runs the five PyTorch reference pipelines (p0..p4) on one MovieLens folder and prints a table of
per-epoch time, throughput and quality; each script's full JSON report lands in --out.

Usage: python3 benches/peers/run_all.py --data PATH [--out DIR] [--threads N] [--quick] [--only p2,p3]
--quick shortens the long runs (P1 100 steps, P2 5 epochs, P3 3 epochs, P4 10 epochs): per-epoch
times stay comparable, final quality does not.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "p0": ("p0_cbow.py", [], "final_val_ce"),
    "p1": ("p1_cooc.py", [], "final_over_reference"),
    "p2": ("p2_mf.py", [], "best_val_rmse"),
    "p3": ("p3_recommender.py", [], "val_rmse_stars"),
    "p4": ("p4_residual.py", [], "final_last_batch_loss"),
}
QUICK_EPOCHS = {"p1": 100, "p2": 5, "p3": 3, "p4": 10}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", type=Path, default=Path("target/peers"))
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="p0,p1,p2,p3,p4")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for key in args.only.split(","):
        script, extra, quality = SCRIPTS[key]
        out = args.out / f"{key}.json"
        cmd = [sys.executable, str(HERE / script), "--data", args.data, "--json", str(out), "--quiet",
               "--threads", str(args.threads), "--device", args.device, "--seed", str(args.seed), *extra]
        if args.quick and key in QUICK_EPOCHS:
            cmd += ["--epochs", str(QUICK_EPOCHS[key])]
        print("$", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        r = json.loads(out.read_text())
        rows.append((key, len(r["per_epoch"]), r["mean_epoch_seconds"], r["mean_epoch_cpu_seconds"],
                     r["examples_per_second"],
                     quality, r["metrics"][quality], r["threads"], r["load_average_1min"]))
    print(f"{'pipeline':<9}{'epochs':>7}{'s/epoch':>10}{'cpu s/epoch':>12}{'examples/s':>13}  {'quality':<24}"
          f"{'value':>10}{'threads':>8}{'load':>6}")
    for key, n, sec, cpu, eps, qname, q, th, load in rows:
        print(f"{key:<9}{n:>7}{sec:>10.4f}{cpu:>12.4f}{eps:>13.0f}  {qname:<24}{q:>10.4f}{th:>8}{load:>6.1f}")


if __name__ == "__main__":
    main()
