"""The commands behind the CLI: each loads what it needs, calls the library, prints the outcome."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from study.core.errors import StudyError
from study.plan.cells import Cell, plan_cells, plan_units
from study.plan.tuning import TuningUnit
from study.protocol.schema import Protocol, load_protocol
from study.store.results import ResultStore
from study.store.tuning import current_choices

if TYPE_CHECKING:
    import numpy as np

    from study.data.dataset import Dataset


@dataclass
class Session:
    """A loaded protocol with its data location, store and planned cells."""

    protocol: Protocol
    protocol_path: Path
    data_dir: Path | None
    store: ResultStore
    cells: list[Cell]
    report_dir: Path
    fingerprint: str  # the dataset's, as run ids hash it
    units: list[TuningUnit] = field(default_factory=list)  # the searches of a tuned protocol


def _open(args: argparse.Namespace, stored_fingerprint: bool = False) -> Session:
    """The session of a command; with stored_fingerprint, a dataset that cannot be read here is identified by the
    fingerprint the last run stored (dataset.json)."""
    from study.data.sources import resolve_data_dir

    protocol = load_protocol(args.protocol)
    data_dir = resolve_data_dir(args.data_dir)
    store = ResultStore(args.results_dir, protocol.name)
    fingerprint = _fingerprint(protocol, data_dir, store if stored_fingerprint else None)
    protocol = _with_added_seeds(protocol, store)
    cells = plan_cells(protocol, fingerprint, current_choices(store.tuning_records(), protocol))
    return Session(protocol, args.protocol, data_dir, store, cells, args.report_dir / protocol.name, fingerprint,
                   plan_units(protocol, fingerprint))


def _fingerprint(protocol: Protocol, data_dir: Path | None, store: ResultStore | None) -> str:
    """The dataset's fingerprint (what run ids hash), read from the data; when the data cannot be read and a store is
    given, the one its last run stored, said in one line."""
    from study.core.errors import DataError
    from study.data.sources import source_fingerprint

    try:
        return source_fingerprint(protocol.dataset, data_dir)
    except DataError as exc:
        stored = None if store is None else (store.dataset_info() or {}).get("fingerprint")
        if stored is None:
            raise
        print(f"note: the dataset cannot be read here ({exc}); run ids use the fingerprint the last run stored in "
              f"{store.root / 'dataset.json'}", file=sys.stderr)
        return stored


def _with_added_seeds(protocol: Protocol, store: ResultStore) -> Protocol:
    """The protocol with the seeds a run with --until-decided has added to its store (as it is without one)."""
    from study.analysis.sequential import record_for, with_seeds

    record = record_for(protocol, store.sequential())
    return with_seeds(protocol, record.plan.seeds(record.seeds_run)) if record and record.seeds_run else protocol


def _replan(session: Session, protocol: Protocol) -> None:
    """Plan the session's cells again for a protocol with other seeds."""
    session.protocol = protocol
    session.cells = plan_cells(protocol, session.fingerprint, current_choices(session.store.tuning_records(), protocol))


