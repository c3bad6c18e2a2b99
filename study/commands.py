"""The commands behind the CLI: each loads what it needs, calls the library, prints the outcome."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from study.plan import Cell, plan_cells
from study.protocol import Protocol, load_protocol
from study.store import ResultStore


@dataclass
class Session:
    """A loaded protocol with its data location, store and planned cells."""

    protocol: Protocol
    protocol_path: Path
    data_dir: Path | None
    store: ResultStore
    cells: list[Cell]
    report_dir: Path


def _open(args: argparse.Namespace) -> Session:
    from study.data.sources import resolve_data_dir, source_fingerprint

    protocol = load_protocol(args.protocol)
    data_dir = resolve_data_dir(args.data_dir)
    cells = plan_cells(protocol, source_fingerprint(protocol.dataset, data_dir))
    store = ResultStore(args.results_dir, protocol.name)
    return Session(protocol, args.protocol, data_dir, store, cells, args.report_dir / protocol.name)


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a protocol without running it."""
    protocol = load_protocol(args.protocol)
    print(f"{args.protocol}: valid protocol {protocol.name!r}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    """Describe the dataset sources."""
    from study.data.sources import describe_sources

    print(describe_sources())
    return 0


def _state_table(session: Session) -> pd.DataFrame:
    statuses = session.store.statuses()
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
    session = _open(args)
    table = _state_table(session)
    print(f"{session.protocol.name}: {len(session.cells)} cells in {session.store.root}")
    print(table.to_string(index=False))
    print(f"total: {table['done'].sum()} done, {table['failed'].sum()} failed, {table['pending'].sum()} pending")
    planned = {cell.run_id for cell in session.cells}
    stored = session.store.cells()
    stale = stored[~stored["run_id"].isin(planned)]
    if len(stale):
        print(f"{len(stale)} stored results belong to an earlier version of this protocol (kept, not shown above)")
    failed = stored[(stored["status"] == "failed") & stored["run_id"].isin(planned)]
    for _, row in failed.iterrows():
        print(f"failed: {row['arm']} fraction={row['fraction']:g} seed={row['seed']}: {row['error']}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """The cells, what is done, and the backbone's block map."""
    from study.models.blocks import backbone_info

    session = _open(args)
    protocol = session.protocol
    info = backbone_info(protocol.backbone.name)
    print(f"protocol {protocol.name}: {len(session.cells)} cells = {len(protocol.fractions)} fractions x "
          f"{len(protocol.seed_list())} seeds x {len(session.cells) // (len(protocol.fractions) * len(protocol.seed_list()))} arms")
    print(f"block map of {info.name} (at: k keeps blocks 0..k; depth: d trains the top d blocks):")
    for index, block in enumerate(info.blocks):
        print(f"  {index:>2}  {block.name:<12} ends at layer {block.last_layer}")
    table = _state_table(session)
    print(table.to_string(index=False))
    todo = int(table["pending"].sum())
    print(f"to run: {todo} cells, each up to {protocol.train.epochs} epochs (early stopping may end them sooner)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild the report from the stored results."""
    protocol = load_protocol(args.protocol)
    store = ResultStore(args.results_dir, protocol.name)
    paths = _build_report(protocol, store, args.report_dir / protocol.name)
    print(f"report written to {paths[0].parent} (open {paths[0]})")
    return 0


def _build_report(protocol: Protocol, store: ResultStore, out_dir: Path) -> list[Path]:
    """The report's files, index.html first (study.report never imports TensorFlow)."""
    from study.report import build_report

    return build_report(protocol, store, out_dir)


def features_path(store: ResultStore, protocol: Protocol) -> Path:
    """Where the run stores the pooled frozen-backbone features of every image, for the report's map."""
    return store.root / "features" / f"{protocol.backbone.name}-{protocol.dataset.size}px.npz"


def _export_features(session: Session, context, jobs: int) -> None:
    """Store the pretrained backbone's features once per protocol (no pretrained weights, no map)."""
    from study.executors import run_task
    from study.worker import export_features

    protocol = session.protocol
    path = features_path(session.store, protocol)
    if protocol.backbone.weights == "none" or path.exists():
        return
    settings = {"dataset": protocol.dataset.model_dump(exclude={"path"}), "backbone": protocol.backbone.model_dump()}
    try:
        run_task(export_features, context, settings, str(path), jobs=jobs)
    except Exception as exc:  # the map is an extra: the sweep's results stand without it
        print(f"note: no feature map for the report ({type(exc).__name__}: {exc})", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    """Run every cell the store lacks, store each result as it finishes, then build the report."""
    from study.data.sources import load_dataset
    from study.data.splits import ensure_split
    from study.executors import available_cores, threads_per_worker
    from study.progress import SweepProgress
    from study.scheduler import cells_to_run, run_sweep
    from study.store import acquire
    from study.worker import WorkerContext

    session = _open(args)
    store = session.store
    jobs = args.jobs or available_cores()
    todo = cells_to_run(session.cells, store, args.retry_failed)
    print(f"{session.protocol.name}: {len(session.cells)} cells, {len(session.cells) - len(todo)} stored, "
          f"{len(todo)} to run with {jobs} worker(s)")
    if args.dry_run:
        for cell in todo:
            print(f"  would run {cell.describe()}  [{cell.run_id}]")
        return 0

    lock = store.lock()
    acquire(lock, store.root)
    try:
        cache_dir = args.results_dir / ".cache"
        dataset = ensure_split(load_dataset(session.protocol.dataset, session.data_dir, cache_dir), session.protocol.dataset)
        store.put_split(pd.DataFrame({"image_id": dataset.ids.astype(str), "label": dataset.labels, "split": dataset.split}))
        shutil.copyfile(session.protocol_path, store.root / "protocol.yaml")
        context = WorkerContext(
            dataset=session.protocol.dataset.model_dump(),
            data_dir=str(session.data_dir) if session.data_dir else None,
            cache_dir=str(cache_dir),
            threads=threads_per_worker(min(jobs, max(1, len(todo)))),
        )
        started = time.perf_counter()
        with SweepProgress(total=len(session.cells), done=len(session.cells) - len(todo), enabled=not args.no_progress) as progress:
            summary = run_sweep(session.cells, store, context, jobs, args.retry_failed, on_result=progress.update)
        elapsed = time.perf_counter() - started
        _export_features(session, context, jobs)
    finally:
        lock.release()
    paths = _build_report(session.protocol, store, session.report_dir)
    print(f"{summary.done} done, {summary.failed} failed, {summary.skipped} skipped in {elapsed:.0f} s; "
          f"results in {store.root}, report in {paths[0].parent}")
    for error in summary.errors:
        print(f"failed: {error}", file=sys.stderr)
    if summary.failed:
        print("run again with --retry-failed to retry the failed cells", file=sys.stderr)
        return 1
    return 0
