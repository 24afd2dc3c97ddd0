"""The fused CPU kernel (fused_sweeps.c): float32 sweeps of many networks in one C loop.

It is built on first use with the system's C compiler ($CC, else cc, gcc or clang), cached in
the mnistlab user cache under a name that hashes the source, compiler and flags, and loaded with
ctypes. The networks are split into one contiguous range per torch thread; ctypes releases the
GIL during the call, so the ranges run in parallel.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

from mirror_symmetry.setup import (
    ADAM_BETA2,
    OPTIMIZER_EPS,
    PATTERNS,
    RMSPROP_ALPHA,
    Setup,
    Task,
)
from mnistlab.data import cache_dir

SOURCE = Path(__file__).with_name("fused_sweeps.c")
LANES = 16  # networks per SIMD vector in the C loop; the batch is a multiple of this
# -march=native first (AVX-512 where there is one); the portable flags where a compiler lacks it.
FLAG_SETS = (
    ("-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fPIC", "-shared"),
    ("-O3", "-fopenmp-simd", "-fno-math-errno", "-fPIC", "-shared"),
)
# Same order as the enums in fused_sweeps.c.
ACTIVATION_CODES = ("sigmoid", "tanh", "hardsigmoid", "hardtanh", "silu", "relu")
OPTIMIZER_CODES = ("sgd", "rmsprop", "adam")


class KernelUnavailable(RuntimeError):
    """No C compiler, or the build failed; the message says which."""


class Options(ctypes.Structure):
    _fields_ = [
        ("activation", ctypes.c_int32),
        ("optimizer", ctypes.c_int32),
        ("threshold_output", ctypes.c_int32),
        ("lr", ctypes.c_float),
        ("momentum", ctypes.c_float),
        ("rmsprop_alpha", ctypes.c_float),
        ("adam_beta2", ctypes.c_float),
        ("eps", ctypes.c_float),
        ("loss_weight", ctypes.c_float * PATTERNS),
        ("target", ctypes.c_float * PATTERNS),
    ]


def find_compiler() -> str:
    """$CC when set (never silently another compiler), else the first of cc, gcc, clang."""
    chosen = os.environ.get("CC")
    if chosen:
        path = shutil.which(chosen)
        if path is None:
            raise KernelUnavailable(
                f"CC={chosen} is not an executable C compiler (set CC to one, or unset it)"
            )
        return path
    for name in ("cc", "gcc", "clang"):
        if path := shutil.which(name):
            return path
    raise KernelUnavailable("no C compiler found (set CC, or install gcc or clang)")


def _cpu_identity() -> str:
    """What -march=native compiles for: the CPU's model and feature flags where Linux says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text().splitlines()
        wanted = ("model name", "flags", "Features", "CPU part")
        return "\n".join(dict.fromkeys(line for line in lines if line.startswith(wanted)))
    return f"{platform.machine()} {platform.processor()} {platform.node()}"


def _compiler_identity(compiler: str) -> str:
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True)
    return result.stdout.splitlines()[0] if result.stdout else compiler


def build(directory: Path | None = None) -> Path:
    """The built shared library, compiled now unless the cache already holds this exact build."""
    compiler = find_compiler()
    source = SOURCE.read_bytes()
    directory = directory or cache_dir() / "kernels"
    identity = [source, _compiler_identity(compiler).encode(), _cpu_identity().encode()]
    errors = []
    for flags in FLAG_SETS:
        key = hashlib.sha256(b"\0".join([*identity, " ".join(flags).encode()])).hexdigest()[:16]
        library = directory / f"fused_sweeps-{key}.so"
        if library.is_file():
            return library
        try:  # compile beside the target, then rename: concurrent builders see no partial file
            directory.mkdir(parents=True, exist_ok=True)
            handle, partial = tempfile.mkstemp(suffix=".so.partial", dir=directory)
            os.close(handle)
        except OSError as exc:
            raise KernelUnavailable(
                f"cannot write the kernel cache {directory} ({exc.strerror}); set MNISTLAB_CACHE "
                "to a writable folder"
            ) from exc
        result = subprocess.run(
            [compiler, *flags, str(SOURCE), "-o", partial, "-lm"], capture_output=True, text=True
        )
        if result.returncode == 0:
            os.replace(partial, library)
            return library
        os.unlink(partial)
        lines = result.stderr.strip().splitlines() or ["no output"]
        errors.append(next((line for line in lines if "error" in line), lines[0]))
    raise KernelUnavailable(f"{Path(compiler).name} could not build {SOURCE.name}: {errors[-1]}")


