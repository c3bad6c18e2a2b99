"""The commands behind the CLI: each turns its arguments into one library call and prints the outcome."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from collections.abc import Iterable

from study.core.errors import StudyError
from study.runner.inputs import PlannedStudy, open_study
from study.runner.options import RunOptions
from study.runner.printed import PrintedEvents, start_line


def _open(args: argparse.Namespace, stored_fingerprint: bool = False, stored_first: bool = False) -> PlannedStudy:
    """The planned study of a command's arguments."""
    return open_study(args.protocol, args.results_dir, args.report_dir, args.data_dir, PrintedEvents(),
                      stored_fingerprint, stored_first)


def _print_lines(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a protocol without running it; with a data directory (or a synthetic source), also its data, as plan
    does."""
    from study.analysis.decidability import capacity_lines
    from study.data.sources import ENV_VAR
    from study.runner.inputs import validate

    checked = validate(args.protocol, args.data_dir)
    name, dataset = checked.protocol.name, checked.dataset
    if dataset is None:
        print(f"{args.protocol}: valid protocol {name!r}; data checks skipped: no data directory "
              f"(--data-dir DIR or ${ENV_VAR})")
    else:
        print(f"{args.protocol}: valid protocol {name!r}; data checked: {len(dataset)} images, "
              f"{dataset.n_classes} classes, every fraction draws from every class of every seed's training split")
    _print_lines(capacity_lines(checked.protocol))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    """Describe the dataset sources."""
    from study.data.sources import describe_sources

    print(describe_sources())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Done, failed and pending cells per arm and fraction; errors of failed cells."""
    from study.runner.overview import OTHER_VERSIONS, study_status

    planned = _open(args, stored_fingerprint=True)
    status = study_status(planned)
    table = status.table
    print(f"{planned.protocol.name}: {len(planned.cells)} cells in {planned.store.root}")
    if status.holder:
        print(f"a run is writing these results now ({status.holder})")
    _print_lines(status.tuning)
    print(table.to_string(index=False))
    print(f"total: {table['done'].sum()} done, {table['failed'].sum()} failed, {table['pending'].sum()} pending")
    if planned.record is not None and planned.record.targets:
        print("seeds added by --until-decided train only the cells that the claims still open read: the done "
              "column counts each arm and fraction's seeds")
    if status.stale:
        print(OTHER_VERSIONS.format(status.stale))
    for row in status.failed:
        kind = f" [{row['failure']}, {row['attempts']:g} attempt(s)]" if row.get("failure") else ""
        print(f"failed: {row['arm']} fraction={row['fraction']:g} seed={row['seed']}: {row['error']}{kind}")
    return 0


def _print_grid(planned: PlannedStudy) -> None:
    """The size of the planned grid."""
    protocol, cells = planned.protocol, len(planned.cells)
    fractions, seeds = len(protocol.fractions), len(protocol.seed_list())
    print(f"protocol {protocol.name}: {cells} cells = {fractions} fractions x {seeds} seeds x "
          f"{cells // (fractions * seeds)} arms")


def _print_cost(planned: PlannedStudy, plan) -> None:
    """What the pending cells cost, and whether the seeds can decide each claim."""
    print(f"to run: {plan.to_run} cells, each up to {planned.protocol.train.epochs} epochs (early stopping may end "
          "them sooner)")
    _print_lines(plan.cost)
    _print_lines(plan.decidability)


def cmd_plan(args: argparse.Namespace) -> int:
    """The cells, what is done, and the backbone's block map."""
    from study.runner.overview import study_plan

    planned = _open(args)
    plan = study_plan(planned, args.jobs)
    _print_grid(planned)
    print(f"block map of {plan.block_map.name} (at: k keeps blocks 0..k; depth: d trains the top d blocks):")
    for index, block in enumerate(plan.block_map.blocks):
        print(f"  {index:>2}  {block.name:<12} ends at layer {block.last_layer}")
    _print_lines(plan.tuning)
    print(plan.table.to_string(index=False))
    _print_cost(planned, plan)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Write a commented protocol for a dataset; print its cost, whether its claims can be decided, and what to type
    next."""
    from study.core.atomic_files import write_atomic
    from study.data.sources import resolve_data_dir
    from study.runner.overview import study_plan
    from study.runner.scaffold import write_protocol

    out = args.out
    if out.exists() and not args.force:
        raise StudyError(f"{out} exists; add --force to overwrite it, or name another file with --out")
    written = write_protocol(args.data, resolve_data_dir(args.data_dir), args.results_dir / ".cache")
    try:
        write_atomic(out, written.text.encode())
    except OSError as exc:
        raise StudyError(f"cannot write {out}: {exc.strerror or exc}") from None
    for warning in written.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{out}: protocol {written.protocol.name!r} for the {written.found} ({written.facts})")
    planned = open_study(out, args.results_dir, Path("report"), args.data_dir, PrintedEvents())
    plan = study_plan(planned, None)
    _print_grid(planned)
    _print_cost(planned, plan)
    flags = "" if args.data_dir is None else f" --data-dir {args.data_dir}"
    print(f"next: study run {out}{flags}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the report of the protocol's own cells from the stored results."""
    from study.report.build import build_report
    from study.runner.overview import OTHER_VERSIONS, other_versions

    planned = _open(args, stored_fingerprint=True, stored_first=True)
    paths = build_report(planned.protocol, planned.store, planned.report_dir, planned.planned_ids)
    print(f"report written to {paths[0].parent} (open {paths[0]})")
    if others := other_versions(planned):
        print(OTHER_VERSIONS.format(others))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the run's arms at fraction 1 (mean ± sd over seeds), beside the published numbers for its dataset where
    there are some."""
    from study.protocol.schema import load_protocol
    from study.report.comparison import published_comparison
    from study.store.results import ResultStore

    protocol = load_protocol(args.protocol)
    store = ResultStore(args.results_dir, protocol.name)
    planned = _open(args, stored_fingerprint=True, stored_first=True).planned_ids if store.statuses() else []
    compared = published_comparison(protocol, store, planned)  # an empty store needs no data to plan against
    if compared.known is not None:
        dataset = getattr(protocol.dataset, "name", None) or protocol.dataset.source
        print(f"no published reference numbers for {dataset}; known datasets: {', '.join(compared.known)}")
    if len(compared.frame):
        print(compared.frame.to_string(index=False))
    if not compared.ours:
        print(f"(no finished cells at fraction 1 in {args.results_dir / protocol.name})")
    return 0


def _run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(jobs=args.jobs, executor=args.executor, address=args.address, retry_failed=args.retry_failed,
                      wait=args.wait, until_decided=args.until_decided, max_seeds=args.max_seeds,
                      seeds_per_round=args.seeds_per_round, keep_models=args.keep_models)


def cmd_run(args: argparse.Namespace) -> int:
    """Run every cell the store lacks, store each result as it finishes, then build the report."""
    from study.runner.execute import looks, run_study, start_run

    options = _run_options(args)
    planned, start = start_run(lambda: _open(args), options, args.dry_run)
    for line in start.share_warnings:
        print(line, file=sys.stderr)
    print(start_line(planned, start, args.executor))
    if args.dry_run:
        if planned.units:
            print(f"would first tune {len(planned.units)} arm(s), {planned.protocol.tuning_spec().trials} trials "
                  "each; cells awaiting tuning are listed with the protocol's values and get new run ids once tuned")
        for cell in start.todo:
            print(f"  would run {cell.describe()}  [{cell.run_id}]")
        plan = looks(planned, options)
        if plan is not None:
            print(f"then, until every claim is decided, looks at {', '.join(map(str, plan.counts()))} seeds "
                  f"({plan.method})")
        return 0
    outcome = run_study(planned, options, start, PrintedEvents(progress=not args.no_progress))
    summary = outcome.summary
    print(f"{summary.line(outcome.seconds)}; results in {planned.store.root}")
    _print_lines(outcome.claim_lines())
    if outcome.report is not None:
        print(f"report: {outcome.report}")
    for error in summary.errors:
        print(f"failed: {error}", file=sys.stderr)
    if outcome.report_error is not None:
        print(f"error: {outcome.report_error}", file=sys.stderr)
    if summary.stopped:
        print(f"error: the sweep stopped: {summary.stopped}", file=sys.stderr)
        return 1
    if summary.failed:
        print("run again with --retry-failed to retry the failed cells", file=sys.stderr)
        return 1
    return 0 if outcome.report_error is None else 1


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete stored results that no longer belong to the protocol; lists them unless --yes is given."""
    from study.runner.prune import remove_results, stale_results

    planned = _open(args)
    name = planned.protocol.name
    stale = stale_results(planned)
    if stale.empty:
        print(f"{name}: every stored result belongs to the protocol; nothing to prune")
        return 0
    if not args.yes:
        for _, row in stale.iterrows():
            print(f"  stale: {row.get('arm')} fraction={row.get('fraction')} seed={row.get('seed')}  [{row['run_id']}]")
        print(f"{len(stale)} stored results no longer belong to {name}; nothing deleted (add --yes to delete them)")
        return 0
    remove_results(planned, list(stale["run_id"]))
    print(f"deleted {len(stale)} stored results that no longer belong to {name}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Apply a kept model to a folder of images; per image the class probabilities and the predicted class, as CSV."""
    from study.core.atomic_files import write_atomic
    from study.runner.predict import predict_images

    frame = predict_images(args.model, args.images)
    if args.out is None:
        frame.to_csv(sys.stdout, index=False)
        return 0
    try:
        write_atomic(args.out, frame.to_csv(index=False).encode())
    except OSError as exc:
        raise StudyError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"{len(frame)} images predicted; written to {args.out}")
    return 0
