"""Seeds added in rounds until every claim is decided, with an error rate that stays at alpha over the looks.

The design is group-sequential: the looks are planned before the first cell runs (the protocol's seeds, then
`seeds_per_round` more at each look, up to `max_seeds`), and each claim spends its alpha over them with the
Lan-DeMets O'Brien-Fleming-type spending function, half on each side:
alpha_side(t) = 2 - 2 Phi(z_{1 - alpha/4} / sqrt(t)), t = seeds at the look / max_seeds. The boundaries c_k (on the
z scale) follow by numerical integration of the Brownian motion the looks sample (Armitage, McPherson and Rowe's
recursion); at look k a claim is decided when its primary test (study.analysis.claims.RULE) decides it at the nominal level
2 (1 - Phi(c_k)) in place of alpha. A claim decided at a look keeps that verdict; the run stops once every claim is
decided or the last look is made.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import norm

from study.analysis.claims import evaluate_claim, pooled_decision
from study.core.vocabulary import Verdict
from study.protocol.schema import ClaimSpec, Protocol

METHOD = "group-sequential, Lan-DeMets O'Brien-Fleming-type alpha spending (two-sided, alpha/2 per side)"
DEFAULT_MAX_SEEDS = 10
DEFAULT_SEEDS_PER_ROUND = 2
GRID_POINTS = 801  # points per look of the numerical integration (odd, for Simpson's rule)
EVERY_CLAIM_DECIDED, LAST_LOOK_MADE = "every claim is decided", "the last look was made (max seeds reached)"


def spent(information: float, alpha: float) -> float:
    """Two-sided alpha spent by information fraction t (O'Brien-Fleming-type, alpha / 2 per side)."""
    if information <= 0:
        return 0.0
    return 2 * (2 - 2 * norm.cdf(norm.ppf(1 - alpha / 4) / math.sqrt(information)))


def boundaries(information: list[float], alpha: float) -> list[float]:
    """Two-sided z boundaries c_k of looks at increasing information fractions (the last one 1 for the plan)."""
    bounds: list[float] = []
    grid = density = None
    previous_t = previous_spent = 0.0
    for t in information:
        increment = spent(t, alpha) - previous_spent
        if grid is None:  # the first look: Z_1 is standard normal
            c = float(norm.isf(increment / 2))
            grid = np.linspace(-c * math.sqrt(t), c * math.sqrt(t), GRID_POINTS)
            density = norm.pdf(grid, scale=math.sqrt(t))
        else:
            step = math.sqrt(t - previous_t)
            weights = _simpson_weights(grid) * density  # mass of the continuation region at the last look

            def exit_probability(c: float) -> float:
                edge = c * math.sqrt(t)
                return float(np.sum(weights * (norm.cdf((-edge - grid) / step) + norm.sf((edge - grid) / step))))

            c = brentq(lambda c: exit_probability(c) - increment, 0.1, 40.0, xtol=1e-9)
            edge = c * math.sqrt(t)
            new_grid = np.linspace(-edge, edge, GRID_POINTS)
            density = norm.pdf((new_grid[:, None] - grid[None, :]) / step) @ weights / step
            grid = new_grid
        bounds.append(c)
        previous_t, previous_spent = t, previous_spent + increment
    return bounds


def _simpson_weights(grid: np.ndarray) -> np.ndarray:
    """Simpson's rule weights of an evenly spaced grid with an odd number of points."""
    weights = np.ones(len(grid))
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    return weights * (grid[1] - grid[0]) / 3


def nominal_levels(information: list[float], alpha: float) -> list[float]:
    """The two-sided p-value each look's test must reach, from its boundary."""
    return list(_levels(tuple(information), alpha))


@functools.lru_cache(maxsize=64)
def _levels(information: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    return tuple(float(2 * norm.sf(c)) for c in boundaries(list(information), alpha))


@dataclass(frozen=True)
class SequentialPlan:
    """The looks of a run with --until-decided: the protocol's seeds first, then seeds_per_round more each look."""

    base_seeds: list[int]
    max_seeds: int = DEFAULT_MAX_SEEDS
    seeds_per_round: int = DEFAULT_SEEDS_PER_ROUND
    method: str = METHOD

    def __post_init__(self) -> None:
        if self.max_seeds < len(self.base_seeds):
            raise ValueError(f"--max-seeds {self.max_seeds} is below the protocol's {len(self.base_seeds)} seeds")
        if self.seeds_per_round < 1:
            raise ValueError(f"--seeds-per-round must be at least 1, got {self.seeds_per_round}")

    def counts(self) -> list[int]:
        """Seeds at each look."""
        counts = list(range(len(self.base_seeds), self.max_seeds, self.seeds_per_round))
        return counts + [self.max_seeds]

    def information(self) -> list[float]:
        return [count / self.max_seeds for count in self.counts()]

    def seeds(self, count: int) -> list[int]:
        """The first `count` seeds: the protocol's, then the next unused numbers."""
        seeds = list(self.base_seeds)
        candidate = max(seeds, default=-1) + 1
        while len(seeds) < count:
            seeds.append(candidate)
            candidate += 1
        return seeds[:count]

    def levels(self, alpha: float) -> list[float]:
        return nominal_levels(self.information(), alpha)


@dataclass
class SequentialRecord:
    """What a run with --until-decided stored: its plan, the looks made (seeds at each) and why it stopped."""

    plan: SequentialPlan
    looks: list[int] = field(default_factory=list)
    seeds_run: int = 0  # seeds of the look being made or last made
    stopped: str | None = None  # None while the run goes on or after it was interrupted

    def to_dict(self) -> dict:
        return {"plan": asdict(self.plan), "looks": self.looks, "seeds_run": self.seeds_run, "stopped": self.stopped}

    @classmethod
    def from_dict(cls, data: dict) -> SequentialRecord:
        return cls(SequentialPlan(**data["plan"]), list(data["looks"]), int(data.get("seeds_run", 0)),
                   data.get("stopped"))


def record_for(protocol: Protocol, stored: dict | None) -> SequentialRecord | None:
    """The stored record when it belongs to the protocol: the protocol's seeds are the plan's first seeds, as
    written or with seeds the run added; else None."""
    if not stored:
        return None
    record = SequentialRecord.from_dict(stored)
    seeds = protocol.seed_list()
    belongs = len(record.plan.base_seeds) <= len(seeds) <= max(record.seeds_run, len(record.plan.base_seeds))
    return record if belongs and seeds == record.plan.seeds(len(seeds)) else None


def with_seeds(protocol: Protocol, seeds: list[int]) -> Protocol:
    """The protocol with an explicit seed list (run ids depend on each cell's seed, not on the list)."""
    return protocol.model_copy(update={"seeds": list(seeds)})


LOOK_COLUMNS = ["claim", "look", "seeds", "nominal_level", "p", "effect", "verdict", "decided_here"]


def look_table(done: pd.DataFrame, protocol: Protocol, record: SequentialRecord) -> pd.DataFrame:
    """One row per claim and look made until the claim was decided: its primary test at the look's seeds and
    nominal level; decided_here marks the look that fixed the verdict."""
    rows = []
    for claim in protocol.claims:
        rows += _claim_looks(done, claim, protocol, record)
    return pd.DataFrame(rows, columns=LOOK_COLUMNS)


def _claim_looks(done: pd.DataFrame, claim: ClaimSpec, protocol: Protocol, record: SequentialRecord) -> list[dict]:
    def test_at(count: int, level: float) -> tuple[str, float, float]:
        at_look = done[done["seed"].isin(record.plan.seeds(count))]
        summary, _ = evaluate_claim(at_look, claim.model_copy(update={"alpha": level}), protocol.report,
                                    protocol.fractions)
        return summary["verdict"], summary["p"], summary["effect"]

    rows = first_decision(test_at, record.looks, record.plan, claim.alpha or protocol.report.alpha)
    return [{"claim": claim.id, **row} for row in rows]


def first_decision(test_at: Callable[[int, float], tuple[str, float, float]], looks: list[int],
                   plan: SequentialPlan, alpha: float) -> list[dict]:
    """The looks made until the first decided one: test_at(seeds, nominal level) gives (verdict, p, effect)."""
    levels = dict(zip(plan.counts(), plan.levels(alpha)))
    rows = []
    for look, count in enumerate(looks, start=1):
        verdict, p, effect = test_at(count, levels[count])
        decided = verdict != Verdict.INCONCLUSIVE
        rows.append({"look": look, "seeds": count, "nominal_level": levels[count], "p": p, "effect": effect,
                     "verdict": verdict, "decided_here": decided})
        if decided:
            break
    return rows


def verdicts(looks: pd.DataFrame, record: SequentialRecord) -> dict[str, tuple[str, str]]:
    """claim -> (sequential verdict, reason): decided at a look, or inconclusive after the looks made."""
    outcome = {}
    for claim, rows in looks.groupby("claim", sort=False):
        last = rows.iloc[-1]
        if last["decided_here"]:
            outcome[claim] = (last["verdict"], f"decided at look {last['look']} of {len(record.plan.counts())} "
                                               f"({last['seeds']} seeds): p = {last['p']:.3g} < "
                                               f"{last['nominal_level']:.3g}, that look's nominal level")
        else:
            ended = "" if record.stopped else " so far"
            outcome[claim] = (Verdict.INCONCLUSIVE, f"not decided at any of {len(rows)} look(s){ended} (last: "
                                            f"{last['seeds']} seeds, p = {last['p']:.3g}, nominal level "
                                            f"{last['nominal_level']:.3g})")
    return outcome


def undecided(looks: pd.DataFrame) -> list[str]:
    """The claims no look has decided yet."""
    last = looks.groupby("claim", sort=False).tail(1)
    return list(last.loc[~last["decided_here"].astype(bool), "claim"])


def operating_characteristics(plan: SequentialPlan, delta: float, alpha: float = 0.05, claims: int = 2000,
                              seed: int = 0, resamples: int = 99) -> dict[str, float]:
    """By simulation: the shares of supported, contradicted and inconclusive verdicts, and the mean seeds used, of
    the plan's looks over claims whose per-seed advantage is N(delta, 1) (delta in units of the seed spread)."""
    rng = np.random.default_rng(seed)
    outcomes, used = [], []
    for _ in range(claims):
        advantages = rng.normal(delta, 1.0, plan.max_seeds)

        def test_at(count: int, level: float) -> tuple[str, float, float]:
            verdict, _, primary = pooled_decision(advantages[:count], 0.0, level, resamples=resamples)
            return verdict, primary.t_p, primary.mean_diff

        last = first_decision(test_at, plan.counts(), plan, alpha)[-1]
        outcomes.append(last["verdict"])
        used.append(last["seeds"])
    shares = {verdict: outcomes.count(verdict) / claims for verdict in Verdict}
    return shares | {"seeds": float(np.mean(used))}
