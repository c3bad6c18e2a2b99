"""What `study run --until-decided` can decide and what it costs: by simulation, the verdict shares and mean seeds
used of the sequential design (looks at 3, 5, 7, 9 and 10 seeds), with and without its futility rule, beside fixed
designs of 3 and 10 seeds, for true advantages of 0 to 2 seed spreads; then the cells a study of three claims
(advantages 0, 1 and 2 seed spreads, each on its own two arms) trains with every arm at every look, with targeted
looks, and with targeted looks and futility. Prints Markdown tables (those of docs/guide/until-decided.md).

    python benchmarks/sequential_design.py [--claims 2000] [--studies 500]
"""

from __future__ import annotations

import argparse

from study.analysis.sequential import SequentialPlan, operating_characteristics, study_cells
from study.core.vocabulary import Verdict

LOOKS = SequentialPlan(list(range(3)), max_seeds=10, seeds_per_round=2)
DESIGNS = {
    "fixed, 3 seeds": (SequentialPlan(list(range(3)), max_seeds=3), False),
    "fixed, 10 seeds": (SequentialPlan(list(range(10)), max_seeds=10), False),
    "until decided, 3 to 10 seeds, no futility": (LOOKS, False),
    "until decided, 3 to 10 seeds, futility": (LOOKS, True),
}
EFFECTS = [0.0, 0.5, 1.0, 2.0]
STUDY = [0.0, 1.0, 2.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=2000, help="simulated claims per design and effect")
    parser.add_argument("--studies", type=int, default=500, help="simulated studies of three claims")
    args = parser.parse_args()
    print("| design | a = b: supported | a = b: contradicted | a = b: stopped for futility | " + " | ".join(
        f"advantage {effect:g} sd: supported (mean seeds)" for effect in EFFECTS[1:]) + " | a = b: mean seeds |")
    print("|---" * (len(EFFECTS) + 4) + "|")
    for name, (plan, futility) in DESIGNS.items():
        rates = [operating_characteristics(plan, effect, claims=args.claims, futility=futility) for effect in EFFECTS]
        power = " | ".join(f"{r[Verdict.SUPPORTED]:.2f} ({r['seeds']:.1f})" for r in rates[1:])
        print(f"| {name} | {rates[0][Verdict.SUPPORTED]:.3f} | {rates[0][Verdict.CONTRADICTED]:.3f} | "
              f"{rates[0]['futile']:.2f} | {power} | {rates[0]['seeds']:.1f} |", flush=True)
    cost = study_cells(LOOKS, STUDY, studies=args.studies)
    print(f"\nA study of {len(STUDY)} claims (advantages {', '.join(f'{d:g}' for d in STUDY)} sd, each on its own two "
          f"arms), looks at {', '.join(map(str, LOOKS.counts()))} seeds, {args.studies} studies:\n")
    print("| looks | mean cells trained | claims supported |")
    print("|---|---|---|")
    for name, supported in (("every cell", "without futility"), ("targeted", "without futility"),
                            ("targeted and futility", "with futility")):
        print(f"| {name} | {cost[name + ' cells']:.1f} | {cost['supported ' + supported]:.3f} |")


if __name__ == "__main__":
    main()
