"""The library: a study opened from a protocol file, a dict or a `Protocol`, to plan, run and report, and whose
results read as DataFrames by the names the report uses.

    import study

    s = study.load("protocols/smoke.yaml", results_dir="results", report_dir="report")
    s.plan().table           # done, failed and pending cells per arm and fraction
    outcome = s.run()        # the options of `study run`
    s.claims()               # each claim's verdict, as the report's claims table
    s.cells()                # the finished cells, one row each
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from study.protocol.schema import Protocol, load_protocol, parse_protocol
from study.runner.events import RunEvents
from study.runner.inputs import PlannedStudy, open_study
from study.runner.options import RunOptions
from study.runner.printed import PrintedEvents, start_line

if TYPE_CHECKING:
    from study.runner.execute import RunOutcome
    from study.runner.inputs import Validation
    from study.runner.overview import StudyPlan


def load(protocol: str | Path | dict[str, Any] | Protocol, results_dir: str | Path = "results",
         report_dir: str | Path = "report", data_dir: str | Path | None = None, quiet: bool = False) -> Study:
    """A study of the protocol (a YAML file, a dict of its fields, or a `Protocol`), its results in
    results_dir/<name>, its report in report_dir/<name>; data_dir: the dataset folder (default $STUDY_DATA_DIR);
    quiet: tell nothing while running (otherwise progress and remarks print as on the command line)."""
    return Study(protocol, results_dir, report_dir, data_dir, quiet)


class Study:
    """A protocol planned against its results folder. Each call reads the store afresh, so a study opened before a
    run (here or in another process) sees its results."""

    def __init__(self, protocol: str | Path | dict[str, Any] | Protocol, results_dir: str | Path = "results",
                 report_dir: str | Path = "report", data_dir: str | Path | None = None, quiet: bool = False):
        if isinstance(protocol, dict):
            protocol = parse_protocol(yaml.safe_dump(protocol, sort_keys=False), "<dict>")
        self._source = protocol if isinstance(protocol, Protocol) else Path(protocol)
        self.protocol: Protocol = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
        self.results_dir, self.report_dir = Path(results_dir), Path(report_dir)
        self.data_dir = None if data_dir is None else str(data_dir)
        self.quiet = quiet

    def __repr__(self) -> str:
        return f"Study({self.protocol.name!r}, results in {self.results_dir / self.protocol.name})"

    def validate(self) -> Validation:
        """Check the protocol and, with a data directory (or a synthetic source), its data, as `study validate`."""
        from study.runner.inputs import validate

        return validate(self._source, self.data_dir)

    def plan(self, jobs: int | None = None) -> StudyPlan:
        """What is planned, done and to run, the block map, the cost spread over jobs workers, and whether the seeds
        can decide the claims, as `study plan` prints them."""
        from study.runner.overview import study_plan

        return study_plan(self._planned(), jobs)

    def status(self) -> pd.DataFrame:
        """Done, failed and pending cells per arm and fraction."""
        from study.runner.overview import study_status

        return study_status(self._planned(stored_fingerprint=True)).table

    def run(self, *, jobs: int | None = None, executor: str = "local", address: str | None = None,
            retry_failed: bool = False, wait: bool = False, until_decided: bool = False,
            max_seeds: int | None = None, seeds_per_round: int | None = None,
            keep_models: str | None = None, progress: bool = True) -> RunOutcome:
        """Run every cell the store lacks and build the report, with the options of `study run` (executor: local,
        dask or ray); the outcome holds the sweep's summary, the report's index.html and its tables by name (and
        report_error when the report folder cannot be written)."""
        from study.runner.execute import prepare_run, run_study

        planned = self._planned()
        options = RunOptions(jobs=jobs, executor=executor, address=address, retry_failed=retry_failed, wait=wait,
                             until_decided=until_decided, max_seeds=max_seeds, seeds_per_round=seeds_per_round,
                             keep_models=keep_models)
        start = prepare_run(planned, options)
        if not self.quiet:
            for line in start.share_warnings:
                print(line, file=sys.stderr)
            print(start_line(planned, start, executor))
        return run_study(planned, options, start, self._events(progress))

    def report(self) -> Path:
        """Rebuild the report from the stored results; its index.html."""
        from study.report.build import build_report

        planned = self._planned(stored_fingerprint=True, stored_first=True)
        return build_report(planned.protocol, planned.store, planned.report_dir, planned.planned_ids)[0]

    def cells(self) -> pd.DataFrame:
        """The finished cells the protocol plans, one row each (the report's cells.csv), with the `no_ranking`,
        `collapsed` and `degenerate` flags."""
        from study.analysis.summaries import finished_cells

        planned = self._planned(stored_fingerprint=True, stored_first=True)
        return finished_cells(planned.store, planned.planned_ids)

    def predictions(self) -> pd.DataFrame:
        """The per-image test predictions of every finished cell, each row with its cell's run_id, arm, fraction
        and seed."""
        planned = self._planned(stored_fingerprint=True, stored_first=True)
        frames = []
        for cell in self.cells().itertuples(index=False):
            frame = planned.store.predictions(cell.run_id)
            if frame is not None:
                frames.append(frame.assign(run_id=cell.run_id, arm=cell.arm, fraction=cell.fraction, seed=cell.seed))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table of the report by its name (the stem of its CSV file: answer, claims, summary_auc, pairwise,
        per_class, ...), computed from the stored results without writing anything."""
        from study.report.build import stored_document

        planned = self._planned(stored_fingerprint=True, stored_first=True)
        return stored_document(planned.protocol, planned.store, planned.planned_ids).frames()

    def claims(self) -> pd.DataFrame:
        """One row per claim: its id, own words, verdict, reason, effect with interval, p (the report's claims
        table; empty when nothing has finished)."""
        return self.tables().get("claims", pd.DataFrame())

    def _planned(self, stored_fingerprint: bool = False, stored_first: bool = False) -> PlannedStudy:
        return open_study(self._source, self.results_dir, self.report_dir, self.data_dir, self._events(False),
                          stored_fingerprint, stored_first)

    def _events(self, progress: bool) -> RunEvents:
        return RunEvents() if self.quiet else PrintedEvents(progress=progress)
