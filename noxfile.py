"""Sessions: `tests` (one per workspace package, slow tests left out), `slow` (only the slow
ones), `lint`, `bench` (every benchmarks/*.py, not run in CI).

Sessions install nothing: they run inside the workspace venv that `uv` keeps in sync with the
lock, so torch is never reinstalled per session. Packages and benchmarks are found on disk.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests", "lint"]

ROOT = Path(__file__).parent
PACKAGES = {
    "mnistlab": "shared",
    **{
        p.name: f"packages/{p.name}"
        for p in sorted((ROOT / "packages").iterdir())
        if (p / "pyproject.toml").is_file()
    },
}
BENCHMARKS = sorted(ROOT.glob("benchmarks/*.py")) + sorted(ROOT.glob("packages/*/benchmarks/*.py"))


def uv_run(session: nox.Session, package: str, *args: str, **kwargs) -> None:
    # mnistlab's suite checks `train` dispatch and `report` over every registered study (and
    # benchmarks may use any study), so those run with all members installed; each study's
    # contract runs in its own package's session.
    target = (
        ["--package", package]
        if package in PACKAGES and package != "mnistlab"
        else ["--all-packages"]
    )
    session.run("uv", "run", "--locked", *target, "--group", "dev", *args, external=True, **kwargs)


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """pytest for one package without the slow tests; extra arguments go to pytest."""
    uv_run(
        session, package, "pytest", f"{PACKAGES[package]}/tests", "-m", "not slow", *session.posargs
    )


@nox.session
@nox.parametrize("package", list(PACKAGES))
def slow(session: nox.Session, package: str) -> None:
    """Only the tests marked slow (longer CPU training runs); exit 5 (none) counts as success."""
    uv_run(
        session,
        package,
        "pytest",
        f"{PACKAGES[package]}/tests",
        "-m",
        "slow",
        *session.posargs,
        success_codes=[0, 5],
    )


@nox.session
def lint(session: nox.Session) -> None:
    session.run("uv", "run", "--locked", "ruff", "check", ".", external=True)
    session.run("uv", "run", "--locked", "ruff", "format", "--check", ".", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark script; each prints ratios against a baseline measured in the same run,
    and its output is kept in benchmarks/results/<script>.txt with the date, commit and machine.

    `nox -s bench -- --quick` passes --quick to every script."""
    for script in BENCHMARKS:
        uv_run(
            session,
            "all",
            "python",
            "-m",
            "mnistlab.bench",
            str(script.relative_to(ROOT)),
            *session.posargs,
        )
