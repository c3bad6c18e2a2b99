"""Tuned against untuned: run a tuned protocol and its copy without `tuning:`, print each arm's tuned values
and the change in its mean test metric over seeds.

    python benchmarks/tuning_gain.py benchmarks/tuning_breastmnist.yaml --data-dir DIR --results-dir DIR --jobs 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from study.protocol.schema import load_protocol
from study.store.results import ResultStore


def run(protocol: Path, args: argparse.Namespace) -> float:
    """`study run` of a protocol in a fresh process; its wall time."""
    clock = time.perf_counter()
    command = [sys.executable, "-m", "study", "run", str(protocol), "--results-dir", str(args.results_dir),
               "--report-dir", str(args.results_dir / "report"), "--jobs", str(args.jobs), "--no-progress"]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    subprocess.run(command, check=True)
    return time.perf_counter() - clock


def untuned_copy(path: Path, directory: Path) -> Path:
    """The protocol without its tuning section, under the name <name>-untuned."""
    data = yaml.safe_load(path.read_text())
    data.pop("tuning")
    data["name"] = f"{data['name']}-untuned"
    copy = directory / f"{data['name']}.yaml"
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", type=Path)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    tuned = load_protocol(args.protocol)
    metric = tuned.report.metric
    with tempfile.TemporaryDirectory() as directory:
        plain_path = untuned_copy(args.protocol, Path(directory))
        plain = load_protocol(plain_path)
        seconds = {"untuned": run(plain_path, args), "tuned": run(args.protocol, args)}
    rows = {name: ResultStore(args.results_dir, protocol.name).cells().query("status == 'done'")
            for name, protocol in (("untuned", plain), ("tuned", tuned))}
    print(f"wall time: untuned {seconds['untuned']:.0f} s, tuned {seconds['tuned']:.0f} s (tuning included)")
    print(f"{'arm':<22} {'fraction':>8} {'lr_head':>9} {'lr_backbone':>11} {'untuned ' + metric:>13} "
          f"{'tuned ' + metric:>11} {'change':>8}")
    for (arm, fraction), group in rows["tuned"].groupby(["arm", "fraction"], sort=False):
        before = rows["untuned"].query("arm == @arm and fraction == @fraction")[metric].mean()
        after = group[metric].mean()
        print(f"{arm:<22} {fraction:>8g} {group['lr_head'].iloc[0]:>9.2e} {group['lr_backbone'].iloc[0]:>11.2e} "
              f"{before:>13.3f} {after:>11.3f} {after - before:>+8.3f}")
    records = ResultStore(args.results_dir, tuned.name).tuning_records().values()
    for record in sorted(records, key=lambda r: (r["arm"], r["fraction"])):
        print(f"tuning {record['arm']} at fraction {record['fraction']:g}: {record['complete']} complete, "
              f"{record['pruned']} pruned, {record['failed']} failed of {record['trials']}; best {record['metric']} "
              f"{record['best_value']:.3f}; {record['trial_seconds']:.0f} s of trials")
    return 0


if __name__ == "__main__":
    sys.exit(main())
