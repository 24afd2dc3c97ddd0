"""A row goes stale when code that shapes its numbers changes, and only then: mnistlab's
modules are split into those that compute results and a harness that parses, checks, places
files and renders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mnistlab import provenance
from mnistlab.provenance import (
    HARNESS_MODULES,
    RESULT_MODULES,
    git_state,
    package_dir,
    study_fingerprint,
)


def test_every_mnistlab_module_is_classified_once() -> None:
    modules = sorted(p.stem for p in package_dir("mnistlab").glob("*.py"))
    assert not set(RESULT_MODULES) & set(HARNESS_MODULES)
    assert sorted((*RESULT_MODULES, *HARNESS_MODULES)) == modules


@pytest.fixture
def copied_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Copies of mnistlab and the toy study's package that the fingerprint reads instead."""
    copies = {}
    for name in ("mnistlab", "toy"):
        source = package_dir("mnistlab") if name == "mnistlab" else Path(__file__).parent
        copies[name] = tmp_path / name
        shutil.copytree(source, copies[name], ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "package_dir", lambda module: copies[module.split(".")[0]])
    return copies


@pytest.mark.parametrize("module", ["loop", "run", "stats", "data"])
def test_a_change_to_code_that_computes_results_makes_rows_stale(copied_packages, module) -> None:
    before = study_fingerprint("toy")
    with (copied_packages["mnistlab"] / f"{module}.py").open("a") as file:
        file.write("\n# edited\n")
    assert study_fingerprint("toy") != before


@pytest.mark.parametrize("module", ["entry", "report", "run_folder", "resources"])
def test_a_fix_to_the_harness_leaves_rows_fresh(copied_packages, module) -> None:
    before = study_fingerprint("toy")
    with (copied_packages["mnistlab"] / f"{module}.py").open("a") as file:
        file.write("\n# edited\n")
    assert study_fingerprint("toy") == before


def test_a_change_to_the_study_makes_its_rows_stale(copied_packages) -> None:
    before = study_fingerprint("toy")
    with (copied_packages["toy"] / "toy.py").open("a") as file:
        file.write("\n# edited\n")
    assert study_fingerprint("toy") != before


def test_a_tree_is_dirty_for_code_changes_not_for_recorded_outputs(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "table.md").write_text("old\n")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "speed.txt").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "reports" / "table.md").write_text("new\n")  # what a report run rewrites
    (tmp_path / "benchmarks" / "results" / "speed.txt").write_text("new\n")  # a benchmark's
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_state(tmp_path)["dirty"] is True
