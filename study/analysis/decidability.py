"""What a protocol's seeds can decide, said before anything trains; and, from a pilot's stored cells, how many seeds
each claim needs to be decided with 80% power.

A claim's verdict comes from one paired t-test over seeds (study.analysis.claims.RULE): it needs MIN_PAIRS seeds, and the
Wilcoxon test can veto only from the number of seeds at which its smallest p (2 / 2^n) reaches alpha. A trend
claim needs MIN_FRACTIONS fractions and MIN_POINTS (seed, fraction) picks.
"""

from __future__ import annotations

import bisect
import math

import pandas as pd
from scipy.integrate import quad
from scipy.special import ndtr
from scipy.stats import chi2, t

from study.analysis.claims import MIN_PAIRS
from study.analysis.curves import MIN_SIZES
from study.analysis.stats import wilcoxon_smallest_p
from study.analysis.trend import MIN_FRACTIONS, MIN_POINTS
from study.protocol.schema import ClaimSpec, Protocol

POWER = 0.8
MAX_SEEDS = 1000  # beyond this a claim is not decidable in practice


def claim_fractions(claim: ClaimSpec, protocol: Protocol) -> list[float]:
    """The fractions a claim is tested at."""
    return list(protocol.fractions) if claim.fractions == "all" else list(claim.fractions)


def capacity(claim: ClaimSpec, protocol: Protocol) -> tuple[bool, str]:
    """Whether the protocol's seeds can decide the claim at all, and a line that says why."""
    seeds = len(protocol.seed_list())
    alpha = claim.alpha or protocol.report.alpha
    if claim.kind == "trend":
        fractions = len(claim_fractions(claim, protocol))
        picks = seeds * fractions
        if fractions < MIN_FRACTIONS or picks < MIN_POINTS:
            return False, (f"claim {claim.id} cannot be decided: {seeds} seeds x {fractions} fractions give {picks} "
                           f"picks; a trend needs {MIN_FRACTIONS}+ fractions and {MIN_POINTS}+ picks")
        return True, f"claim {claim.id}: a trend over {fractions} fractions with {picks} picks (Kendall's tau)"
    if seeds < MIN_PAIRS:
        return False, (f"claim {claim.id} cannot be decided with {seeds} seed(s): its paired t-test needs "
                       f"{MIN_PAIRS} or more seeds; raise seeds")
    smallest = wilcoxon_smallest_p(seeds)
    wilcoxon = (f"the Wilcoxon test confirms it (smallest p {smallest:.3g})" if smallest <= alpha else
                f"the Wilcoxon test cannot reach alpha {alpha:g} (smallest p {smallest:.3g}) and does not veto")
    return True, f"claim {claim.id}: decided by a paired t-test over {seeds} seeds at alpha {alpha:g}; {wilcoxon}"


def capacity_lines(protocol: Protocol) -> list[str]:
    """One line per claim, and one for a target the fractions cannot fit; those that cannot be decided begin with
    'warning:'."""
    lines = []
    for claim in protocol.claims:
        decidable, line = capacity(claim, protocol)
        lines.append(line if decidable else f"warning: {line}")
    sizes = len(protocol.fractions)
    if protocol.report.target is not None and sizes < MIN_SIZES:
        lines.append(f"warning: report.target {protocol.report.target:g}: {sizes} fraction(s) give no fitted training "
                     f"size (the learning-curve fit needs {MIN_SIZES} or more fractions); the report gives only the "
                     "smallest measured size that reaches the target")
    return lines


def paired_t_power(size: float, pairs: int, alpha: float) -> float:
    """Power of the two-sided paired t-test over `pairs` seeds at standardized effect size `size` (mean advantage /
    spread): the chance that |t| passes its critical value c, i.e. the noncentral t's two tails, integrated over the
    sample spread's chi-square law: the integral of Phi(delta - c s) + Phi(-delta - c s) with delta = |size|
    sqrt(pairs) and s = sqrt(V / (pairs - 1)), V chi-square. Finite for every effect, where scipy's noncentral t
    returns NaN for tails it cannot resolve."""
    df = pairs - 1
    critical = t.isf(alpha / 2, df)
    shift = abs(size) * math.sqrt(pairs)
    log_scale = df / 2 * math.log(2) + math.lgamma(df / 2)

    def rejected(variance: float) -> float:  # the chi-square density written out: scipy.stats costs 100x per point
        reach = critical * math.sqrt(variance / df)
        density = math.exp((df / 2 - 1) * math.log(variance) - variance / 2 - log_scale)
        return (ndtr(shift - reach) + ndtr(-reach - shift)) * density

    return quad(rejected, chi2.ppf(1e-12, df), chi2.isf(1e-12, df), limit=200)[0]


def seeds_needed(effect: float, spread: float, margin: float, alpha: float, power: float = POWER) -> int | None:
    """Seeds a paired t-test needs to find an advantage `effect` (against -margin) with per-seed spread `spread` at
    alpha with the given power: the fewest, from MIN_PAIRS (no verdict comes from fewer), whose paired_t_power
    reaches it (power grows with the seeds, so a bisection finds it); None when no advantage is seen or when
    MAX_SEEDS seeds would not reach that power."""
    distance = effect + margin
    if not math.isfinite(distance) or not math.isfinite(spread) or distance == 0:
        return None
    if spread == 0:
        return MIN_PAIRS
    size = abs(distance) / spread
    counts = range(MIN_PAIRS, MAX_SEEDS + 1)
    first = bisect.bisect_left(counts, True, key=lambda pairs: paired_t_power(size, pairs, alpha) >= power)
    return counts[first] if first < len(counts) else None


def pilot_lines(summary: pd.DataFrame, protocol: Protocol) -> list[str]:
    """Per claim of an evaluated pilot (study.analysis.claims.evaluate_claims' summary): the seeds it needs at 80% power."""
    lines = []
    claims = {claim.id: claim for claim in protocol.claims}
    for row in summary.itertuples(index=False):
        claim = claims[row.claim]
        if claim.kind == "trend":
            lines.append(f"claim {row.claim}: {row.verdict} so far (tau {row.effect:+.3g}); trend claims get no "
                         "seed estimate")
            continue
        if row.effect_seeds < 2:
            lines.append(f"claim {row.claim}: {row.effect_seeds} seed(s) stored at every fraction; a seed "
                         "estimate needs 2 or more")
            continue
        needed = seeds_needed(row.effect, row.effect_sd, claim.margin, row.alpha)
        observed = f"advantage {row.effect:+.3g}, spread {row.effect_sd:.3g} over {row.effect_seeds} seeds"
        if needed is None:
            lines.append(f"claim {row.claim}: {row.verdict} so far ({observed}); the advantage is too small for "
                         f"{MAX_SEEDS} seeds to decide it with {POWER:.0%} power")
        else:
            more = (f" (`study run --until-decided --max-seeds {needed}` adds them while the error rate stays at "
                    "alpha)" if needed > row.effect_seeds else "")
            lines.append(f"claim {row.claim}: {row.verdict} so far ({observed}); about {needed} seeds decide it "
                         f"with {POWER:.0%} power{more}")
    return lines
