"""The choice of backend: the fused C kernel (CPU, float32), torch.compile or eager torch
sweeps, each falling back to the next with a warning that says the expected time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import Tensor

from mirror_symmetry import kernel
from mirror_symmetry.setup import PATTERNS, Setup, Task
from mirror_symmetry.sweeps import TORCH_PATTERN_TENSORS, TorchSweeps
from mnistlab.cli import UsageError, first_line
from mnistlab.config import require
from mnistlab.resources import check_memory

Backend = Literal["auto", "kernel", "compile", "eager"]
BACKENDS: tuple[str, ...] = get_args(Backend)


def check_backend(backend: Backend, device: torch.device, dtype: torch.dtype) -> None:
    require(backend in BACKENDS, f"--backend must be one of {', '.join(BACKENDS)}, got {backend}")
    require(
        backend != "kernel" or (device.type == "cpu" and dtype == torch.float32),
        f"--backend kernel runs on the CPU in float32, not on {device.type} in "
        f"{str(dtype).removeprefix('torch.')}; use --backend compile (or auto)",
    )


# Run-sweeps per second of each backend for the paper's setup with 10,000 networks, float32, on
# the 2-core AMD EPYC of the README's speed table (rounded down): for the expected time of a
# fallback.
RUN_SWEEPS_PER_SECOND = {"kernel": 19e6, "compile": 3e6, "eager": 0.7e6}


def expected_seconds(setup: Setup, backend: str) -> str:
    seconds = setup.runs * setup.sweeps / RUN_SWEEPS_PER_SECOND[backend]
    if seconds < 1:
        return "under a second"
    return f"~{seconds:.2g} s" if seconds < 120 else f"~{seconds / 60:.0f} min"


def check_kernel() -> None:
    """For --backend kernel: build (or load) the kernel now, refusing in one line if it cannot."""
    try:
        kernel.load()
    except kernel.KernelUnavailable as exc:
        raise UsageError(f"{exc}; use --backend compile or eager") from exc


def start_sweeps(
    setup: Setup,
    task: Task,
    theta: Tensor,
    state: tuple[Tensor, ...],
    solved_at: Tensor,
    backend: Backend,
    warn: Callable[[str], None],
) -> tuple[TorchSweeps | kernel.FusedSweeps, str]:
    """The sweep implementation for `backend` and the name of what runs. auto: the fused kernel
    for float32 on the CPU, else torch.compile; each falls back to the next with a warning that
    says the expected time."""
    if backend == "kernel":
        check_kernel()
    if backend == "kernel" or (
        backend == "auto" and theta.device.type == "cpu" and theta.dtype == torch.float32
    ):
        try:
            return kernel.FusedSweeps(setup, task, theta, state, solved_at), "kernel"
        except kernel.KernelUnavailable as exc:
            warn(
                f"warning: {exc}; running the torch.compile version instead (expected "
                f"{expected_seconds(setup, 'compile')} plus compiling on 2 CPU cores, against "
                f"{expected_seconds(setup, 'kernel')} with the kernel)"
            )
            workspace = theta.shape[1] * TORCH_PATTERN_TENSORS * PATTERNS * theta.element_size()
            what = f"--runs {setup.runs} without the kernel (backend compile)"
            check_memory(workspace, what, "lower --runs or set CC to a C compiler", theta.device)
    if backend in ("auto", "compile"):
        try:
            return TorchSweeps(setup, task, theta, state, solved_at, compile=True), "compile"
        except Exception as exc:  # a missing C++ compiler or an unsupported device: run eagerly
            warn(
                f"warning: torch.compile failed ({first_line(exc)}); running eagerly (expected "
                f"{expected_seconds(setup, 'eager')} on 2 CPU cores; install a C++ compiler "
                "for the compiled version)"
            )
    return TorchSweeps(setup, task, theta, state, solved_at, compile=False), "eager"
