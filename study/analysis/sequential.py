"""Seeds added in rounds until every claim is decided, with an error rate that stays at alpha over the looks.

The design is group-sequential: the looks are planned before the first cell runs (the protocol's seeds, at least
MIN_PAIRS, then `seeds_per_round` more at each look, up to `max_seeds`), and each claim spends its alpha over them
with the Lan-DeMets O'Brien-Fleming-type spending function, half on each side:
alpha_side(t) = 2 - 2 Phi(z_{1 - alpha/4} / sqrt(t)), t = seeds at the look / max_seeds. The boundaries c_k (on the
z scale) follow by numerical integration of the Brownian motion the looks sample (Armitage, McPherson and Rowe's
recursion); at look k a claim is decided when its primary test (study.analysis.claims.RULE) decides it at the nominal level
2 (1 - Phi(c_k)) in place of alpha. A claim decided at a look keeps that verdict; the run stops once every claim is
decided or the last look is made.

Two rules keep the added seeds where they can still decide something:
- Futility (non-binding): after an undecided look, a claim whose predictive power falls below FUTILITY_POWER stops
  asking for seeds. Predictive power is the chance that the test at the last planned look crosses its boundary on
  either side, averaging the conditional power over the effect's flat-prior posterior given the look's z
  (Spiegelhalter, Freedman and Blackburn 1986): PP = Phi((|z| - c_K sqrt(t)) / sqrt(1 - t)) +
  Phi((-|z| - c_K sqrt(t)) / sqrt(1 - t)). The efficacy boundaries are computed without the futility rule, so
  stopping for futility only removes chances to decide: the rate of false verdicts stays at most alpha.
- Targeting: the seeds added at a look train only the cells (arm x fraction) that the claims still open read; a
  strategy name reads all of that strategy's arms at the claim's fractions (its best arm by validation is chosen
  among them). A decided or futile claim never re-opens.
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

from study.analysis.claims import MIN_PAIRS, evaluate_claim, pooled_decision
from study.analysis.decidability import MAX_SEEDS, claim_fractions, seeds_needed
from study.core.vocabulary import Verdict
from study.protocol.arms import protocol_arms
from study.protocol.schema import ClaimSpec, Protocol

METHOD = "group-sequential, Lan-DeMets O'Brien-Fleming-type alpha spending (two-sided, alpha/2 per side)"
DEFAULT_MAX_SEEDS = 10
DEFAULT_SEEDS_PER_ROUND = 2
GRID_POINTS = 801  # points per look of the numerical integration (odd, for Simpson's rule)
FUTILITY_POWER = 0.10  # below this predictive power an undecided claim stops asking for seeds
EVERY_CLAIM_DECIDED, LAST_LOOK_MADE = "every claim is decided", "the last look was made (max seeds reached)"
NO_CLAIM_OPEN = "every claim is decided or cannot be decided within the planned seeds (futility)"


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
        if grid is None or density is None:  # the first look: Z_1 is standard normal
            c = float(norm.isf(increment / 2))
            grid = np.linspace(-c * math.sqrt(t), c * math.sqrt(t), GRID_POINTS)
            density = norm.pdf(grid, scale=math.sqrt(t))
        else:
            step = math.sqrt(t - previous_t)
            weights = _simpson_weights(grid) * density  # mass of the continuation region at the last look
            last = grid

            def exit_probability(c: float) -> float:
                edge = c * math.sqrt(t)
                return float(np.sum(weights * (norm.cdf((-edge - last) / step) + norm.sf((edge - last) / step))))

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


def predictive_power(p: float, information: float, final_boundary: float) -> float:
    """The chance that the last look's two-sided test crosses its boundary final_boundary (z scale), given a
    two-sided p at information t, under the flat-prior predictive distribution of the effect."""
    if not math.isfinite(p) or information >= 1:
        return math.nan
    z = float(norm.isf(max(p, 1e-300) / 2))
    reach, spread = final_boundary * math.sqrt(information), math.sqrt(1 - information)
    return float(norm.cdf((z - reach) / spread) + norm.cdf((-z - reach) / spread))


def nominal_levels(information: list[float], alpha: float) -> list[float]:
    """The two-sided p-value each look's test must reach, from its boundary."""
    return list(_levels(tuple(information), alpha))


