"""What a study registers, once, under the `mnistlab.studies` entry-point group.

    [project.entry-points."mnistlab.studies"]
    my-study = "my_study.study:STUDY"

`STUDY = Study(MyConfig, train, DESCRIPTION, reproduce=..., smoke_args=...)` gives the study
`uv run --package my-study train`, `python -m my_study`, a row in `uv run report`, and the
contract tests of `mnistlab.testing` (one short `tests/test_contract.py`) — nothing else needs
editing.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnistlab.cli import UsageError
from mnistlab.config import RunConfig, started_in_process
from mnistlab.entry import guarded_main, parse_run_config
from mnistlab.rows import BUDGETS, Budget, Row, Source
from mnistlab.run_folder import CONFIG, SUMMARY, changed_fields, complete_checkpoints

# What a study's reproduction needs comes from here (rows, sources and budgets live in rows).
__all__ = ["BUDGETS", "Budget", "Row", "Source", "Study", "dry_run_active", "train_or_reuse"]

Reproduce = Callable[[Budget, Path], list[Row]]


@dataclass(frozen=True)
class Study:
    """A study's registration: its config (which names it), trainer and reproduction."""

    config: type[RunConfig]
    train: Callable[[Any], dict[str, Any]]
    """Runs one training run from a parsed config; returns its summary."""
    description: str
    """First line of --help."""
    reproduce: Reproduce
    """(budget, folder) -> rows comparing us with the source; figures go into the folder."""
    smoke_args: tuple[str, ...] = ()
    """Flags for a run of seconds that still trains, evaluates and checkpoints each epoch
    (used by the contract tests of `mnistlab.testing` with --epochs 2 / --resume)."""
    bad_args: tuple[tuple[str, ...], ...] = ()
    """Study-specific bad values; each must exit 2 with one line (contract tests)."""
    resumable: bool = True
    """Whether runs checkpoint per epoch and continue with --resume (a simulation of seconds
    may refuse --resume instead; then it must be among `bad_args`)."""

    @property
    def name(self) -> str:
        return self.config.study

    def main(self, argv: Sequence[str] | None = None) -> None:
        """The study's command line: `train`, `python -m STUDY`, `accelerate launch -m STUDY`."""
        guarded_main(lambda: self.train(parse_run_config(self.config, argv, self.description)))


# Set by `report --dry-run`: reproductions build every setting but train each a couple of steps.
DRY_RUN_STEPS = 2
_dry_run: contextvars.ContextVar[bool] = contextvars.ContextVar("dry_run", default=False)


@contextlib.contextmanager
def dry_run() -> Iterator[None]:
    token = _dry_run.set(True)
    try:
        yield
    finally:
        _dry_run.reset(token)


def dry_run_active() -> bool:
    """Whether a reproduction should only check that its settings build and train."""
    return _dry_run.get()


def train_or_reuse(train: Callable[[Any], dict[str, Any]], config: RunConfig) -> dict[str, Any]:
    """Train `config` unless its run (out_dir/study/run_name) already finished: a finished run's
    summary is reused and an interrupted one continues from its last checkpoint. Used by
    reproductions so that an interrupted report continues where it stopped."""
    if config.run_name is None:
        raise ValueError("train_or_reuse needs a run_name")
    if dry_run_active():
        config = dataclasses.replace(config, max_steps=DRY_RUN_STEPS, tracker="none")
    run_dir = config.out_dir / type(config).study / config.run_name
    summary = run_dir / SUMMARY
    saved = run_dir / CONFIG
    if saved.is_file():  # never reuse a run made with other settings (e.g. another budget)
        changed = changed_fields(config, json.loads(saved.read_text()))
        if changed:
            raise UsageError(
                f"{run_dir} was made with other {', '.join(changed)}; delete it "
                "(or its reproduction folder) to recompute"
            )
    if summary.is_file():
        return json.loads(summary.read_text())
    checkpoints = complete_checkpoints(run_dir)
    if not checkpoints and run_dir.exists():  # killed before its first checkpoint: start over
        print(f"{run_dir}: no checkpoint, starting it again", flush=True)
        shutil.rmtree(run_dir)
    resume = str(checkpoints[-1]) if checkpoints else None
    with started_in_process():
        return train(dataclasses.replace(config, resume=resume))
