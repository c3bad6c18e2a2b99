"""Harness versus a plain Keras loop on the same grid and the same training recipe, side by side in one run.

Runs `study run` (feature caches, model reuse, its default worker count) and benchmarks/plain_keras.py (the same
recipe written as a plain Keras loop, a fresh model per cell, one cell at a time on every core) on the same
protocol, each in a fresh process. Prints wall times and their ratio, machine-seconds and their ratio per arm,
machine-seconds per decided claim, and per arm whether both loops' test AUC agree within two standard errors of
their paired difference: the ratios mean something only where they do.
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
CACHED_TARGET = 10.0  # the least ratio expected of arms that train from cached features
GRID_TARGET = 2.0  # the least ratio expected of the whole grid
DECIDED = {"supported", "contradicted"}


def timed(command: list[str]) -> float:
    """Wall seconds of a command run to its end."""
    clock = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - clock


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def arm_costs(harness: pd.DataFrame, plain: pd.DataFrame, threads: int, cores: int) -> pd.DataFrame:
    """Per arm: machine-seconds of each loop (cell seconds x the cores a cell runs on), their ratio, the median
    cell, and what the harness's cells start from (a cached block's output or the images)."""
    table = pd.DataFrame({
        "cells": harness.groupby("arm").size(),
        "input": harness.groupby("arm")["cached_input_block"].first().map(
            lambda block: "images" if pd.isna(block) else f"block {int(block)}"),
        "harness_machine_s": harness.groupby("arm")["train_seconds"].sum() * threads,
        "plain_machine_s": plain.groupby("arm")["seconds"].sum() * cores,
        "harness_cell_s": harness.groupby("arm")["train_seconds"].median(),
        "plain_cell_s": plain.groupby("arm")["seconds"].median(),
        "harness_steps": harness.groupby("arm")["steps"].mean(),
        "plain_steps": plain.groupby("arm")["steps"].mean(),
    })
    table["ratio"] = table["plain_machine_s"] / table["harness_machine_s"]
    return table


def auc_agreement(harness: pd.DataFrame, plain: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of keys: both loops' mean test AUC, the mean paired difference (cells matched by arm, fraction
    and seed: the same training subset) and two standard errors of it; agree when |difference| <= 2 SE."""
    cell = ["arm", "fraction", "seed"]
    pairs = harness[[*cell, "auc"]].merge(plain[[*cell, "auc"]], on=cell, suffixes=("_harness", "_plain"))
    pairs["difference"] = pairs["auc_harness"] - pairs["auc_plain"]
    grouped = pairs.groupby(keys)
    table = pd.DataFrame({
        "pairs": grouped.size(),
        "harness": grouped["auc_harness"].mean(),
        "plain": grouped["auc_plain"].mean(),
        "difference": grouped["difference"].mean(),
        "two_se": 2 * grouped["difference"].std(ddof=1) / grouped.size() ** 0.5,
    })
    table["agree"] = (table["difference"].abs() <= table["two_se"]).map({True: "yes", False: "no"})
    return table


def decided_claims(harness: pd.DataFrame, protocol) -> pd.DataFrame:
    """The protocol's claims evaluated on the harness's cells: claim and verdict."""
    from study.analysis.claims import evaluate_claims
    from study.analysis.summaries import flagged

    done = flagged(harness)  # a fresh store: every cell is the protocol's own
    summary, _ = evaluate_claims(done, protocol.claims, protocol.report, protocol.fractions)
    return summary[["claim", "verdict", "effect", "p"]]


def print_claims(protocol, harness: pd.DataFrame, walls: dict[str, float], cores: int) -> None:
    """Each claim's verdict, and the machine-seconds (wall x cores) each loop spent per decided claim."""
    if not protocol.claims:
        print("claims: the protocol has none, so there is no machine-seconds per decided claim")
        return
    claims = decided_claims(harness, protocol)
    print("claims, evaluated on the harness's cells:")
    print(claims.round(4).to_string(index=False))
    decided = int(claims["verdict"].isin(DECIDED).sum())
    if not decided:
        print("machine-seconds per decided claim: none of the claims is decided on this grid")
        return
    spent = ", ".join(f"{name} {wall * cores / decided:.0f}" for name, wall in walls.items())
    print(f"machine-seconds (wall x {cores} cores) per decided claim ({decided} of {len(claims)} decided): {spent}")


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
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores; protocol {args.protocol}; "
          f"load average at start {load()}", flush=True)
    walls = {"harness": timed([sys.executable, "-m", "study", "run", args.protocol, "--results-dir",
                               str(work / "results"), "--report-dir", str(work / "report"), "--no-progress",
                               *data, *jobs])}
    walls["plain"] = timed([sys.executable, str(HERE / "plain_keras.py"), args.protocol, str(work / "plain.parquet"),
                            *data])
    harness = ResultStore(work / "results", protocol.name).cells()
    harness = harness[harness["status"] == "done"]
    plain = pd.read_parquet(work / "plain.parquet")

    print(f"\n{len(harness)} harness cells, {len(plain)} plain cells; load average at the end {load()}")
    print(f"whole grid: harness wall {walls['harness']:.0f} s ({args.jobs or 'default'} workers, "
          f"{protocol.train.threads} thread(s) per cell), plain Keras loop wall {walls['plain']:.0f} s: the harness "
          f"is {walls['plain'] / walls['harness']:.1f}x faster (target >= {GRID_TARGET:g}x)")
    costs = arm_costs(harness, plain, protocol.train.threads, cores)
    print("\nper arm: machine-seconds (cell seconds x cores each cell runs on: the harness "
          f"{protocol.train.threads}, the plain loop {cores}), median seconds of one cell, mean optimisation steps, "
          "and the ratio plain / harness:")
    print(costs.round(1).to_string())
    cached = costs[costs["input"] != "images"]
    if len(cached):
        print(f"arms on cached features: ratio {cached['ratio'].min():.1f}x to {cached['ratio'].max():.1f}x "
              f"(target >= {CACHED_TARGET:g}x: {'met' if cached['ratio'].min() >= CACHED_TARGET else 'not met'})")
    from_images = costs.loc[costs["input"] == "images", "harness_machine_s"].sum() / cores
    print(f"cells that train from the images take {from_images:.0f} s of the harness's wall on {cores} cores: however "
          f"little the rest cost, it could be at most {walls['plain'] / from_images:.1f}x faster on this grid")

    print("\ntest AUC per arm, mean over fractions and seeds (difference: harness - plain, paired by fraction and "
          "seed; agree: |difference| <= 2 SE):")
    per_arm = auc_agreement(harness, plain, ["arm"])
    print(per_arm.round(3).to_string())
    print(f"arms whose AUC agrees within two standard errors: {(per_arm['agree'] == 'yes').sum()} of {len(per_arm)}")
    print("\nthe same per arm and fraction:")
    print(auc_agreement(harness, plain, ["arm", "fraction"]).round(3).to_string())
    print()
    print_claims(protocol, harness, walls, cores)


if __name__ == "__main__":
    main()