def _print_tuning(session: Session) -> None:
    """Tuning progress of a tuned protocol (nothing without tuning:)."""
    if session.protocol.tuning is None:
        return
    from study.tuning.phase import tuning_lines

    for line in tuning_lines(session.protocol, session.store, session.units):
        print(line)


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a protocol without running it; with a data directory (or a synthetic source), also its data, as plan
    does."""
    from study.analysis.decidability import capacity_lines
    from study.data.sources import ENV_VAR, resolve_data_dir

    protocol = load_protocol(args.protocol)
    data_dir = resolve_data_dir(args.data_dir)
    if data_dir is None and protocol.dataset.source != "synthetic":
        print(f"{args.protocol}: valid protocol {protocol.name!r}; data checks skipped: no data directory "
              f"(--data-dir DIR or ${ENV_VAR})")
    else:
        data = _checked_dataset(protocol, args.protocol, data_dir, cache_dir=None)
        dataset = data.dataset
        print(f"{args.protocol}: valid protocol {protocol.name!r}; data checked: {len(dataset)} images, "
              f"{dataset.n_classes} classes, every fraction draws from every class of every seed's training split")
    for line in capacity_lines(protocol):
        print(line)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    """Describe the dataset sources."""
    from study.data.sources import describe_sources

    print(describe_sources())
    return 0


def _state_table(session: Session, statuses: dict[str, str]) -> pd.DataFrame:
    rows = [
        {
            "arm": cell.arm.label,
            "fraction": cell.fraction,
            "state": statuses.get(cell.run_id, "pending"),
        }
        for cell in session.cells
    ]
    table = pd.crosstab([pd.Series([r["arm"] for r in rows], name="arm"), pd.Series([r["fraction"] for r in rows], name="fraction")],
                        pd.Series([r["state"] for r in rows], name="state"))
    for state in ("done", "failed", "pending"):
        if state not in table:
            table[state] = 0
    order = list(dict.fromkeys(cell.arm.label for cell in session.cells))
    table = table[["done", "failed", "pending"]].reset_index()
    table["arm"] = pd.Categorical(table["arm"], categories=order, ordered=True)
    return table.sort_values(["arm", "fraction"]).reset_index(drop=True)


def cmd_status(args: argparse.Namespace) -> int:
    """Done, failed and pending cells per arm and fraction; errors of failed cells."""
    from study.run.lock import RunLock

    session = _open(args, stored_fingerprint=True)
    statuses = session.store.statuses()
    table = _state_table(session, statuses)
    print(f"{session.protocol.name}: {len(session.cells)} cells in {session.store.root}")
    holder = RunLock(session.store.root).held_elsewhere()
    if holder:
        print(f"a run is writing these results now ({holder})")
    _print_tuning(session)
    print(table.to_string(index=False))
    print(f"total: {table['done'].sum()} done, {table['failed'].sum()} failed, {table['pending'].sum()} pending")
    planned = [cell.run_id for cell in session.cells]
    stale = set(statuses) - set(planned)
    if stale:
        print(f"{len(stale)} stored results belong to an earlier version of this protocol (kept, not shown above; "
              "`study prune` deletes them)")
    for run_id in planned:
        row = session.store.row(run_id) if statuses.get(run_id) == "failed" else None
        if row is not None:
            kind = f" [{row['failure']}, {row['attempts']:g} attempt(s)]" if row.get("failure") else ""
            print(f"failed: {row['arm']} fraction={row['fraction']:g} seed={row['seed']}: {row['error']}{kind}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """The cells, what is done, and the backbone's block map."""
    from study.protocol.blocks import backbone_info

    session = _open(args)
    data = _checked_dataset(session.protocol, session.protocol_path, session.data_dir, args.results_dir / ".cache")
    protocol = session.protocol
    info = backbone_info(protocol.backbone.name)
    print(f"protocol {protocol.name}: {len(session.cells)} cells = {len(protocol.fractions)} fractions x "
          f"{len(protocol.seed_list())} seeds x {len(session.cells) // (len(protocol.fractions) * len(protocol.seed_list()))} arms")
    print(f"block map of {info.name} (at: k keeps blocks 0..k; depth: d trains the top d blocks):")
    for index, block in enumerate(info.blocks):
        print(f"  {index:>2}  {block.name:<12} ends at layer {block.last_layer}")
    _print_tuning(session)
    statuses = session.store.statuses()
    table = _state_table(session, statuses)
    print(table.to_string(index=False))
    todo = int(table["pending"].sum())
    print(f"to run: {todo} cells, each up to {protocol.train.epochs} epochs (early stopping may end them sooner)")
    _print_cost(session, data, statuses, args.results_dir, _jobs(args, protocol))
    _print_decidability(session)
    return 0


