"""What `study compare` shows: the run's arms on the whole training split beside the published numbers for its
dataset (study.report.references)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd

from study.protocol.schema import Protocol
from study.store.results import ResultStore


@dataclass
class Comparison:
    """The rows to show, whether any is this run's, and the datasets with references when this one has none."""

    frame: pd.DataFrame
    ours: bool
    known: list[str] | None  # None: the dataset has published references


def published_comparison(protocol: Protocol, store: ResultStore, planned: Collection[str]) -> Comparison:
    """The run's arms at fraction 1 (mean ± sd over seeds of the planned cells) beside the published numbers for its
    dataset; without any, only the run's rows, without the columns that tell the two apart."""
    from study.analysis.summaries import finished_cells, summarize
    from study.report.references import REFERENCES, comparison, references_for

    done = finished_cells(store, planned)
    frame = comparison(protocol, summarize(done))
    ours = bool((frame["kind"] == "this run").any())
    if references_for(protocol):
        return Comparison(frame, ours, None)
    return Comparison(frame.drop(columns=["kind", "source"]), ours, sorted(REFERENCES))
