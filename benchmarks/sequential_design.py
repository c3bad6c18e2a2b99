"""What `study run --until-decided` can decide: by simulation, the verdict shares and mean seeds used of the
sequential design (looks at 3, 5, 7, 9 and 10 seeds) beside fixed designs of 3 and 10 seeds, for true advantages
of 0 to 2 seed spreads. Prints a Markdown table (the README's).

    python benchmarks/sequential_design.py [--claims 2000]
"""

from __future__ import annotations

import argparse

from study.analysis.sequential import SequentialPlan, operating_characteristics
from study.core.vocabulary import Verdict

DESIGNS = {
    "fixed, 3 seeds": SequentialPlan(list(range(3)), max_seeds=3),
    "fixed, 10 seeds": SequentialPlan(list(range(10)), max_seeds=10),
    "until decided, 3 to 10 seeds": SequentialPlan(list(range(3)), max_seeds=10, seeds_per_round=2),
}
EFFECTS = [0.0, 0.5, 1.0, 2.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=2000, help="simulated claims per design and effect")
    args = parser.parse_args()
    print("| design | a = b: supported | a = b: contradicted | " + " | ".join(
        f"advantage {effect:g} sd: supported (mean seeds)" for effect in EFFECTS[1:]) + " | a = b: mean seeds |")
    print("|---" * (len(EFFECTS) + 3) + "|")
    for name, plan in DESIGNS.items():
        rates = [operating_characteristics(plan, effect, claims=args.claims) for effect in EFFECTS]
        power = " | ".join(f"{r[Verdict.SUPPORTED]:.2f} ({r['seeds']:.1f})" for r in rates[1:])
        print(f"| {name} | {rates[0][Verdict.SUPPORTED]:.3f} | {rates[0][Verdict.CONTRADICTED]:.3f} | {power} | "
              f"{rates[0]['seeds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
