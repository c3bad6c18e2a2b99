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

import functools
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from study.core.errors import ProtocolError
from study.protocol.schema import Protocol, load_protocol, parse_protocol, protocol_yaml
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


def _in_memory_errors(method):
    """Protocol errors of a protocol built in Python without line numbers: its YAML is only the harness's copy."""

    @functools.wraps(method)
    def without_lines(self: Study, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ProtocolError as exc:
            if isinstance(self._source, Path):
                raise
            raise _without_lines(exc) from None

    return without_lines


_LINE = re.compile(r"^(<[^>]*>):\d+:")


def _without_lines(exc: ProtocolError) -> ProtocolError:
    """The error of a protocol whose YAML is only the harness's copy, its line number left out."""
    return ProtocolError(_LINE.sub(r"\1:", str(exc)))


class Study:
    """A protocol planned against its results folder. Each call reads the store (and a protocol file) afresh, so a
    study opened before a run, here or in another process, or before an edit of its file, sees them."""

    def __init__(self, protocol: str | Path | dict[str, Any] | Protocol, results_dir: str | Path = "results",
                 report_dir: str | Path = "report", data_dir: str | Path | None = None, quiet: bool = False):
        self._source = self._checked(protocol)
        self.results_dir, self.report_dir = Path(results_dir), Path(report_dir)
        self.data_dir = None if data_dir is None else str(data_dir)
        self.quiet = quiet

    @staticmethod
    def _checked(protocol: str | Path | dict[str, Any] | Protocol) -> Path | Protocol:
        """The protocol's source: a file (loaded to check it), or a protocol built in Python, validated (its errors
        without line numbers)."""
        if isinstance(protocol, (str, Path)):
            load_protocol(protocol)
            return Path(protocol)
        try:
            if isinstance(protocol, dict):
                return parse_protocol(yaml.safe_dump(_plain(protocol), sort_keys=False), "<dict>")
            return parse_protocol(protocol_yaml(protocol), f"<{protocol.name}>")
        except ProtocolError as exc:
            raise _without_lines(exc) from None

    @property
    def protocol(self) -> Protocol:
        """The protocol as it is now (a file is read again)."""
        return load_protocol(self._source) if isinstance(self._source, Path) else self._source

    def __repr__(self) -> str:
        return f"Study({self.protocol.name!r}, results in {self.results_dir / self.protocol.name})"

    @_in_memory_errors
    def validate(self) -> Validation:
        """Check the protocol and, with a data directory (or a synthetic source), its data, as `study validate`."""
        from study.runner.inputs import validate

        return validate(self._source, self.data_dir)

    @_in_memory_errors
    def plan(self, jobs: int | None = None) -> StudyPlan:
        """What is planned, done and to run, the block map, the cost spread over jobs workers, and whether the seeds
        can decide the claims, as `study plan` prints them."""
        from dataclasses import replace

        from study.runner.overview import study_plan

        plan = study_plan(self._planned(), jobs)
        return replace(plan, decidability=list(plan.decidability))

    @_in_memory_errors
    def status(self) -> pd.DataFrame:
        """Done, failed and pending cells per arm and fraction."""
        from study.runner.overview import study_status

        return study_status(self._planned(stored_fingerprint=True)).table

    @_in_memory_errors
    def run(self, *, jobs: int | None = None, executor: str = "local", address: str | None = None,
            retry_failed: bool = False, wait: bool = False, until_decided: bool = False,
            max_seeds: int | None = None, seeds_per_round: int | None = None,
            keep_models: str | None = None, progress: bool = True) -> RunOutcome:
        """Run every cell the store lacks and build the report, with the options of `study run` (executor: local,
        dask or ray); the outcome holds the sweep's summary, the report's index.html and its tables by name (and
        report_error when the report folder cannot be written)."""
        from study.runner.execute import run_study, start_run

        options = RunOptions(jobs=jobs, executor=executor, address=address, retry_failed=retry_failed, wait=wait,
                             until_decided=until_decided, max_seeds=max_seeds, seeds_per_round=seeds_per_round,
                             keep_models=keep_models)
        planned, start = start_run(self._planned, options)
        if not self.quiet:
            for line in start.share_warnings:
                print(line, file=sys.stderr)
            print(start_line(planned, start, executor))
        return run_study(planned, options, start, self._events(progress))

    @_in_memory_errors
    def report(self) -> Path:
        """Rebuild the report from the stored results; its index.html."""
        from study.report.build import build_report

        planned = self._planned(stored_fingerprint=True, stored_first=True)
        return build_report(planned.protocol, planned.store, planned.report_dir, planned.planned_ids)[0]

    @_in_memory_errors
    def cells(self) -> pd.DataFrame:
        """The finished cells the protocol plans, one row each (the report's cells.csv), with the `no_ranking`,
        `collapsed` and `degenerate` flags."""
        from study.analysis.summaries import finished_cells

        planned = self._planned(stored_fingerprint=True, stored_first=True)
        return finished_cells(planned.store, planned.planned_ids)

    @_in_memory_errors
    def predictions(self) -> pd.DataFrame:
        """The per-image test predictions of every finished cell, each row with its cell's run_id, arm, fraction
        and seed."""
        from study.analysis.summaries import finished_cells

        planned = self._planned(stored_fingerprint=True, stored_first=True)
        frames = []
        for cell in finished_cells(planned.store, planned.planned_ids).itertuples(index=False):
            frame = planned.store.predictions(cell.run_id)
            if frame is not None:
                frames.append(frame.assign(run_id=cell.run_id, arm=cell.arm, fraction=cell.fraction, seed=cell.seed))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @_in_memory_errors
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


def _plain(value: Any) -> Any:
    """A dict's values as YAML writes them: NumPy scalars and arrays as Python numbers and lists, paths as text."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "tolist"):  # a NumPy scalar or array
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
