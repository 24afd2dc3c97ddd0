"""`uv run --package NAME train` runs NAME's trainer, whatever was installed last."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import distributions

import pytest

from mnistlab.dispatch import installed_studies

UV = os.environ.get("UV") or shutil.which("uv")
# Each study's --help starts with its own description.
TITLES = {"kakuritsu": "Kakuritsu probabilistic synapses", "mirror-symmetry": "Rumelhart"}


def help_text(*command: str, **env: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env={**os.environ, **env})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def studies_with_trainers() -> list[str]:
    found = [name for name in TITLES if name in installed_studies()]
    if len(found) < 2:
        pytest.skip("needs two studies installed (uv sync --all-packages)")
    return found


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
    studies = studies_with_trainers()
    for study in [*studies, *reversed(studies)]:  # alternate: no install order can win
        out = help_text(UV, "run", "--package", study, "train", "--help")
        assert TITLES[study] in out
        others = [TITLES[s] for s in studies if s != study]
        assert not any(title in out for title in others)


def test_python_dash_m_runs_each_study() -> None:
    for study in studies_with_trainers():
        module = study.replace("-", "_")
        assert TITLES[study] in help_text(sys.executable, "-m", module, "--help")


def test_environment_variable_selects_the_study() -> None:
    for study in studies_with_trainers():
        out = help_text(sys.executable, "-c", "from mnistlab.dispatch import main; main()",
                        "--help", MNISTLAB_STUDY=study)  # fmt: skip
        assert TITLES[study] in out


def test_unknown_study_is_refused_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from mnistlab.dispatch import main; main()", "--help"],
        capture_output=True, text=True, env={**os.environ, "MNISTLAB_STUDY": "nope"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "'nope' has no trainer" in done.stderr
