"""`train`: one console script for the whole workspace that runs the *named* study's trainer.

All workspace members share one venv, so if every study shipped its own `train` script,
`bin/train` would be whichever member was installed last. Instead only mnistlab installs
`train`, and it finds the study to run from, in order:
  1. $MNISTLAB_STUDY;
  2. the `--package NAME` of the `uv run` that started it (read from the parent processes);
  3. the only installed study, if there is exactly one.
Studies register a `Study` under the `mnistlab.studies` entry-point group; `python -m NAME`
runs one directly (the form `accelerate launch -m NAME` and `torchrun -m NAME` use).
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import psutil

from mnistlab.cli import fail
from mnistlab.launch import starting

if TYPE_CHECKING:
    from mnistlab.study import Study

STUDY_ENV = "MNISTLAB_STUDY"
GROUP = "mnistlab.studies"


def installed_studies() -> dict[str, str]:
    """Registered study names -> their `Study` object's import path (nothing imported)."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load_study(name: str) -> Study:
    (ep,) = (ep for ep in entry_points(group=GROUP) if ep.name == name)
    return ep.load()


def load_studies() -> dict[str, Study]:
    return {name: load_study(name) for name in sorted(installed_studies())}


def _package_from_argv(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--package" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--package="):
            return arg.split("=", 1)[1]
    return None


def package_from_uv_run(max_depth: int = 4) -> str | None:
    """The `--package` argument of the nearest `uv run` ancestor of this process, if any."""
    try:
        process = psutil.Process().parent()
        for _ in range(max_depth):
            if process is None:
                return None
            argv = process.cmdline()
            is_uv = any(os.path.basename(a).split(".")[0] == "uv" for a in argv[:3])
            if is_uv and "run" in argv:
                return _package_from_argv(argv[argv.index("run") + 1 :])
            process = process.parent()
    except psutil.Error:
        return None
    return None


def resolve_study(studies: dict[str, str]) -> str:
    requested = os.environ.get(STUDY_ENV) or package_from_uv_run()
    if requested is not None:
        requested = requested.lower().replace("_", "-")
    if requested is None and len(studies) == 1:
        return next(iter(studies))
    if requested is None:
        fail(
            "cannot tell which study to train; run `uv run --package NAME train` or "
            f"`python -m NAME` (installed: {', '.join(sorted(studies))})"
        )
    if requested not in studies:
        fail(
            f"{requested!r} has no trainer; studies with one: {', '.join(sorted(studies))} "
            "(`uv run --package NAME train`)"
        )
    return requested


def main() -> None:
    with starting():  # the study's import pulls in torch: seconds a Ctrl-C may land in
        study = load_study(resolve_study(installed_studies()))
    study.main(sys.argv[1:])
