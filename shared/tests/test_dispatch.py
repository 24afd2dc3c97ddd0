"""`uv run --package NAME train` runs NAME's trainer, whatever was installed last, for every
study in the workspace (found from packages/*/pyproject.toml, not from a list kept here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import distributions
from pathlib import Path

import pytest

from mnistlab.dispatch import installed_studies, load_study

UV = os.environ.get("UV") or shutil.which("uv")
REPO = Path(__file__).resolve().parents[2]


def workspace_studies() -> list[str]:
    """Every workspace member that registers a study."""
    names = []
    for pyproject in sorted(REPO.glob("packages/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        if "mnistlab.studies" in project.get("entry-points", {}):
            names.append(project["name"])
    return names


def title(study: str) -> str:
    """The start of a study's --help (its description), distinct across studies."""
    return " ".join(load_study(study).description.split()[:4])


def help_text(*command: str, **env: str) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=180, env={**os.environ, **env}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_workspace_study_is_registered_and_installed() -> None:
    studies = workspace_studies()
    assert len(studies) >= 2
    assert set(studies) <= set(installed_studies()), "run `uv sync --all-packages`"
    assert len({title(s) for s in studies}) == len(studies), "descriptions must differ"


def test_only_mnistlab_installs_a_train_script() -> None:
    owners = {
        dist.metadata["Name"]
        for dist in distributions()
        for ep in dist.entry_points
        if ep.group == "console_scripts" and ep.name == "train"
    }
    assert owners == {"mnistlab"}


@pytest.mark.skipif(UV is None, reason="uv is not on PATH")
def test_uv_run_package_train_runs_that_package_in_any_order() -> None:
    studies = workspace_studies()
    for study in [*studies, *reversed(studies[:2])]:  # alternate: no install order can win
        out = help_text(UV, "run", "--package", study, "train", "--help")
        assert title(study) in out
        assert not any(title(other) in out for other in studies if other != study)


def test_python_dash_m_runs_each_study() -> None:
    for study in workspace_studies():
        module = study.replace("-", "_")
        assert title(study) in help_text(sys.executable, "-m", module, "--help")


def test_environment_variable_selects_the_study() -> None:
    for study in workspace_studies()[:2]:
        out = help_text(
            sys.executable,
            "-c",
            "from mnistlab.dispatch import main; main()",
            "--help",
            MNISTLAB_STUDY=study,
        )
        assert title(study) in out


def test_unknown_study_is_refused_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from mnistlab.dispatch import main; main()", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "MNISTLAB_STUDY": "nope"},
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "'nope' has no trainer" in done.stderr
