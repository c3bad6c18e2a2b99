"""A stored `--until-decided` study replayed look by look under each design of the looks: which claims were open,
how many cells each design trains and their stored training seconds, and whether it reaches the stored verdicts.

SOURCE is the study's results folder (results/<name>, with its sequential.json) or the report's tables/cells.csv;
the plan comes from sequential.json, else from --max-seeds and --seeds-per-round.

    python benchmarks/replay_sequential.py protocols/truncation.yaml report/truncation/tables/cells.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from study.analysis.replay import DESIGNS, EVERY_CELL, replay
from study.analysis.sequential import SequentialPlan, with_seeds
from study.analysis.summaries import finished_cells, flagged
from study.plan.cells import plan_cells
from study.protocol.arms import protocol_arms
from study.protocol.schema import Protocol, load_protocol
from study.store.results import ResultStore


def stored_cells(source: Path, protocol: Protocol, plan: SequentialPlan) -> pd.DataFrame:
    """The done cells of a results folder that the protocol plans at the plan's seeds (with the dataset its last run
    stored), or of a report's cells.csv (its arm columns filled from the protocol)."""
    if source.is_dir():
        store = ResultStore(source.parent, source.name)
        fingerprint = (store.dataset_info() or {})["fingerprint"]
        planned = [cell.run_id for cell in plan_cells(with_seeds(protocol, plan.seeds(plan.max_seeds)), fingerprint)]
        return finished_cells(store, planned)
    cells = pd.read_csv(source)
    arms = {arm.label: arm for arm in protocol_arms(protocol)}
    cells = cells.assign(depth=[arms[label].depth for label in cells["arm"]],
                         truncate_at=[arms[label].truncate_at for label in cells["arm"]])
    return flagged(cells)


def stored_plan(source: Path, protocol: Protocol, max_seeds: int, seeds_per_round: int) -> SequentialPlan:
    record = source / "sequential.json"
    if source.is_dir() and record.exists():
        return SequentialPlan(**json.loads(record.read_text())["plan"])
    return SequentialPlan(protocol.seed_list(), max_seeds=max_seeds, seeds_per_round=seeds_per_round)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", type=Path)
    parser.add_argument("source", type=Path, help="results/<name> folder or a report's tables/cells.csv")
    parser.add_argument("--max-seeds", type=int, default=10)
    parser.add_argument("--seeds-per-round", type=int, default=2)
    args = parser.parse_args()
    protocol = load_protocol(args.protocol)
    plan = stored_plan(args.source, protocol, args.max_seeds, args.seeds_per_round)
    done = stored_cells(args.source, protocol, plan)
    print(f"{len(done)} stored cells, {done['train_seconds'].sum():.0f} cell-seconds; looks at "
          f"{', '.join(map(str, plan.counts()))} seeds\n")
    replays = [replay(done, protocol, plan, design) for design in DESIGNS]
    for result in replays:
        print(f"## {result.design.name}\n")
        print(result.looks.to_string(index=False, float_format="{:.0f}".format), "\n")
    base = replays[0]
    print("| design | cells | cell-seconds | share of every-cell design | verdicts |")
    print("|---|---|---|---|---|")
    for result in replays:
        same = "the stored ones" if result.design == EVERY_CELL else _difference(base.verdicts, result.verdicts)
        print(f"| {result.design.name} | {result.cells} | {result.cell_seconds:.0f} | "
              f"{result.cell_seconds / base.cell_seconds:.2f} | {same} |")
    print("\nverdicts of the targeted design with futility:")
    for claim, (verdict, reason) in replays[-1].verdicts.items():
        print(f"- {claim}: {verdict.upper()} ({reason})")


def _difference(base: dict, other: dict) -> str:
    """The claims whose verdict differs from the every-cell design's, or 'same'."""
    changed = [f"{claim}: {base[claim][0]} -> {other[claim][0]}" for claim in base if other[claim][0] != base[claim][0]]
    return "; ".join(changed) or "same"


if __name__ == "__main__":
    main()
