"""Command line: thin commands over the library. Results go to stdout, errors to stderr.

Exit codes (docs/guide/commands.md has the table): 0 success, 1 a failure (missing data, failed cells, busy or
unwritable results, a stopped sweep), 2 a usage or protocol error (each error declares its code:
`StudyError.exit_code`), 130 on Ctrl-C and 143 on SIGTERM (both end alike: one line, finished cells kept, no
worker left), 141 when the reader of stdout closed it early (`study plan P | head -1`): the status a shell reports
for a command that SIGPIPE ended, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from study.core.errors import StudyError
from study.core.vocabulary import KEEP_MODELS
from study.execution.executor_registry import EXECUTORS

log = logging.getLogger("study")
CLOSED_PIPE = 141  # 128 + SIGPIPE
INTERRUPTED = "interrupted: finished cells are stored; run the same command again to resume"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: it unwinds as Ctrl-C does, stopping the workers on its way."""


def _terminated(signum, frame) -> None:
    raise Terminated


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", type=Path, help="protocol YAML file")
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where results live (default results/)")
    parser.add_argument("--report-dir", type=Path, default=Path("report"), help="where reports go (default report/)")
    parser.add_argument("--data-dir", default=None, help="dataset folder (default: $STUDY_DATA_DIR)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run every cell the store lacks, then build the report")
    _common(run)
    run.add_argument("--jobs", type=int, default=None,
                     help="cells at once (default: one per core; on a cluster, one per Dask worker or Ray CPU)")
    run.add_argument("--executor", choices=tuple(EXECUTORS), default="local",
                     help="where cells run: local processes, a Dask or a Ray cluster (default local)")
    run.add_argument("--address", default=None,
                     help="the running Dask scheduler or Ray cluster to use (default: start one on this machine)")
    run.add_argument("--retry-failed", action="store_true", help="run failed cells again")
    run.add_argument("--dry-run", action="store_true", help="show what would run and stop")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (one line per cell instead)")
    run.add_argument("--wait", action="store_true", help="when another run holds the results, wait for it to end")
    run.add_argument("--until-decided", action="store_true",
                     help="add seeds in rounds until every claim is decided (group-sequential, alpha kept)")
    run.add_argument("--max-seeds", type=int, default=None,
                     help="with --until-decided: seeds at the last look (default 10)")
    run.add_argument("--seeds-per-round", type=int, default=None,
                     help="with --until-decided: seeds added per look (default 2)")
    run.add_argument("--keep-models", choices=KEEP_MODELS, default=None,
                     help="keep trained models in results/<name>/models/: each arm x fraction's best cell by "
                     "validation, or every cell's (default: the protocol's run.keep_models, else none)")

    plan = commands.add_parser("plan", help="the cells, what is done, the block map, n_train and estimated time")
    _common(plan)
    plan.add_argument("--jobs", type=int, default=None,
                      help="workers the time estimate is spread over (default: as run, one per core)")
    for name, text in (
        ("status", "done, failed and pending cells per arm and fraction"),
        ("report", "rebuild the report from the stored results"),
        ("compare", "this run's numbers on the whole training split beside published ones for the dataset"),
    ):
        _common(commands.add_parser(name, help=text))
    prune = commands.add_parser("prune", help="delete stored results that no longer belong to the protocol")
    _common(prune)
    prune.add_argument("--yes", action="store_true", help="really delete them (without it, only list them)")
    validate = commands.add_parser("validate", help="check a protocol (and, with a data directory, its data)")
    validate.add_argument("protocol", type=Path)
    validate.add_argument("--data-dir", default=None, help="dataset folder (default: $STUDY_DATA_DIR); without "
                          "one, only the protocol is checked")
    commands.add_parser("datasets", help="the dataset sources and where they look for files")
    init = commands.add_parser("init", help="write a commented protocol for a dataset, then show its cost")
    init.add_argument("data", help="a folder of class subfolders (images or DICOM files), a CSV manifest, or a "
                      "MedMNIST name such as breastmnist; found as given, else in the data directory")
    init.add_argument("--out", type=Path, default=Path("protocol.yaml"), help="protocol file to write (default "
                      "protocol.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    init.add_argument("--data-dir", default=None, help="dataset folder (default: $STUDY_DATA_DIR)")
    init.add_argument("--results-dir", type=Path, default=Path("results"),
                      help="where results live: stored cells' times inform the estimate (default results/)")
    predict = commands.add_parser("predict", help="apply a kept model to images: class probabilities as CSV")
    predict.add_argument("model", type=Path, help="a kept model: results/<name>/models/<run id>.keras")
    predict.add_argument("images", type=Path, help="a folder of images (searched recursively) or one image file")
    predict.add_argument("--out", type=Path, default=None, help="CSV file to write (default: standard output)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `study` and `python -m study`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from study import commands

    handler = getattr(commands, f"cmd_{args.command}")
    main_thread = threading.current_thread() is threading.main_thread()  # where Python runs signal handlers
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        code = handler(args)
        sys.stdout.flush()  # a reader that closed the pipe shows here, not in the flush at exit
        return code
    except BrokenPipeError:
        _discard_stdout()
        return CLOSED_PIPE
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(INTERRUPTED, file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _discard_stdout() -> None:
    """Point stdout at os.devnull, so that what is still buffered goes nowhere at exit (as the Python docs advise
    for a closed pipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
