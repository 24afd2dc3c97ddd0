"""A row goes stale when code that shapes its numbers changes, and only then: mnistlab's
modules are split into those that compute results and a harness that parses, checks, places
files and renders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mnistlab import provenance
from mnistlab.provenance import HARNESS_MODULES, RESULT_MODULES, package_dir, study_fingerprint


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
