"""What produced a report row: the code (a fingerprint of its sources), the commit, the machine."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

SOURCE_SUFFIXES = (".py", ".c")


def package_dir(module: str) -> Path:
    """The folder of the top-level package that `module` belongs to."""
    spec = importlib.util.find_spec(module.split(".")[0])
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{module} is not an importable package")
    return Path(next(iter(spec.submodule_search_locations)))


# mnistlab's modules whose code shapes what a run computes or what a row says: a change to any
# of them makes every study's rows stale. The others only parse flags, launch, check inputs,
# place files, render or time, so fixing them leaves measured rows fresh. Every module is in
# exactly one of the two (a test keeps it so).
RESULT_MODULES = (
    "__init__",
    "batches",
    "classify",
    "config",
    "data",
    "loop",
    "rows",
    "run",
    "stats",
    "study",
)
HARNESS_MODULES = (
    "bench",
    "cli",
    "dispatch",
    "entry",
    "launch",
    "provenance",
    "report",
    "resources",
    "run_folder",
    "testing",
)


def code_fingerprint(sources: dict[Path, list[Path]]) -> str:
    """SHA-256 over each folder's name and its files' relative paths and bytes."""
    digest = hashlib.sha256()
    for folder, files in sources.items():
        digest.update(f"<{folder.name}>".encode())
        for path in sorted(files):
            digest.update(f"{path.relative_to(folder).as_posix()}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def study_fingerprint(study_module: str) -> str:
    """The code a study's rows depend on: its own package and mnistlab's RESULT_MODULES."""
    study = package_dir(study_module)
    mnistlab = package_dir("mnistlab")
    return code_fingerprint(
        {
            study: [p for p in study.rglob("*") if p.suffix in SOURCE_SUFFIXES],
            mnistlab: [mnistlab / f"{name}.py" for name in RESULT_MODULES],
        }
    )


def _git(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state(folder: Path) -> dict[str, Any]:
    """The commit checked out at `folder` and whether tracked files differ from it, outside
    reports/ and benchmarks/results/ (a report or a benchmark rewrites its own outputs there
    before it records this)."""
    commit = _git(folder, "rev-parse", "HEAD")
    changes = _git(
        folder,
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ":(top)",
        ":(top,exclude)reports",
        ":(top,exclude)benchmarks/results",
    )
    return {"commit": commit, "dirty": None if changes is None else bool(changes)}


def cpuinfo_field(name: str) -> str | None:
    """The first `name : value` line of /proc/cpuinfo (Linux), else None."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    return None


def machine() -> dict[str, Any]:
    """The machine a timing belongs to: bf16 matmuls differ ~1.7x between CPUs with and without
    AMX, so the flag is recorded with the model."""
    flags = set((cpuinfo_field("flags") or "").split())
    return {
        "cpu": cpuinfo_field("model name") or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "amx": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def machine_line(info: dict[str, Any] | str) -> str:
    if isinstance(info, str):  # rows from before the machine was recorded field by field
        return info
    amx = "AMX" if info.get("amx") else "no AMX"
    gpu = info.get("gpu") or "no GPU"
    return f"{info.get('cpu')}, {info.get('cores')} cores, {amx}, {gpu}, torch {info.get('torch')}"


def provenance(study_module: str, minutes: float) -> dict[str, Any]:
    """Everything a row records about what produced it."""
    return {
        "code": study_fingerprint(study_module),
        **git_state(package_dir(study_module)),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "minutes": round(minutes, 2),
    }
