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


def code_fingerprint(*folders: Path) -> str:
    """SHA-256 over the relative paths and bytes of every source file under `folders`."""
    digest = hashlib.sha256()
    for folder in folders:
        digest.update(f"<{folder.name}>".encode())
        for path in sorted(p for p in folder.rglob("*") if p.suffix in SOURCE_SUFFIXES):
            digest.update(f"{path.relative_to(folder).as_posix()}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def study_fingerprint(study_module: str) -> str:
    """The code a study's rows depend on: its own package and mnistlab."""
    return code_fingerprint(package_dir(study_module), package_dir("mnistlab"))


def _git(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state(folder: Path) -> dict[str, Any]:
    """The commit checked out at `folder` and whether tracked files differ from it."""
    commit = _git(folder, "rev-parse", "HEAD")
    changes = _git(folder, "status", "--porcelain", "--untracked-files=no")
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
