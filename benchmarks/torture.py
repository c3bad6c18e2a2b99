"""Kill a real sweep with SIGKILL at random moments, restart it, and check that nothing was lost or duplicated.

Each round starts `python -m study run` (a tiny synthetic protocol, `--jobs 2` worker processes) and kills its
whole process group after a random delay, or (`--driver-only`) the driver process alone, whose worker processes
must then end by themselves within ORPHAN_SECONDS. After every kill: every parquet file parses, every stored cell
is a planned one, and no cell stored earlier has changed. At the end one run finishes the sweep, and every planned
cell must be stored exactly once, done, with its predictions, and no temporary file may remain.
Usage: python benchmarks/torture.py [--kills 30] [--min-delay 0.5] [--max-delay 8] [--seed 0] [--after-a-cell]
       [--driver-only]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from study.execution.lifeline import still_running

ORPHAN_SECONDS = 10  # how long the processes of a run whose driver was killed alone may outlive it

PROTOCOL = """\
name: torture
dataset: {source: synthetic, classes: 2, per_class: 30, size: 16}
backbone: {name: cnn, weights: none, width: 4}
strategies:
  - {name: scratch}
  - {name: frozen}
  - {name: finetune, depth: [1]}
  - {name: truncate, at: [2]}
fractions: [0.5, 1.0]
seeds: {seeds}
train: {epochs: 3, batch_size: 16, lr: {backbone: 1.0e-3, head: 1.0e-2}, early_stopping: null}
"""


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every stored cell and prediction file, by path; raises if any file does not parse."""
    files = {}
    for path in sorted(root.glob("*/*.parquet")) + sorted(root.glob("*.parquet")):
        table = pq.read_table(path)  # a torn or partial file would raise here
        if path.parent.name == "cells":
            assert table.num_rows == 1 and table.column("run_id")[0].as_py() == path.stem, f"{path}: wrong row"
        files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def planned_run_ids(protocol: Path) -> set[str]:
    from study.data.sources import source_fingerprint
    from study.plan.cells import plan_cells
    from study.protocol.schema import load_protocol

    loaded = load_protocol(protocol)
    return {cell.run_id for cell in plan_cells(loaded, source_fingerprint(loaded.dataset, None))}