@functools.cache
def load() -> ctypes.CDLL:
    path = build()
    try:
        library = ctypes.CDLL(str(path))
    except OSError as exc:
        raise KernelUnavailable(f"could not load {path}: {exc}") from exc
    function = library.mirror_sweeps
    pointer, integer = ctypes.c_void_p, ctypes.c_int64
    function.argtypes = [
        ctypes.POINTER(Options),
        *[pointer] * 6,
        integer,
        integer,
        integer,
        integer,
        integer,
        ctypes.c_int32,
    ]
    function.restype = None
    return library


class FusedSweeps:
    """Sweeps of the networks in `theta` [17, N] (float32, CPU, N a multiple of 16), updating
    theta, the optimizer state and solved_at in place, like sweeps.TorchSweeps."""

    def __init__(
        self,
        setup: Setup,
        task: Task,
        theta: Tensor,
        state: tuple[Tensor, ...],
        solved_at: Tensor,
        threads: int | None = None,
    ) -> None:
        runs = theta.shape[1]
        tensors = (theta, *state, solved_at)
        if theta.device.type != "cpu" or theta.dtype != torch.float32 or runs % LANES:
            raise ValueError("the fused kernel needs float32 CPU weights, a multiple of 16 runs")
        if not all(t.is_contiguous() for t in tensors):
            raise ValueError("the fused kernel needs contiguous weights, state and solved_at")
        self._function = load().mirror_sweeps
        self.theta, self.state, self.solved_at = theta, state, solved_at
        self.updates_done = 0
        self.loss = torch.zeros(runs, dtype=torch.float32)
        self.correct = torch.zeros(runs, dtype=torch.float32)
        self._options = Options(
            activation=ACTIVATION_CODES.index(setup.activation),
            optimizer=OPTIMIZER_CODES.index(setup.optimizer),
            threshold_output=int(setup.threshold_output),
            lr=setup.lr,
            momentum=setup.momentum,
            rmsprop_alpha=RMSPROP_ALPHA,
            adam_beta2=ADAM_BETA2,
            eps=OPTIMIZER_EPS,
            loss_weight=(ctypes.c_float * PATTERNS)(*task.loss_weights.flatten().tolist()),
            target=(ctypes.c_float * PATTERNS)(*task.targets.flatten().tolist()),
        )
        blocks = runs // LANES
        workers = max(1, min(threads or torch.get_num_threads(), blocks))
        edges = [blocks * part // workers * LANES for part in range(workers + 1)]
        self._ranges = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
        self._pool = ThreadPoolExecutor(len(self._ranges)) if len(self._ranges) > 1 else None

    def _run(self, sweeps: int, update_last: bool) -> tuple[Tensor, Tensor]:
        tensors = (self.theta, self.state[0], self.state[1] if len(self.state) > 1 else None)
        pointers = [t.data_ptr() if t is not None else None for t in tensors]
        pointers += [self.solved_at.data_ptr(), self.loss.data_ptr(), self.correct.data_ptr()]
        stride = self.theta.stride(0)

        def call(begin: int, end: int) -> None:
            self._function(
                ctypes.byref(self._options),
                *pointers,
                stride,
                begin,
                end,
                self.updates_done,
                sweeps,
                int(update_last),
            )

        if self._pool is None:
            call(*self._ranges[0])
        else:
            for future in [self._pool.submit(call, *r) for r in self._ranges]:
                future.result()
        self.updates_done += sweeps if update_last else sweeps - 1
        return self.loss.clone(), self.correct.to(torch.int64)

    def __call__(self, sweeps: int) -> tuple[Tensor, Tensor]:
        """`sweeps` sweeps; E and the number of correct patterns [N] before the last update."""
        return self._run(sweeps, update_last=True)

    def evaluate(self) -> tuple[Tensor, Tensor]:
        """E and correct patterns at the current weights (marking newly solved networks)."""
        return self._run(1, update_last=False)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
