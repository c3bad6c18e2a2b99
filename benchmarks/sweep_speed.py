"""Harness versus a plain Keras loop on the same grid, side by side in one run.

Runs `study run` (caches, model reuse, its default worker count) and benchmarks/plain_keras.py (a fresh model
compiled and fitted per cell) on the same protocol, each in a fresh process, and prints wall times, per-strategy
times, their ratios, the time the harness spends outside training, and the largest difference in mean metrics.
Usage: python benchmarks/sweep_speed.py [PROTOCOL] [--data-dir DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def timed(command: list[str]) -> float:
    clock = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", nargs="?", default=str(HERE / "reduced_truncation.yaml"))
    parser.add_argument("--data-dir", default=os.environ.get("STUDY_DATA_DIR"))
    parser.add_argument("--jobs", type=int, default=None, help="harness workers (default: its own default)")
    args = parser.parse_args()
    from study.protocol import load_protocol
    from study.store import ResultStore

    protocol = load_protocol(args.protocol)
    work = Path(tempfile.mkdtemp(prefix="sweep-speed-"))
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    harness_wall = timed([sys.executable, "-m", "study", "run", args.protocol, "--results-dir", str(work / "results"),
                          "--report-dir", str(work / "report"), "--no-progress", *data, *jobs])
    plain_wall = timed([sys.executable, str(HERE / "plain_keras.py"), args.protocol, str(work / "plain.parquet"), *data])

    harness = ResultStore(work / "results", protocol.name).cells()
    plain = pd.read_parquet(work / "plain.parquet")
    workers = args.jobs or (len(os.sched_getaffinity(0)))
    training = (harness["train_seconds"] - harness["trace_seconds"]).sum() / min(workers, len(harness))
    per_strategy = pd.DataFrame({
        "harness_s": harness.groupby("strategy")["train_seconds"].sum(),
        "plain_s": plain.groupby("strategy")["seconds"].sum(),
    })
    per_strategy["ratio"] = per_strategy["plain_s"] / per_strategy["harness_s"]
    means = {name: frame.groupby(["arm", "fraction"])[["auc", "accuracy"]].mean() for name, frame in
             (("harness", harness), ("plain", plain))}
    difference = (means["harness"] - means["plain"]).abs()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; protocol {args.protocol}; "
          f"{len(harness)} cells")
    print(f"harness wall {harness_wall:.0f} s ({workers} workers), plain Keras loop wall {plain_wall:.0f} s: "
          f"{plain_wall / harness_wall:.1f}x faster")
    print("per-strategy cell time (seconds summed over cells; harness cells include their share of tracing):")
    print(per_strategy.round(1).to_string())
    print(f"harness time outside training (process start, imports, data, tracing, report): "
          f"{(harness_wall - training) / harness_wall:.0%} of its wall time "
          f"(tracing alone {harness['trace_seconds'].sum() / min(workers, len(harness)):.0f} s)")
    print(f"largest difference of mean test AUC per arm and fraction: {difference['auc'].max():.3f}; "
          f"of mean accuracy: {difference['accuracy'].max():.3f}")
    print(f"seed spread for scale (largest std of AUC over seeds in one harness arm and fraction): "
          f"{harness.groupby(['arm', 'fraction'])['auc'].std().max():.3f}")


if __name__ == "__main__":
    main()