def start(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as stream:
        return subprocess.Popen(command, start_new_session=True, stdout=stream, stderr=stream,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def kill_driver_alone(process: subprocess.Popen) -> tuple[int, float]:
    """SIGKILL the driver only; wait up to ORPHAN_SECONDS for every process it had started to end. The processes
    still running then (killed here, so that the next round starts clean) and the seconds the last one took."""
    run = psutil.Process(process.pid).children(recursive=True)
    os.kill(process.pid, signal.SIGKILL)
    killed = time.monotonic()
    while still_running(run) and time.monotonic() - killed < ORPHAN_SECONDS:
        time.sleep(0.1)
    orphans = still_running(run)
    for orphan in orphans:
        orphan.kill()
    return len(orphans), time.monotonic() - killed


def torture(workdir: Path, kills: int, min_delay: float, max_delay: float, seed: int = 0, seeds: int = 6,
            jobs: int = 2, after_a_cell: bool = False, driver_only: bool = False) -> dict:
    """Run the kill rounds in workdir; return the counts, or raise AssertionError on the first loss.

    The delay of a kill counts from the start of its round, or (after_a_cell) from the first cell the round
    stores, so that every kill lands mid-sweep rather than while TensorFlow starts. With driver_only the driver is
    killed alone, and every process of its run must have ended ORPHAN_SECONDS later.
    """
    rng = random.Random(seed)
    protocol = workdir / "torture.yaml"
    protocol.write_text(PROTOCOL.replace("{seeds}", str(seeds)))
    results, root = workdir / "results", workdir / "results" / "torture"
    command = [sys.executable, "-m", "study", "run", str(protocol), "--results-dir", str(results),
               "--report-dir", str(workdir / "report"), "--jobs", str(jobs), "--no-progress"]
    planned = planned_run_ids(protocol)
    seen: dict[str, str] = {}
    counts = {"kills": 0, "kills_mid_sweep": 0, "finished_before_kill": 0, "cells": len(planned), "orphans": 0,
              "slowest_end_seconds": 0.0}
    for _ in range(kills):
        process = start(command, workdir / "runs.log")
        before = len([name for name in seen if name.startswith("cells/")])
        while after_a_cell and process.poll() is None and len(list(root.glob("cells/*.parquet"))) <= before:
            time.sleep(0.05)
        time.sleep(rng.uniform(min_delay, max_delay))
        killed = process.poll() is None
        if killed and driver_only:
            orphans, seconds = kill_driver_alone(process)
            counts["orphans"] += orphans
            counts["slowest_end_seconds"] = max(counts["slowest_end_seconds"], seconds)
            assert not orphans, f"{orphans} processes of the killed run outlived it by {ORPHAN_SECONDS} s"
        elif killed:
            os.killpg(process.pid, signal.SIGKILL)
        counts["kills" if killed else "finished_before_kill"] += 1
        process.wait()
        time.sleep(0.2)  # let the killed workers' process group go
        now = snapshot(root) if root.exists() else {}
        changed = [name for name, digest in seen.items() if now.get(name) != digest]
        assert not changed, f"stored files changed or vanished after a kill: {changed[:3]}"
        stored = {Path(name).stem for name in now if name.startswith("cells/")}
        assert stored <= planned, f"unplanned cells stored: {sorted(stored - planned)[:3]}"
        counts["kills_mid_sweep"] += int(killed and len(stored) > before)
        seen = now
    final = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert final.returncode == 0, final.stderr[-2000:]
    now = snapshot(root)
    assert all(now.get(name) == digest for name, digest in seen.items()), "a stored file changed in the last run"
    cells = sorted(Path(name).stem for name in now if name.startswith("cells/"))
    assert cells == sorted(planned), f"{len(cells)} cells stored, {len(planned)} planned"
    predictions = {Path(name).stem for name in now if name.startswith("predictions/")}
    assert predictions >= planned, "a stored cell lacks its predictions"
    leftovers = [str(path) for path in root.rglob("*") if path.name.endswith(".tmp")]
    assert not leftovers, f"temporary files remain: {leftovers[:3]}"
    assert not (root / ".lock.holder").exists(), "the lock's holder file outlived the run"
    counts["stored_before_final_run"] = len([name for name in seen if name.startswith("cells/")])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--min-delay", type=float, default=0.5)
    parser.add_argument("--max-delay", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=6, help="protocol seeds (cells = 8 x seeds)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--after-a-cell", action="store_true", help="time each kill from the round's first stored cell")
    parser.add_argument("--driver-only", action="store_true",
                        help=f"kill the driver alone; its processes must end within {ORPHAN_SECONDS} s")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    clock = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        counts = torture(workdir, args.kills, args.min_delay, args.max_delay, args.seed, args.seeds, args.jobs,
                         args.after_a_cell, args.driver_only)
    print(f"survived {counts['kills']} SIGKILLs ({counts['kills_mid_sweep']} after cells had been stored in that "
          f"round, {counts['finished_before_kill']} rounds finished first); {counts['stored_before_final_run']} of "
          f"{counts['cells']} cells stored before the final run, all {counts['cells']} present exactly once, every "
          f"file readable, no temporary file left, in {time.perf_counter() - clock:.0f} s")
    if args.driver_only:
        print(f"the driver alone was killed: {counts['orphans']} processes outlived it by {ORPHAN_SECONDS} s; the "
              f"slowest run's processes had all ended {counts['slowest_end_seconds']:.1f} s after its kill")


if __name__ == "__main__":
    main()
