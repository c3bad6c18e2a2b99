"""How a run goes: where its cells run, how many at once, and what it does with stored failures."""

from __future__ import annotations

from dataclasses import dataclass

from study.protocol.schema import Protocol


@dataclass(frozen=True)
class RunOptions:
    """The choices of `study run` besides the protocol (its flags)."""

    jobs: int | None = None  # cells at once; None: one worker per train.threads cores
    executor: str = "local"  # local, dask or ray
    address: str | None = None  # a running Dask scheduler or Ray cluster; None: start one here
    retry_failed: bool = False
    wait: bool = False  # wait for another run holding the results instead of failing
    until_decided: bool = False
    max_seeds: int | None = None
    seeds_per_round: int | None = None
    keep_models: str | None = None  # none, best or all; None: the protocol's run.keep_models


def keep_models(options: RunOptions, protocol: Protocol) -> str:
    """Which trained models the run keeps: --keep-models, else the protocol's run.keep_models."""
    return options.keep_models or protocol.run.keep_models


def worker_jobs(jobs: int | None, protocol: Protocol) -> int:
    """jobs, else one worker per train.threads cores."""
    from study.training.process import available_cores

    return jobs or max(1, available_cores() // protocol.train.threads)
