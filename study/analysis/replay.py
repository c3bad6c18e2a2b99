"""A stored `--until-decided` study replayed under a design of its looks, from its stored cells alone: at each look
which claims were open, which cells the design would have trained, what they cost, and the verdicts it reaches.

Replaying the design the study ran (every cell at every look, no futility) gives back its stored verdicts; the
targeted design with futility shows what its looks would have saved on the same cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from study.analysis.sequential import (
    LAST_LOOK_MADE,
    SequentialPlan,
    SequentialRecord,
    make_look,
    target_look,
    verdicts,
)
from study.protocol.schema import Protocol


@dataclass(frozen=True)
class Design:
    """How the looks spend seeds: only on the cells open claims read (targeted), and whether futility stops a
    claim."""

    name: str
    targeted: bool
    futility: bool


EVERY_CELL = Design("every cell at every look, no futility", targeted=False, futility=False)
DESIGNS = (
    EVERY_CELL,
    Design("every cell at every look, futility", targeted=False, futility=True),
    Design("targeted looks, no futility", targeted=True, futility=False),
    Design("targeted looks and futility", targeted=True, futility=True),
)
LOOK_COLUMNS = ["look", "seeds", "open_before", "cells", "cell_seconds", "decided", "futile"]


@dataclass
class Replay:
    """One design replayed: a row per look made, and each claim's verdict with its reason."""

    design: Design
    looks: pd.DataFrame  # LOOK_COLUMNS
    verdicts: dict[str, tuple[str, str]]

    @property
    def cells(self) -> int:
        return int(self.looks["cells"].sum())

    @property
    def cell_seconds(self) -> float:
        return float(self.looks["cell_seconds"].sum())


def replay(done: pd.DataFrame, protocol: Protocol, plan: SequentialPlan, design: Design) -> Replay:
    """The looks of plan made under design on the stored done cells (flagged, one per arm, fraction and seed);
    the looks stop where the design stops or where the stored seeds end."""
    record = SequentialRecord(plan)
    still_open = [claim.id for claim in protocol.claims]
    rows, table, previous = [], pd.DataFrame(), 0
    stored_seeds = set(done["seed"])
    for count in plan.counts():
        if not set(plan.seeds(count)) <= stored_seeds:
            break
        if design.targeted:
            target_look(record, count, still_open, protocol)
        trained = _trained(done, record, plan.seeds(count))
        added = trained[~trained["seed"].isin(plan.seeds(previous))]
        look = make_look(trained, protocol, record, count, design.futility)
        rows.append({"look": len(record.looks), "seeds": count, "open_before": ", ".join(still_open),
                     "cells": len(added), "cell_seconds": float(added["train_seconds"].sum()),
                     "decided": ", ".join(look.decided), "futile": ", ".join(look.futile)})
        table, still_open, previous = look.table, look.still_open, count
        if not still_open:
            break
    if record.looks == plan.counts() and not record.stopped:
        record.stopped = LAST_LOOK_MADE
    return Replay(design, pd.DataFrame(rows, columns=LOOK_COLUMNS), verdicts(table, record) if len(table) else {})


def _trained(done: pd.DataFrame, record: SequentialRecord, seeds: list[int]) -> pd.DataFrame:
    """The stored cells of these seeds that the record's looks train."""
    keep = [seed in seeds and record.trains(arm, fraction, seed)
            for arm, fraction, seed in zip(done["arm"], done["fraction"], done["seed"])]
    return done[keep]
