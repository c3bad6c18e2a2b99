"""A stored --until-decided study replayed from its cells: the design it ran gives back the verdicts of its own
looks, and targeted looks with futility train only what open claims read, reaching the same decided verdicts."""

from __future__ import annotations

import pandas as pd
from helpers.synthetic import grid_rows, protocol_text

from study.analysis.replay import DESIGNS, EVERY_CELL, replay
from study.analysis.sequential import SequentialPlan, SequentialRecord, claim_reads, look_table, verdicts
from study.analysis.summaries import flagged
from study.core.vocabulary import Verdict
from study.protocol.schema import parse_protocol

CLAIMS = """
claims:
  - {id: frozen-beats-scratch, a: frozen, b: scratch}
  - {id: shallow-equals-scratch, a: finetune(depth=1), b: scratch}
  - {id: truncate-beats-full, a: truncate, b: finetune(depth=all), fractions: [1.0]}
"""
PLAN = SequentialPlan([0, 1, 2], max_seeds=9, seeds_per_round=2)  # looks at 3, 5, 7, 9 seeds
EFFECTS = {"scratch": 0.0, "frozen": 0.06, "finetune(depth=1)": 0.0, "finetune(depth=all)": 0.0,
           "truncate(at=2)": 0.03}


def stored_study() -> tuple[pd.DataFrame, object]:
    protocol = parse_protocol(protocol_text(fractions=(0.5, 1.0), seeds=3, extra=CLAIMS))
    rows = grid_rows(EFFECTS, fractions=(0.5, 1.0), seeds=PLAN.max_seeds, noise=0.01, seed=3)
    for index, row in enumerate(rows):
        row["train_seconds"] = 1.0 + index % 7  # cell costs that differ, so that seconds are not a cell count
    return flagged(pd.DataFrame(rows)), protocol


def test_the_design_the_study_ran_gives_back_the_verdicts_of_its_looks():
    done, protocol = stored_study()
    replayed = replay(done, protocol, PLAN, EVERY_CELL)
    record = SequentialRecord(PLAN, looks=list(replayed.looks["seeds"]), stopped="replayed")
    direct = verdicts(look_table(done, protocol, record, futility=False), record)
    assert {claim: verdict for claim, (verdict, _) in replayed.verdicts.items()} == {
        claim: verdict for claim, (verdict, _) in direct.items()}
    assert replayed.verdicts["frozen-beats-scratch"][0] == Verdict.SUPPORTED
    assert "so far" not in replayed.verdicts["shallow-equals-scratch"][1]  # every planned look was made
    seeds_used = replayed.looks["seeds"].iloc[-1]
    assert replayed.cells == (done["seed"] < seeds_used).sum()  # every arm and fraction at every seed
    assert replayed.cell_seconds == done.loc[done["seed"] < seeds_used, "train_seconds"].sum()


def test_targeted_looks_train_only_what_open_claims_read_and_reach_the_same_decided_verdicts():
    done, protocol = stored_study()
    by_design = {result.design.name: result for result in (replay(done, protocol, PLAN, d) for d in DESIGNS)}
    every, targeted = by_design[EVERY_CELL.name], by_design["targeted looks and futility"]
    assert targeted.cells < every.cells and targeted.cell_seconds < every.cell_seconds
    decided = {claim: verdict for claim, (verdict, _) in every.verdicts.items() if verdict != Verdict.INCONCLUSIVE}
    assert decided and all(targeted.verdicts[claim][0] == verdict for claim, verdict in decided.items())
    claims = {claim.id: claim for claim in protocol.claims}
    first_look_cells = 3 * 5 * 2  # the protocol's seeds train every arm at every fraction
    assert targeted.looks["cells"].iloc[0] == first_look_cells
    for row in targeted.looks.iloc[1:].itertuples():
        still_open = [claim for claim in row.open_before.split(", ") if claim]
        read = set().union(*(claim_reads(claims[claim], protocol) for claim in still_open))
        assert row.cells == 2 * len(read)  # two seeds added per look, each training only what the open claims read