def _jobs(args: argparse.Namespace, protocol: Protocol) -> int:
    """--jobs, else one worker per train.threads cores."""
    from study.execution.local import available_cores

    return args.jobs or max(1, available_cores() // protocol.train.threads)


def _print_cost(session: Session, data: CheckedData, statuses: dict[str, str], results_dir: Path, jobs: int) -> None:
    """n_train per fraction (with a warning for a grouped fraction far off its share) and the estimated time of
    each arm's cells and of all of them, against jobs workers."""
    from study.run import cost

    sizes = cost.subsets(data.dataset, data.splits, session.protocol)
    pending = {cell.run_id for cell in session.cells if cell.run_id not in statuses}
    arms = cost.arm_costs(session.cells, sizes, cost.stored_seconds(results_dir), pending)
    for line in [*cost.subset_lines(sizes, session.protocol.fractions), *cost.share_warnings(sizes),
                 *cost.cost_lines(arms, jobs)]:
        print(line)
    if session.units:
        print(f"not in this estimate: tuning {len(session.units)} arm(s) first, {session.protocol.tuning.trials} "
              "trials each, a trial costing about one cell at the fraction tuned at")


def _print_decidability(session: Session) -> None:
    """Per claim: whether the seeds can decide it, and with a stored pilot, the seeds it needs."""
    from study.analysis.claims import evaluate_claims
    from study.analysis.decidability import capacity_lines, pilot_lines
    from study.analysis.summaries import flagged, newest_per_key

    protocol = session.protocol
    for line in capacity_lines(protocol):
        print(line)
    done, _ = newest_per_key(flagged(session.store.cells()))
    if protocol.claims and not done.empty:
        summary, _ = evaluate_claims(done, protocol.claims, protocol.report, protocol.fractions)
        print(f"from the {len(done)} stored cells (a pilot):")
        for line in pilot_lines(summary, protocol):
            print(f"  {line}")


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the report from the stored results."""
    protocol = load_protocol(args.protocol)
    store = ResultStore(args.results_dir, protocol.name)
    paths = _build_report(protocol, store, args.report_dir / protocol.name)
    print(f"report written to {paths[0].parent} (open {paths[0]})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the run's arms at fraction 1 (mean ± sd over seeds), beside the published numbers for its dataset where
    there are some."""
    from study.analysis.summaries import flagged, newest_per_key, summarize
    from study.report.references import REFERENCES, comparison, references_for

    protocol = load_protocol(args.protocol)
    done, _ = newest_per_key(flagged(ResultStore(args.results_dir, protocol.name).cells()))
    frame = comparison(protocol, summarize(done))
    ours = bool((frame["kind"] == "this run").any())
    if not references_for(protocol):
        dataset = getattr(protocol.dataset, "name", None) or protocol.dataset.source
        print(f"no published reference numbers for {dataset}; known datasets: {', '.join(sorted(REFERENCES))}")
        frame = frame.drop(columns=["kind", "source"])
    if len(frame):
        print(frame.to_string(index=False))
    if not ours:
        print(f"(no finished cells at fraction 1 in {args.results_dir / protocol.name})")
    return 0


def _build_report(protocol: Protocol, store: ResultStore, out_dir: Path) -> list[Path]:
    """The report's files, index.html first (study.report.build never imports TensorFlow)."""
    from study.report.build import build_report

    return build_report(protocol, store, out_dir)


def features_path(store: ResultStore, protocol: Protocol) -> Path:
    """Where the run stores the pooled frozen-backbone features of every image, for the report's map."""
    return store.root / "features" / f"{protocol.backbone.name}-{protocol.dataset.size}px.npz"


def _export_features(session: Session, context, jobs: int, cluster=None) -> None:
    """Store the pretrained backbone's features once per protocol (no pretrained weights, no map).

    A worker computes them; this process writes them, as it writes every result."""
    from study.execution.local import run_task
    from study.training.worker import feature_map, write_feature_map

    protocol = session.protocol
    path = features_path(session.store, protocol)
    if protocol.backbone.weights == "none" or path.exists():
        return
    settings = {"dataset": protocol.dataset.model_dump(exclude={"path"}), "backbone": protocol.backbone.model_dump()}
    try:
        write_feature_map(path, run_task(feature_map, context, settings, jobs=jobs, cluster=cluster))
    except Exception as exc:  # the map is an extra: the sweep's results stand without it
        print(f"note: no feature map for the report ({type(exc).__name__}: {exc})", file=sys.stderr)


@dataclass
class CheckedData:
    """The protocol's dataset with its fixed split, the split of each seed that trains, and whether the source came
    with a split of its own."""

    dataset: Dataset
    splits: dict[int | None, np.ndarray]  # seed -> split; the one key None for the fixed split
    official: bool


def _split_seeds(protocol: Protocol) -> list[int | None]:
    """The seeds whose splits cells (and tuning trials) train on: every seed with dataset.resplit, else None alone."""
    if not protocol.dataset.resplit:
        return [None]
    tuning = [protocol.tuning.seed] if protocol.tuning is not None else []
    return sorted(set(protocol.seed_list()) | set(tuning))


def _checked_dataset(protocol: Protocol, protocol_path: Path, data_dir: Path | None,
                     cache_dir: Path | None) -> CheckedData:
    """The protocol's dataset, split, after checking that every fraction can draw from every class of every
    seed's training split (decoded images cached in cache_dir, when given)."""
    from study.data.sources import load_dataset
    from study.data.splits import ensure_split, fraction_shortfall, seed_split
    from study.protocol.schema import field_error, resplit_refusal

    spec = protocol.dataset
    loaded = load_dataset(spec, data_dir, cache_dir)
    if spec.resplit and loaded.split is not None:
        raise field_error(protocol_path, ("dataset", "resplit"), resplit_refusal("train/val/test folders"))
    dataset = ensure_split(loaded, spec)
    splits = {seed: seed_split(dataset, spec, seed).split for seed in _split_seeds(protocol)}
    for seed, split in splits.items():
        problem = fraction_shortfall(dataset.labels[split == "train"], dataset.class_names, protocol.fractions)
        if problem:
            where = "" if seed is None else f"in seed {seed}'s split (dataset.resplit), "
            raise field_error(protocol_path, ("fractions",), where + problem)
    return CheckedData(dataset, splits, official=loaded.split is not None)


def _split_rows(dataset: Dataset, splits: dict[int | None, np.ndarray]) -> pd.DataFrame:
    """split.parquet's rows: one block per seed (seed null for the fixed split), each image with its group."""
    groups = [None] * len(dataset) if dataset.groups is None else dataset.groups.astype(str)
    return pd.concat([pd.DataFrame({
        "seed": pd.array([seed] * len(dataset), dtype="Int64"),
        "image_id": dataset.ids.astype(str),
        "label": dataset.labels,
        "group": pd.array(groups, dtype=object),
        "split": split.astype(str),
    }) for seed, split in splits.items()], ignore_index=True)


def _store_inputs(session: Session, data: CheckedData) -> None:
    """The split of each seed, the dataset's skipped files and the protocol, stored beside the cells."""
    store = session.store
    dataset = data.dataset
    store.put_split(_split_rows(dataset, data.splits))
    store.put_dataset_info({"fingerprint": dataset.fingerprint, "images": len(dataset),
                            "official_split": data.official, "source_file": dataset.source_file,
                            "skipped_files": len(dataset.skipped), "skipped": list(dataset.skipped)})
    store.put_protocol(Path(session.protocol_path).read_text())
    if dataset.skipped:
        print(f"note: skipped {len(dataset.skipped)} unreadable or missing image files (dataset.on_bad_file: skip); "
              f"listed in {store.root / 'dataset.json'}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    """Run every cell the store lacks, store each result as it finishes, then build the report."""
    from study.execution.scheduler import cells_to_run
    from study.run.cost import share_warnings, subsets

    session = _open(args)
    if args.address is not None and args.executor == "local":
        raise StudyError("--address needs --executor dask or --executor ray")
    if not args.until_decided and (args.max_seeds or args.seeds_per_round):
        raise StudyError("--max-seeds and --seeds-per-round need --until-decided")
    jobs = _jobs(args, session.protocol)
    data = _checked_dataset(session.protocol, session.protocol_path, session.data_dir, args.results_dir / ".cache")
    for line in share_warnings(subsets(data.dataset, data.splits, session.protocol)):
        print(line, file=sys.stderr)
    todo = cells_to_run(session.cells, session.store, args.retry_failed)
    where = f"with {jobs} worker(s)" if args.executor == "local" else f"on {args.executor}"
    print(f"{session.protocol.name}: {len(session.cells)} cells, {len(session.cells) - len(todo)} stored, "
          f"{len(todo)} to run {where}")
    if args.dry_run:
        if session.units:
            print(f"would first tune {len(session.units)} arm(s), {session.protocol.tuning.trials} trials each; cells "
                  "awaiting tuning are listed with the protocol's values and get new run ids once tuned")
        for cell in todo:
            print(f"  would run {cell.describe()}  [{cell.run_id}]")
        if args.until_decided:
            plan = _sequential_plan(load_protocol(args.protocol), args)
            print(f"then, until every claim is decided, looks at {', '.join(map(str, plan.counts()))} seeds "
                  f"({plan.method})")
        return 0
    with _cluster(args, len(todo), session.protocol.train.threads) as cluster:
        if cluster is not None:
            print(f"running on {cluster.describe()}", flush=True)
        if args.until_decided:
            summary, elapsed = _sweep_until_decided(session, args, data, jobs, cluster)
        else:
            summary, elapsed = _sweep(session, args, data, jobs, cluster)
    return _finish(session, summary, elapsed)


def _sweep_until_decided(session: Session, args: argparse.Namespace, data: CheckedData, jobs: int, cluster):
    """Sweep the protocol's seeds, test the claims, add seeds look by look until every claim is decided or the
    last planned look is made (study.analysis.sequential); each look is recorded in the store as it is made."""
    from dataclasses import replace

    from study.analysis.sequential import (
        EVERY_CLAIM_DECIDED,
        LAST_LOOK_MADE,
        SequentialRecord,
        look_table,
        undecided,
        with_seeds,
    )
    from study.analysis.summaries import flagged, newest_per_key

    protocol = load_protocol(args.protocol)
    record = SequentialRecord(_sequential_plan(protocol, args))
    counts = record.plan.counts()
    print(f"until decided: looks planned at {', '.join(map(str, counts))} seeds ({record.plan.method})", flush=True)
    elapsed, trained, retries = 0.0, 0, 0
    for count in counts:
        record.seeds_run = count
        session.store.put_sequential(record.to_dict())
        _replan(session, with_seeds(protocol, record.plan.seeds(count)))
        if protocol.dataset.resplit:  # the added seeds' own splits, checked and stored like the protocol's
            data = _checked_dataset(session.protocol, session.protocol_path, session.data_dir,
                                    args.results_dir / ".cache")
        summary, seconds = _sweep(session, args, data, jobs, cluster)
        elapsed, trained, retries = elapsed + seconds, trained + summary.done, retries + summary.retries
        summary = replace(summary, done=trained, retries=retries, skipped=summary.total - trained - summary.failed)
        if summary.stopped or summary.failed:
            return summary, elapsed
        record.looks.append(count)
        done, _ = newest_per_key(flagged(session.store.cells()))
        open_claims = undecided(look_table(done, protocol, record))
        print(f"look {len(record.looks)} of {len(counts)} at {count} seeds: "
              + (f"undecided: {', '.join(open_claims)}" if open_claims else "every claim decided"), flush=True)
        if not open_claims:
            record.stopped = EVERY_CLAIM_DECIDED
            break
    else:
        record.stopped = LAST_LOOK_MADE
    session.store.put_sequential(record.to_dict())
    return summary, elapsed


def _sequential_plan(protocol: Protocol, args: argparse.Namespace):
    """The looks of --until-decided, checked against the protocol."""
    from study.analysis.sequential import SequentialPlan

    if not protocol.claims:
        raise StudyError(f"{args.protocol}: --until-decided needs claims to decide, and the protocol has none")
    given = {"max_seeds": args.max_seeds, "seeds_per_round": args.seeds_per_round}
    try:
        return SequentialPlan(protocol.seed_list(), **{name: value for name, value in given.items() if value})
    except ValueError as exc:
        raise StudyError(str(exc)) from None


def _cluster(args: argparse.Namespace, cells: int, threads: int):
    """The Dask or Ray cluster the run uses (connected before the results are touched), or None for local."""
    from contextlib import nullcontext

    if args.executor == "local":
        return nullcontext(None)
    from study.execution.connect import open_cluster

    return open_cluster(args.executor, args.address, args.jobs, cells, threads)


def _sweep(session: Session, args: argparse.Namespace, data: CheckedData, jobs: int, cluster):
    """Under the run lock: store the inputs, run the sweep, export the feature map; the summary and seconds."""
    from study.execution.scheduler import cells_to_run, run_sweep
    from study.run.lock import RunLock
    from study.run.progress import SweepProgress
    from study.run.reuse import adopt_finished_cells
    from study.training.features import cached_blocks
    from study.training.worker import WorkerContext

    store = session.store
    lock = RunLock(store.root)
    lock.acquire(wait=args.wait, on_wait=lambda holder: print(
        f"waiting: another `study run` is writing {store.root} ({holder})", file=sys.stderr, flush=True))
    try:
        store.remove_temporary()
        rewritten = store.conform_files()
        if rewritten:
            print(f"{rewritten} stored files written before the store's schema rewritten in it (values unchanged)")
        _store_inputs(session, data)
        adopted = adopt_finished_cells(session.cells, store)
        if adopted:
            print(f"{adopted} cells copied from other protocols' stores in {args.results_dir} (same run ids: "
                  "the same settings, data and seeds)")
        todo = cells_to_run(session.cells, store, args.retry_failed)  # a run we waited for may have stored some
        context = WorkerContext(  # absolute paths: cluster workers need not share this process's directory
            dataset=session.protocol.dataset.model_dump(),
            data_dir=str(session.data_dir.absolute()) if session.data_dir else None,
            cache_dir=str((args.results_dir / ".cache").absolute()),
            threads=session.protocol.train.threads,
            fingerprint=data.dataset.fingerprint,
            cached_blocks=cached_blocks(session.cells),
            log_dir=str(store.logs_dir.absolute()),
        )
        if session.units:
            session.cells = _tune(session, context, jobs, cluster)
            todo = cells_to_run(session.cells, store, args.retry_failed)
        extra = {"skipped_files": len(data.dataset.skipped), "source_file": data.dataset.source_file}
        started = time.perf_counter()
        with SweepProgress(total=len(session.cells), done=len(session.cells) - len(todo), enabled=not args.no_progress) as progress:
            summary = run_sweep(session.cells, store, context, jobs, args.retry_failed, on_result=progress.update,
                                policy=session.protocol.run, extra=extra, cluster=cluster)
        elapsed = time.perf_counter() - started
        if not summary.stopped:
            _export_features(session, context, jobs, cluster)
    finally:
        lock.release()
    return summary, elapsed


def _tune(session: Session, context, jobs: int, cluster=None) -> list[Cell]:
    """Run the tuning phase (validation split only, on the cluster when one is given); the cells planned with the
    chosen values."""
    from study.tuning.phase import run_tuning

    def report(unit: TuningUnit, outcome) -> None:
        value = "-" if outcome.value is None else f"{outcome.value:.3f}"
        print(f"[tuning] {unit.label} fraction={unit.fraction:g} trial {outcome.number}: {outcome.state} "
              f"{session.protocol.tuning_metric()}={value} ({outcome.seconds:.0f} s)", file=sys.stderr, flush=True)

    choices = run_tuning(session.protocol, session.store, session.units, context, jobs, on_trial=report,
                         cluster=cluster)
    cells = plan_cells(session.protocol, session.fingerprint, choices)
    awaiting = [cell.describe() for cell in cells if cell.awaiting_tuning]
    if awaiting:
        raise RuntimeError(f"internal error: cells without tuned values after tuning: {awaiting[:3]}")
    return cells


def _finish(session: Session, summary, elapsed: float) -> int:
    """Print the sweep's outcome, build the report unless the sweep stopped; the exit code."""
    where = f"results in {session.store.root}"
    if not summary.stopped:
        paths = _build_report(session.protocol, session.store, session.report_dir)
        where += f", report in {paths[0].parent}"
    print(f"{summary.line(elapsed)}; {where}")
    for error in summary.errors:
        print(f"failed: {error}", file=sys.stderr)
    if summary.stopped:
        print(f"error: the sweep stopped: {summary.stopped}", file=sys.stderr)
        return 1
    if summary.failed:
        print("run again with --retry-failed to retry the failed cells", file=sys.stderr)
        return 1
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete stored results that no longer belong to the protocol; lists them unless --yes is given."""
    from study.run.lock import RunLock

    session = _open(args)
    planned = {cell.run_id for cell in session.cells}
    stored = session.store.cells()
    stale = stored[~stored["run_id"].isin(planned)]
    if stale.empty:
        print(f"{session.protocol.name}: every stored result belongs to the protocol; nothing to prune")
        return 0
    if not args.yes:
        for _, row in stale.iterrows():
            print(f"  stale: {row.get('arm')} fraction={row.get('fraction')} seed={row.get('seed')}  [{row['run_id']}]")
        print(f"{len(stale)} stored results no longer belong to {session.protocol.name}; nothing deleted (add --yes "
              "to delete them)")
        return 0
    lock = RunLock(session.store.root)
    lock.acquire()
    try:
        session.store.remove(list(stale["run_id"]))
    finally:
        lock.release()
    print(f"deleted {len(stale)} stored results that no longer belong to {session.protocol.name}")
    return 0
