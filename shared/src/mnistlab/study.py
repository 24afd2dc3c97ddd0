"""What a study registers, once, under the `mnistlab.studies` entry-point group.

    [project.entry-points."mnistlab.studies"]
    my-study = "my_study.study:STUDY"

`STUDY = Study(MyConfig, train, DESCRIPTION, reproduce=..., smoke_args=...)` gives the study
`uv run --package my-study train`, `python -m my_study`, a row in `uv run report`, and the
shared test suite (`shared/tests/test_studies.py`) — nothing else needs editing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mnistlab.cli import UsageError
from mnistlab.config import RunConfig, to_jsonable
from mnistlab.runtime import complete_checkpoints, guarded_main, parse_run_config

Budget = Literal["quick", "full"]
BUDGETS: tuple[Budget, ...] = ("quick", "full")


@dataclass
class Row:
    """One line of REPORT.md: a setting, our measured values, the source's number."""

    setting: str
    values: list[float]
    """Our result, one value per seed (or a single value with its own interval in `note`)."""
    unit: str
    """What the values are, e.g. 'test error %' or 'test accuracy %'."""
    source: float | None
    """The source's number in the same unit; None when it has none."""
    source_ref: str
    """Where the source's number comes from (paper table, repository log, ...)."""
    tolerance: float
    """|ours - source| within this counts as a match."""
    higher_is_better: bool
    command: str
    """The command that reproduces this row."""
    note: str = ""

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def ours(self) -> str:
        spread = f" ± {self.std:.2f}" if len(self.values) > 1 else ""
        return f"{self.mean:.2f}{spread} (n={len(self.values)})"

    @property
    def verdict(self) -> str:
        if self.source is None:
            return "not comparable"
        difference = self.mean - self.source
        if abs(difference) <= self.tolerance:
            return f"matches (±{self.tolerance:g})"
        return "better" if (difference > 0) == self.higher_is_better else "worse"

    def check(self) -> None:
        """Refuse malformed rows: a report must never show a made-up or missing number."""
        if not self.values or not all(math.isfinite(v) for v in self.values):
            raise ValueError(f"row {self.setting!r}: values must be finite and non-empty")
        if not self.setting or not self.unit or not self.command or self.tolerance < 0:
            raise ValueError(f"row {self.setting!r}: setting, unit, command, tolerance >= 0")
        if self.source is not None and not self.source_ref:
            raise ValueError(f"row {self.setting!r}: a source number needs its source_ref")


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
    (used by the shared tests with --epochs 2 / --resume)."""
    bad_args: tuple[tuple[str, ...], ...] = ()
    """Study-specific bad values; each must exit 2 with one line (shared tests)."""
    resumable: bool = True
    """Whether runs checkpoint per epoch and continue with --resume (a simulation of seconds
    may refuse --resume instead; then it must be among `bad_args`)."""

    @property
    def name(self) -> str:
        return self.config.study

    def main(self, argv: Sequence[str] | None = None) -> None:
        """The study's command line: `train`, `python -m STUDY`, `accelerate launch -m STUDY`."""
        guarded_main(lambda: self.train(parse_run_config(self.config, argv, self.description)))


def train_or_reuse(train: Callable[[Any], dict[str, Any]], config: RunConfig) -> dict[str, Any]:
    """Train `config` unless its run (out_dir/study/run_name) already finished: a finished run's
    summary is reused and an interrupted one continues from its last checkpoint. Used by
    reproductions so that an interrupted report continues where it stopped."""
    if config.run_name is None:
        raise ValueError("train_or_reuse needs a run_name")
    run_dir = config.out_dir / type(config).study / config.run_name
    summary = run_dir / "summary.json"
    saved = run_dir / "config.json"
    if saved.is_file():  # never reuse a run made with other settings (e.g. another budget)
        before, now = json.loads(saved.read_text()), to_jsonable(config)
        changed = sorted(
            k for k in now if k not in config.resumable_fields and before.get(k) != now[k]
        )
        if changed:
            raise UsageError(
                f"{run_dir} was made with other {', '.join(changed)}; delete it "
                "(or its reproduction folder) to recompute"
            )
    if summary.is_file():
        return json.loads(summary.read_text())
    resume = str(run_dir) if complete_checkpoints(run_dir) else None
    if resume is None and run_dir.exists():  # killed before its first checkpoint: start over
        print(f"{run_dir}: no checkpoint, starting it again", flush=True)
        shutil.rmtree(run_dir)
    return train(dataclasses.replace(config, resume=resume))
