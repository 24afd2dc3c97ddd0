"""Sessions: `tests` (one per workspace package), `lint`, `bench` (not run in CI).

Sessions install nothing: they run inside the workspace venv that `uv` keeps in sync with the
lock, so torch is never reinstalled per session.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests", "lint"]

ROOT = Path(__file__).parent
PACKAGES = {"mnistlab": "shared", **{p.name: f"packages/{p.name}" for p in
                                     sorted((ROOT / "packages").iterdir())
                                     if (p / "pyproject.toml").is_file()}}  # fmt: skip


def uv_run(session: nox.Session, package: str, *args: str) -> None:
    session.run("uv", "run", "--locked", "--package", package, "--group", "dev", *args,
                external=True)  # fmt: skip


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """pytest for one package; extra arguments go to pytest (e.g. -- -m 'not slow')."""
    uv_run(session, package, "pytest", f"{PACKAGES[package]}/tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.run("uv", "run", "--locked", "ruff", "check", ".", external=True)
    session.run("uv", "run", "--locked", "ruff", "format", "--check", ".", external=True)


# benchmark script -> the package whose code it measures
BENCHMARKS = {
    "bench_batches.py": "mnistlab",
    "bench_kakuritsu_layer.py": "kakuritsu",
    "bench_mirror_symmetry.py": "mirror-symmetry",
}


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: each prints ratios against a baseline measured in the same run.

    `nox -s bench -- --quick` passes --quick to every script."""
    for script, package in BENCHMARKS.items():
        uv_run(session, package, "python", f"benchmarks/{script}", *session.posargs)
