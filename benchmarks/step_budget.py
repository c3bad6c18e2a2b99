"""Step budget (train.min_steps) against test AUC, steps and time, per arm of protocols/truncation.yaml.

Writes copies of the truncation protocol that differ only in `name`, `train.min_steps`, `fractions` and `seeds`
(claims dropped), runs each with `study run` (stored cells are skipped, so a second call resumes), then prints:

- per arm x fraction x budget: mean test AUC +- SD over seeds, mean steps, mean train_seconds;
- per arm x fraction x budget: the AUC difference against the reference budget (500), paired by seed, its SE, and
  whether the budget loses AUC beyond seed noise (mean diff < -2 SE);
- per arm x fraction x budget, with --reference: the mean AUC against the shipped study's mean over all its seeds;
- per budget (and per arm): the cell-seconds of one seed of the whole truncation grid (all its fractions): the
  shipped study's train_seconds scaled by each arm's measured ratio budget/500 (of train_seconds, fair only when
  both ran under the same load, and of steps) at the nearest measured fraction (a fraction whose schedule does not
  depend on the budget keeps its time).

At fraction 1 (546 images, 18 steps per epoch x 30 epochs = 540 steps) every budget up to 540 gives the schedule of
500, so such (budget, fraction) pairs are not run and read from the 500 cells. A 500 cell not run here is read from
the shipped study (--reference), marked "shipped".

Usage:
    STUDY_DATA_DIR=... KERAS_HOME=... python benchmarks/step_budget.py --budgets 125 250 --fractions 0.05 0.25
    python benchmarks/step_budget.py --budgets 500 --fractions 0.05 0.25 1
    python benchmarks/step_budget.py --report-only --budgets 125 250 500 1000 --fractions 0.05 0.25 1 \
        --reference report/truncation/tables/cells.csv
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from study.store.results import ResultStore
from study.training.train import steps_per_epoch

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "protocols" / "truncation.yaml"
REF = 500


def protocol(budget: int, fractions: list[float], seeds: int) -> dict:
    spec = yaml.safe_load(BASE.read_text())
    spec.pop("claims", None)
    spec["name"] = f"step_budget_m{budget}"
    spec["fractions"] = fractions
    spec["seeds"] = seeds
    spec["train"]["min_steps"] = budget
    return spec


def same_schedule(budget: int, fraction: float, spec: dict, train_size: int) -> bool:
    """True when this budget trains the fraction exactly as the reference budget does."""
    n = max(1, round(fraction * train_size))
    train = spec["train"]
    return steps_per_epoch(n, {**train, "min_steps": budget}) == steps_per_epoch(n, {**train, "min_steps": REF})


def run(args: argparse.Namespace) -> None:
    folder = args.out / "protocols"
    folder.mkdir(parents=True, exist_ok=True)
    for budget in args.budgets:
        spec = protocol(budget, [], args.seeds)
        fractions = [f for f in args.fractions if budget == REF or not same_schedule(budget, f, spec, args.train_size)]
        if not fractions:
            continue
        # one store per budget; fractions already in it are kept, so a later call can add fractions to it
        stored = cells(args.out / "results", budget)
        fractions = sorted(set(fractions) | set(stored["fraction"].unique() if len(stored) else []))
        path = folder / f"step_budget_m{budget}.yaml"
        path.write_text(yaml.safe_dump(protocol(budget, fractions, args.seeds), sort_keys=False))
        cmd = [sys.executable, "-m", "study", "run", str(path), "--results-dir", str(args.out / "results"),
               "--report-dir", str(args.out / "report"), "--jobs", str(args.jobs), "--no-progress"]
        if args.data_dir:
            cmd += ["--data-dir", str(args.data_dir)]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def cells(results: Path, budget: int) -> pd.DataFrame:
    store = ResultStore(results, f"step_budget_m{budget}")
    if not store.cells_dir.exists():
        return pd.DataFrame(columns=["arm", "fraction", "seed", "auc", "steps", "train_seconds"])
    df = store.cells()
    return df[df["status"] == "done"]


def table(args: argparse.Namespace) -> None:
    spec = protocol(REF, [], args.seeds)
    seeds = list(range(args.seeds))
    rows = []
    for budget in sorted(set(args.budgets) | {REF}):
        df = cells(args.out / "results", budget)
        df = df.assign(budget=budget, source="run")
        rows.append(df)
    data = pd.concat(rows, ignore_index=True)
    data = data[data["seed"].isin(seeds) & data["fraction"].isin(args.fractions)]
    data["fraction"] = data["fraction"].astype(float)
    shipped = pd.DataFrame()
    if args.reference and Path(args.reference).exists():
        shipped = pd.read_csv(args.reference)
        shipped = shipped[(shipped["status"] == "done") & shipped["fraction"].isin(args.fractions)]
        # a reference cell not run here (yet) is read from the shipped study (same cell at min_steps 500)
        fresh = set(map(tuple, data[data["budget"] == REF][["arm", "fraction", "seed"]].values.tolist()))
        extra = shipped[shipped["seed"].isin(seeds)]
        extra = extra[[(a, f, s) not in fresh for a, f, s in extra[["arm", "fraction", "seed"]].values.tolist()]]
        data = pd.concat([data, extra.assign(budget=REF, source="shipped")], ignore_index=True)
    # budgets whose schedule equals the reference at a fraction: the reference cells stand for them
    for budget in args.budgets:
        for f in args.fractions:
            if budget != REF and same_schedule(budget, f, spec, args.train_size):
                ref = data[(data["budget"] == REF) & (data["fraction"] == f)]
                ref = ref.assign(budget=budget, source=ref["source"].map({"run": "=500", "shipped": "=500 shipped"}))
                data = pd.concat([data, ref], ignore_index=True)
    arms = list(dict.fromkeys(list(shipped.get("arm", [])) + list(data["arm"])))  # the protocol's order

    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    print(f"seeds {seeds}; reference budget {REF}; 'loses' = mean paired diff < -2 SE\n")
    out = []
    for arm in arms:
        for f in args.fractions:
            ref = data[(data["arm"] == arm) & (data["fraction"] == f) & (data["budget"] == REF)].set_index("seed")
            for budget in sorted(set(args.budgets) | {REF}):
                sub = data[(data["arm"] == arm) & (data["fraction"] == f) & (data["budget"] == budget)]
                if sub.empty:
                    continue
                sub = sub.set_index("seed")
                diff = (sub["auc"] - ref["auc"]).dropna()
                n = len(diff)
                se = diff.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
                out.append({
                    "arm": arm, "fraction": f, "budget": budget, "n": len(sub),
                    "auc": sub["auc"].mean(), "sd": sub["auc"].std(ddof=1),
                    "steps": sub["steps"].mean(), "seconds": sub["train_seconds"].mean(),
                    "diff": diff.mean() if n else float("nan"), "se": se,
                    "loses": "" if budget == REF or n < 2 else ("YES" if diff.mean() < -2 * se else "no"),
                    **against_shipped(sub["auc"], shipped, arm, f),
                    "note": ",".join(sorted(set(sub["source"]) - {"run"})),
                })
    res = pd.DataFrame(out)
    print(res.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    print("\nn: seeds; auc, sd: mean test AUC and its SD over seeds; steps, seconds: means (train_seconds);"
          f" diff, se: AUC minus min_steps {REF}'s, paired by seed, and its SE; d10, se10: mean AUC minus the"
          " shipped study's mean over all its seeds (unpaired, SE of the difference); note '=500': same schedule"
          " as 500, cells shared; 'shipped': the 500 cells are the shipped study's (not run here)")
    if args.reference and Path(args.reference).exists():
        tight = pd.read_csv(args.reference)
        tight = tight[tight["status"] == "done"]
        print(f"\nshipped reference ({args.reference}, min_steps 500): mean test AUC over its seeds "
              f"{sorted(int(x) for x in tight['seed'].unique())}")
        summary = tight[tight["fraction"].isin(args.fractions)].groupby(["arm", "fraction"])["auc"].agg(
            ["count", "mean", "std"]).unstack("fraction")
        print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
        # the 0-2 seeds there against the fresh 500 run (same cells, other machine load)
        fresh = data[(data["budget"] == REF) & (data["source"] == "run")].set_index(["arm", "fraction", "seed"])["auc"]
        old = tight.set_index(["arm", "fraction", "seed"])["auc"]
        both = pd.concat([fresh.rename("fresh"), old.rename("shipped")], axis=1, join="inner")
        if len(both):
            d = (both["fresh"] - both["shipped"]).abs()
            print(f"fresh 500 vs shipped, same cells ({len(both)}): |AUC diff| mean {d.mean():.4f}, max {d.max():.4f}")
        grid = tight.groupby(["arm", "fraction"])["train_seconds"].mean()
        print(f"\ncell-seconds of one seed of the truncation grid (fractions "
              f"{sorted(float(x) for x in tight['fraction'].unique())}): the shipped study's mean train_seconds per"
              " cell, each arm x fraction scaled by the ratio budget/500 of this arm's mean train_seconds (both run"
              " here; only fair when both ran under the same load) or of its mean steps, at the nearest fraction"
              " measured here:")
        fr = np.array(args.fractions)
        # seconds only from cells run here (one load); steps are the same wherever a cell ran
        measured = {"seconds": res[res["note"] == ""].set_index(["arm", "fraction", "budget"]),
                    "steps": res.set_index(["arm", "fraction", "budget"])}
        per_arm = {}
        for budget in sorted(set(args.budgets) | {REF}):
            total = {"seconds": 0.0, "steps": 0.0}
            for (arm, f), secs in grid.items():
                per_arm.setdefault((arm, budget), 0.0)
                near = float(fr[np.argmin(np.abs(fr - f))])
                for what in total:
                    if budget == REF or same_schedule(budget, f, spec, args.train_size):
                        part = secs
                    elif (arm, near, budget) in measured[what].index and (arm, near, REF) in measured[what].index:
                        m = measured[what]
                        part = secs * m.loc[(arm, near, budget), what] / m.loc[(arm, near, REF), what]
                    else:
                        part = float("nan")
                    total[what] += part
                    if what == "steps":
                        per_arm[(arm, budget)] += part
            print(f"  min_steps {budget:>5}: {total['seconds']:6.0f} s by seconds ratio "
                  f"({total['seconds'] / grid.sum():.2f} x 500), {total['steps']:6.0f} s by steps ratio "
                  f"({total['steps'] / grid.sum():.2f} x 500)")
        print("  (total cell-seconds of a seed at min_steps 500 in the shipped study: "
              f"{grid.sum():.0f} s, load about 3)")
        print("\nthe same by arm (steps ratio), cell-seconds of one seed over the 5 fractions:")
        print(pd.Series(per_arm).unstack().to_string(float_format=lambda v: f"{v:.0f}"))


def against_shipped(auc: pd.Series, shipped: pd.DataFrame, arm: str, fraction: float) -> dict:
    """Mean AUC minus the shipped study's mean over all its seeds, with the SE of that (unpaired) difference."""
    if shipped.empty:
        return {}
    ref = shipped[(shipped["arm"] == arm) & (shipped["fraction"] == fraction)]["auc"]
    se = math.sqrt(auc.var(ddof=1) / len(auc) + ref.var(ddof=1) / len(ref)) if len(auc) > 1 else float("nan")
    return {"d10": auc.mean() - ref.mean(), "se10": se}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", type=int, nargs="+", default=[125, 250, 500, 1000])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.25, 1.0])
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..n-1")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("/tmp/step_budget"))
    p.add_argument("--train-size", type=int, default=546, help="images in the whole training split")
    p.add_argument("--reference", default=str(ROOT / "report" / "truncation" / "tables" / "cells.csv"),
                   help="cells.csv of the shipped truncation study (min_steps 500, more seeds)")
    p.add_argument("--report-only", action="store_true", help="print the table from what is stored, run nothing")
    args = p.parse_args()
    if not args.report_only:
        run(args)
    table(args)


if __name__ == "__main__":
    main()
