"""Harness versus a plain Keras loop on the same grid, side by side in one run.

Runs `study run` (caches, model reuse, its default worker count) and benchmarks/plain_keras.py (a fresh model
compiled and fitted per cell) on the same protocol, each in a fresh process, and prints wall times, per-strategy
times, their ratios, the time the harness spends outside training, and both loops' mean test AUC per arm and
fraction with the seed noise of their difference.
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
    from study.protocol.schema import load_protocol
    from study.store.results import ResultStore

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
    cells_at_once = min(workers, len(harness))
    training = (harness["train_seconds"] - harness["trace_seconds"]).sum() / cells_at_once
    per_strategy = pd.DataFrame({
        "harness_s": harness.groupby("strategy")["train_seconds"].sum() / cells_at_once,
        "plain_s": plain.groupby("strategy")["seconds"].sum(),
        "harness_cell_s": harness.groupby("strategy")["train_seconds"].median(),
        "plain_cell_s": plain.groupby("strategy")["seconds"].median(),
    })
    per_strategy["ratio"] = per_strategy["plain_s"] / per_strategy["harness_s"]
    per_strategy["cell_ratio"] = per_strategy["plain_cell_s"] / per_strategy["harness_cell_s"]
    agreement = metric_agreement(harness, plain)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; protocol {args.protocol}; "
          f"{len(harness)} cells")
    print(f"harness wall {harness_wall:.0f} s ({workers} workers), plain Keras loop wall {plain_wall:.0f} s: "
          f"{plain_wall / harness_wall:.1f}x faster")
    print(f"per strategy: seconds of the machine (harness: cell seconds / {cells_at_once} cells running at once, one "
          "core each; plain: one cell at a time on every core), and the median seconds of one cell (harness cells "
          "include tracing and computing cached features where they are the first):")
    print(per_strategy.round(1).to_string())
    from_images = harness[harness["cached_input_block"].isna()]["train_seconds"].sum() / cells_at_once
    print(f"cells that train from the images (nothing cached can shorten them) take {from_images:.0f} s of the "
          f"harness's machine time: with everything else free it could be at most {plain_wall / from_images:.1f}x "
          "faster than the plain loop on this grid")
    print(f"harness time outside training (process start, imports, data, tracing, report): "
          f"{(harness_wall - training) / harness_wall:.0%} of its wall time "
          f"(tracing alone {harness['trace_seconds'].sum() / cells_at_once:.0f} s)")
    print("test AUC per arm and fraction, mean over seeds (noise: the standard error of the difference, from the "
          "seed spread of both loops):")
    print(agreement.round(3).to_string())
    beyond = int((agreement["difference"].abs() > 2 * agreement["noise"]).sum())
    print(f"differences beyond two standard errors: {beyond} of {len(agreement)}; largest |difference| "
          f"{agreement['difference'].abs().max():.3f}")


def metric_agreement(harness: pd.DataFrame, plain: pd.DataFrame) -> pd.DataFrame:
    """Per arm and fraction: both loops' mean test AUC, their difference, and the difference's standard error."""
    keys = ["arm", "fraction"]
    both = {name: frame.groupby(keys)["auc"].agg(["mean", "var", "count"]) for name, frame in
            (("harness", harness), ("plain", plain))}
    table = pd.DataFrame({"harness": both["harness"]["mean"], "plain": both["plain"]["mean"]})
    table["difference"] = table["harness"] - table["plain"]
    table["noise"] = (both["harness"]["var"] / both["harness"]["count"]
                      + both["plain"]["var"] / both["plain"]["count"]) ** 0.5
    return table


if __name__ == "__main__":
    main()