@functools.lru_cache(maxsize=64)
def _levels(information: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    return tuple(float(2 * norm.sf(c)) for c in boundaries(list(information), alpha))


@dataclass(frozen=True)
class SequentialPlan:
    """The looks of a run with --until-decided: the first at the protocol's seeds, or at MIN_PAIRS seeds when the
    protocol has fewer, then seeds_per_round more each look.

    A look at fewer than MIN_PAIRS seeds could never decide a claim, yet would spend part of alpha and leave the
    later looks stricter boundaries; so a protocol with fewer seeds keeps its seeds as the plan's first ones and its
    first look adds the next numbers up to MIN_PAIRS, every cell of them, as a protocol with MIN_PAIRS seeds would."""

    base_seeds: list[int]
    max_seeds: int = DEFAULT_MAX_SEEDS
    seeds_per_round: int = DEFAULT_SEEDS_PER_ROUND
    method: str = METHOD

    def __post_init__(self) -> None:
        if self.max_seeds < len(self.base_seeds):
            raise ValueError(f"--max-seeds {self.max_seeds} is below the protocol's {len(self.base_seeds)} seeds")
        if self.max_seeds < MIN_PAIRS:
            raise ValueError(f"--max-seeds {self.max_seeds} is below the {MIN_PAIRS} seeds a claim's test needs")
        if self.seeds_per_round < 1:
            raise ValueError(f"--seeds-per-round must be at least 1, got {self.seeds_per_round}")

    def counts(self) -> list[int]:
        """Seeds at each look."""
        first = max(len(self.base_seeds), MIN_PAIRS)
        return list(range(first, self.max_seeds, self.seeds_per_round)) + [self.max_seeds]

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
    """What a run with --until-decided stored: its plan, the looks made (seeds at each), the cells the seeds added at
    each look train, and why it stopped."""

    plan: SequentialPlan
    looks: list[int] = field(default_factory=list)
    seeds_run: int = 0  # seeds of the look being made or last made
    stopped: str | None = None  # None while the run goes on or after it was interrupted
    targets: dict[int, list[tuple[str, float]]] = field(default_factory=dict)
    """seeds at a look -> the (arm, fraction) pairs its added seeds train; a look not listed trains every cell"""

    def to_dict(self) -> dict:
        return {"plan": asdict(self.plan), "looks": self.looks, "seeds_run": self.seeds_run, "stopped": self.stopped,
                "targets": {str(count): [list(pair) for pair in pairs] for count, pairs in self.targets.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> SequentialRecord:
        targets = {int(count): [(str(arm), float(fraction)) for arm, fraction in pairs]
                   for count, pairs in (data.get("targets") or {}).items()}
        return cls(SequentialPlan(**data["plan"]), list(data["looks"]), int(data.get("seeds_run", 0)),
                   data.get("stopped"), targets)

    def trains(self, arm: str, fraction: float, seed: int) -> bool:
        """Whether the looks plan the cell of this arm, fraction and seed: the protocol's seeds train every cell,
        an added seed the cells its look targets."""
        seeds = self.plan.seeds(self.plan.max_seeds)
        if seed not in seeds:
            return False
        count = next(count for count in self.plan.counts() if seeds.index(seed) < count)
        pairs = self.targets.get(count)
        return pairs is None or (arm, float(fraction)) in pairs


def record_for(protocol: Protocol, stored: dict | None) -> SequentialRecord | None:
    """The stored record when it belongs to the protocol: the protocol's seeds are the plan's first seeds, as
    written or with seeds the run added, and its looks are the plan's; else None (as for a record whose looks began
    below MIN_PAIRS seeds, which plans no longer make)."""
    if not stored:
        return None
    try:
        record = SequentialRecord.from_dict(stored)
    except ValueError:  # a plan refused now: fewer than MIN_PAIRS seeds in all
        return None
    seeds = protocol.seed_list()
    belongs = len(record.plan.base_seeds) <= len(seeds) <= max(record.seeds_run, len(record.plan.base_seeds))
    planned = set(record.looks) <= set(record.plan.counts())
    return record if belongs and planned and seeds == record.plan.seeds(len(seeds)) else None


def with_seeds(protocol: Protocol, seeds: list[int]) -> Protocol:
    """The protocol with an explicit seed list (run ids depend on each cell's seed, not on the list)."""
    return protocol.model_copy(update={"seeds": list(seeds)})


LOOK_COLUMNS = ["claim", "look", "seeds", "nominal_level", "p", "effect", "verdict", "decided_here",
                "predictive_power", "futile", "seeds_needed"]


@dataclass(frozen=True)
class LookTest:
    """A claim's primary test at one look: its verdict at the look's nominal level, p, effect, the seeds it paired,
    and the seeds a test with 80% power would need for the effect and spread seen (None: over MAX_SEEDS)."""

    verdict: str
    p: float
    effect: float
    pairs: int
    seeds_needed: int | None = None


def look_table(done: pd.DataFrame, protocol: Protocol, record: SequentialRecord, futility: bool = True
               ) -> pd.DataFrame:
    """One row per claim and look made until the claim was decided or (with futility) stopped for futility: its
    primary test at the look's seeds and nominal level; decided_here marks the look that fixed the verdict, futile
    the look after which it asked for no more seeds."""
    rows = []
    for claim in protocol.claims:
        rows += _claim_looks(done, claim, protocol, record, futility)
    return pd.DataFrame(rows, columns=LOOK_COLUMNS)


def _claim_looks(done: pd.DataFrame, claim: ClaimSpec, protocol: Protocol, record: SequentialRecord,
                 futility: bool) -> list[dict]:
    alpha = claim.alpha or protocol.report.alpha

    def test_at(count: int, level: float) -> LookTest:
        at_look = done[done["seed"].isin(record.plan.seeds(count))]
        summary, _ = evaluate_claim(at_look, claim.model_copy(update={"alpha": level}), protocol.report,
                                    protocol.fractions)
        needed = None if claim.kind == "trend" or summary["effect_seeds"] < 2 else seeds_needed(
            summary["effect"], summary["effect_sd"], claim.margin, alpha)
        return LookTest(summary["verdict"], summary["p"], summary["effect"], int(summary["effect_seeds"]), needed)

    rows = first_decision(test_at, record.looks, record.plan, alpha, futility)
    return [{"claim": claim.id, **row} for row in rows]


def first_decision(test_at: Callable[[int, float], LookTest], looks: list[int], plan: SequentialPlan, alpha: float,
                   futility: bool = True) -> list[dict]:
    """The looks made until the first decided one, or (with futility) the first after which the claim's predictive
    power is below FUTILITY_POWER (judged only where the look's test could decide: MIN_PAIRS or more seeds);
    test_at(seeds, nominal level) tests the claim at a look."""
    counts, levels = plan.counts(), plan.levels(alpha)
    level_at = dict(zip(counts, levels))
    final_boundary = float(norm.isf(levels[-1] / 2))
    rows = []
    for look, count in enumerate(looks, start=1):
        test = test_at(count, level_at[count])
        decided = test.verdict != Verdict.INCONCLUSIVE
        judged = not decided and test.pairs >= MIN_PAIRS
        power = predictive_power(test.p, count / plan.max_seeds, final_boundary) if judged else math.nan
        futile = futility and not decided and power < FUTILITY_POWER
        rows.append({"look": look, "seeds": count, "nominal_level": level_at[count], "p": test.p,
                     "effect": test.effect, "verdict": test.verdict, "decided_here": decided,
                     "predictive_power": power, "futile": futile, "seeds_needed": test.seeds_needed})
        if decided or futile:
            break
    return rows


def verdicts(looks: pd.DataFrame, record: SequentialRecord) -> dict[str, tuple[str, str]]:
    """claim -> (sequential verdict, reason): decided at a look, undecidable within the planned seeds (stopped for
    futility), or inconclusive after the looks made."""
    outcome = {}
    planned = len(record.plan.counts())
    for claim, rows in looks.groupby("claim", sort=False):
        last = rows.iloc[-1]
        if last["decided_here"]:
            outcome[claim] = (last["verdict"], f"decided at look {last['look']} of {planned} "
                                               f"({last['seeds']} seeds): p = {last['p']:.3g} < "
                                               f"{last['nominal_level']:.3g}, that look's nominal level")
        elif last["futile"]:
            outcome[claim] = (Verdict.INCONCLUSIVE, f"undecidable within {record.plan.max_seeds} seeds: "
                                                    f"{_needed(last['seeds_needed'])}; at look {last['look']} "
                                                    f"({last['seeds']} seeds, p = {last['p']:.3g}) its predictive "
                                                    f"power was {last['predictive_power']:.0%} < "
                                                    f"{FUTILITY_POWER:.0%}, so it asked for no more seeds")
        else:
            ended = "" if record.stopped else " so far"
            outcome[claim] = (Verdict.INCONCLUSIVE, f"not decided at any of {len(rows)} look(s){ended} (last: "
                                            f"{last['seeds']} seeds, p = {last['p']:.3g}, nominal level "
                                            f"{last['nominal_level']:.3g})")
    return outcome


def _needed(seeds: float | None) -> str:
    """The seeds a claim needs, from the power estimate, in words."""
    if seeds is None or not math.isfinite(seeds):
        return f"over {MAX_SEEDS} needed for 80% power at the effect and spread seen"
    return f"about {int(seeds)} needed for 80% power at the effect and spread seen"


@dataclass(frozen=True)
class Look:
    """A look made: every claim's looks so far (look_table), the claims still open, and the claims this look decided
    or stopped for futility."""

    table: pd.DataFrame
    still_open: list[str]
    decided: list[str]
    futile: list[str]


def target_look(record: SequentialRecord, count: int, still_open: list[str], protocol: Protocol) -> None:
    """Before the look at count seeds: the seeds it adds train only the cells the open claims read (the first look
    trains every cell)."""
    record.seeds_run = count
    if record.looks:
        record.targets[count] = targets(still_open, protocol)


def make_look(done: pd.DataFrame, protocol: Protocol, record: SequentialRecord, count: int, futility: bool = True
              ) -> Look:
    """The look at count seeds on the done cells (flagged, one per arm, fraction and seed), added to the record;
    once no claim is open, the record says why the looks stopped."""
    record.looks.append(count)
    table = look_table(done, protocol, record, futility)
    at_look = table[table["look"] == len(record.looks)]
    still_open = open_claims(table)
    if not still_open:
        record.stopped = NO_CLAIM_OPEN if table["futile"].astype(bool).any() else EVERY_CLAIM_DECIDED
    return Look(table, still_open, _claims_where(at_look, "decided_here"), _claims_where(at_look, "futile"))


def _claims_where(rows: pd.DataFrame, flag: str) -> list[str]:
    return list(rows.loc[rows[flag].astype(bool), "claim"])


def open_claims(looks: pd.DataFrame) -> list[str]:
    """The claims no look has decided or stopped for futility: those the next look's seeds are for."""
    last = looks.groupby("claim", sort=False).tail(1)
    still = ~(last["decided_here"].astype(bool) | last["futile"].astype(bool))
    return list(last.loc[still, "claim"])


def claim_reads(claim: ClaimSpec, protocol: Protocol) -> set[tuple[str, float]]:
    """The (arm, fraction) pairs whose cells a claim's test reads: every arm its sides name, where a name that is
    no arm's label is a strategy and stands for all of its arms, at the claim's fractions."""
    arms = protocol_arms(protocol)
    names = claim.side("a") + claim.side("b")
    labels = {arm.label for arm in arms}
    strategies = {name for name in names if name not in labels}
    read = [arm.label for arm in arms if arm.label in names or arm.strategy in strategies]
    return {(label, float(fraction)) for label in read for fraction in claim_fractions(claim, protocol)}


def targets(claims: list[str], protocol: Protocol) -> list[tuple[str, float]]:
    """The (arm, fraction) pairs the named claims read, in the protocol's arm order."""
    by_id = {claim.id: claim for claim in protocol.claims}
    read = set().union(*(claim_reads(by_id[claim], protocol) for claim in claims)) if claims else set()
    order = [arm.label for arm in protocol_arms(protocol)]
    return sorted(read, key=lambda pair: (order.index(pair[0]), pair[1]))


def simulated_claim(plan: SequentialPlan, advantages: np.ndarray, alpha: float = 0.05, futility: bool = True,
                    resamples: int = 99) -> dict:
    """The last look row of a claim whose per-seed advantages are given (one per planned seed): its verdict, the
    seeds it used and whether it stopped for futility."""
    def test_at(count: int, level: float) -> LookTest:
        verdict, _, primary = pooled_decision(advantages[:count], 0.0, level, resamples=resamples)
        return LookTest(verdict, primary.t_p, primary.mean_diff, primary.n)

    return first_decision(test_at, plan.counts(), plan, alpha, futility)[-1]


def operating_characteristics(plan: SequentialPlan, delta: float, alpha: float = 0.05, claims: int = 2000,
                              seed: int = 0, resamples: int = 99, futility: bool = True) -> dict[str, float]:
    """By simulation: the shares of supported, contradicted and inconclusive verdicts, the share stopped for
    futility, and the mean seeds used, of the plan's looks over claims whose per-seed advantage is N(delta, 1)
    (delta in units of the seed spread)."""
    rng = np.random.default_rng(seed)
    last = [simulated_claim(plan, rng.normal(delta, 1.0, plan.max_seeds), alpha, futility, resamples)
            for _ in range(claims)]
    outcomes = [row["verdict"] for row in last]
    shares = {verdict: outcomes.count(verdict) / claims for verdict in Verdict}
    return shares | {"futile": float(np.mean([row["futile"] for row in last])),
                     "seeds": float(np.mean([row["seeds"] for row in last]))}


def study_cells(plan: SequentialPlan, deltas: list[float], studies: int = 500, alpha: float = 0.05, seed: int = 0,
                resamples: int = 99) -> dict[str, float]:
    """By simulation, for studies whose claims each read their own two arms (advantages N(delta, 1) per seed): the
    mean cells trained when every look trains every arm until no claim is open, when looks train only the open
    claims' arms, and when futility also stops claims; and the share of claims supported (targeting alone never
    changes a verdict, so the first two designs share theirs)."""
    rng = np.random.default_rng(seed)
    cells: dict[str, list[int]] = {"every cell": [], "targeted": [], "targeted and futility": []}
    supported = {"without futility": 0, "with futility": 0}
    for _ in range(studies):
        advantages = [rng.normal(delta, 1.0, plan.max_seeds) for delta in deltas]
        plain = [simulated_claim(plan, values, alpha, False, resamples) for values in advantages]
        stopped = [simulated_claim(plan, values, alpha, True, resamples) for values in advantages]
        cells["every cell"].append(2 * len(deltas) * max(row["seeds"] for row in plain))
        cells["targeted"].append(2 * sum(row["seeds"] for row in plain))
        cells["targeted and futility"].append(2 * sum(row["seeds"] for row in stopped))
        supported["without futility"] += sum(row["verdict"] == Verdict.SUPPORTED for row in plain)
        supported["with futility"] += sum(row["verdict"] == Verdict.SUPPORTED for row in stopped)
    return {f"{name} cells": float(np.mean(values)) for name, values in cells.items()} | {
        f"supported {name}": count / (studies * len(deltas)) for name, count in supported.items()}
