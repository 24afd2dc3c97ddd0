"""N independent mirror-symmetry networks trained as one batched tensor program: their initial
weights, the outcome records, the memory estimates and `simulate`, which runs the sweeps of the
backend chosen in `backend.py`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mirror_symmetry.backend import Backend, check_backend, start_sweeps
from mirror_symmetry.setup import HIDDEN, INPUTS, PARAMETERS, PATTERNS, Init, Setup, Task, setup_of
from mirror_symmetry.sweeps import STATE_TENSORS, TORCH_PATTERN_TENSORS
from mnistlab.batches import derive_seed
from mnistlab.resources import check_memory

# The batch is padded with extra runs (each seeded by its own index, then dropped) to a multiple
# of this: for a partial block of runs ATen and MKL take other code paths (vector tails, small
# GEMM kernels) that round float32 differently, which would make a run's last bits depend on N.
RUN_BLOCK = 64
# Initial weights are drawn for this many networks per generator: one generator per network made
# start-up a Python loop over networks.
INIT_BLOCK = 4096

# Final accuracies the study counts separately ("other" is everything else).
OUTCOMES = ("1.0", "0.875", "0.5", "other")
_OUTCOME_CORRECT = (PATTERNS, PATTERNS * 7 // 8, PATTERNS // 2)


# -- the networks ----------------------------------------------------------------------------


class MirrorNets(nn.Module):
    """N networks' weights in the usual per-network shapes: W1 [N,2,6], b1 [N,2], W2 [N,1,2], b2 [N,1]."""

    W1: Tensor
    b1: Tensor
    W2: Tensor
    b2: Tensor

    def __init__(self, theta: Tensor) -> None:
        super().__init__()
        runs = theta.shape[1]
        rows = theta.detach().T  # [N, 17]
        self.register_buffer("W1", rows[:, :12].reshape(runs, HIDDEN, INPUTS).contiguous())
        self.register_buffer("b1", rows[:, 12:14].contiguous())
        self.register_buffer("W2", rows[:, 14:16].reshape(runs, 1, HIDDEN).contiguous())
        self.register_buffer("b2", rows[:, 16:17].contiguous())

    @property
    def runs(self) -> int:
        return self.W1.shape[0]

    def theta(self) -> Tensor:
        """The weights as the simulation's [17, N] tensor."""
        parts = (self.W1, self.b1, self.W2, self.b2)
        return torch.cat([p.reshape(self.runs, -1) for p in parts], dim=1).T.contiguous()


def initial_theta(runs: int, seed: int, init: Init, init_range: float) -> Tensor:
    """Initial weights [17, runs] (float64, CPU). Networks are drawn in blocks of INIT_BLOCK, each
    block from its own generator seeded from (seed, block) only, so network k starts the same
    whatever N is and whichever networks sit beside it."""
    draw = torch.randn if init == "gaussian" else torch.rand
    theta = torch.empty(PARAMETERS, runs, dtype=torch.float64)
    for block, start in enumerate(range(0, runs, INIT_BLOCK)):
        generator = torch.Generator().manual_seed(derive_seed("mirror-init", seed, block))
        width = min(INIT_BLOCK, runs - start)
        for row in theta[:, start : start + width]:
            if width == INIT_BLOCK:
                draw(INIT_BLOCK, generator=generator, dtype=torch.float64, out=row)
            else:  # the last block draws whole rows too, so a network's draws do not depend on N
                row.copy_(draw(INIT_BLOCK, generator=generator, dtype=torch.float64)[:width])
    if init == "uniform":
        return theta.mul_(2).sub_(1).mul_(init_range)
    # torch (nn.Linear's kaiming_uniform_(a=sqrt(5)) and bias rule) and gaussian (LeCun normal)
    # both scale each layer by 1/sqrt(fan_in): as U(-s, s) and as N(0, s^2).
    first_layer = HIDDEN * INPUTS + HIDDEN
    scale = torch.cat(
        [
            torch.full((first_layer,), 1 / math.sqrt(INPUTS), dtype=torch.float64),
            torch.full((PARAMETERS - first_layer,), 1 / math.sqrt(HIDDEN), dtype=torch.float64),
        ]
    )
    if init == "torch":
        theta.mul_(2).sub_(1)
    return theta.mul_(scale[:, None])


# -- the simulation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The outcome distribution after `sweep` updates."""

    sweep: int
    counts: tuple[int, int, int, int]  # networks per OUTCOMES entry
    mean_loss: float


@dataclass
class Simulation:
    setup: Setup
    seed: int
    final: MirrorNets  # weights after the last sweep (CPU)
    final_correct: Tensor  # [N] patterns classified correctly at the end
    solved_at: Tensor  # [N] first update count with all 64 correct, -1 if never
    history: list[Snapshot]
    seconds: float  # the sweep loop, without building or compiling
    build_seconds: float  # building (or loading) the fused kernel, or torch.compile's warm-up
    backend: str  # what ran: kernel, compile or eager
    device: str
    dtype: str

    @property
    def run_sweeps_per_second(self) -> float:
        return self.setup.runs * self.setup.sweeps / max(self.seconds, 1e-9)


def outcome_counts(correct: Tensor) -> tuple[int, int, int, int]:
    """Networks per OUTCOMES entry, from the number of correct patterns of each."""
    solved, always_no, half = (int((correct == value).sum()) for value in _OUTCOME_CORRECT)
    return solved, always_no, half, correct.numel() - solved - always_no - half


# Peak memory, measured with `train` (float32, 30 sweeps, 100,000 and 400,000 networks) and
# rounded up: about 820 bytes per network with the kernel (initial draws in float64, weights,
# optimizer state, final copies, the solution summary); torch sweeps add their per-pattern
# tensors (TORCH_PATTERN_TENSORS).
BYTES_PER_NETWORK = 1024
BYTES_PER_RECORD = 1024  # a Snapshot in the history, its metrics line and its plotted points
# What a finished Simulation keeps per network: final weights, correct patterns, solved_at.
KEPT_BYTES_PER_NETWORK = PARAMETERS * 8 + 16


def padded_runs(runs: int) -> int:
    return -(-runs // RUN_BLOCK) * RUN_BLOCK


def records(setup: Setup, record_every: int) -> int:
    return setup.sweeps // record_every + 2


def peak_bytes(setup: Setup, dtype: torch.dtype, backend: Backend, record_every: int) -> int:
    """Estimated peak memory of `simulate` (auto counts as the kernel: a fallback re-checks)."""
    per_network = BYTES_PER_NETWORK
    if backend in ("compile", "eager"):
        per_network += TORCH_PATTERN_TENSORS * PATTERNS * dtype.itemsize
    return padded_runs(setup.runs) * per_network + records(setup, record_every) * BYTES_PER_RECORD


def kept_bytes(setup: Setup, record_every: int) -> int:
    """Memory a finished Simulation holds on to."""
    return setup.runs * KEPT_BYTES_PER_NETWORK + records(setup, record_every) * BYTES_PER_RECORD


def check_simulation_memory(
    setup: Setup,
    dtype: torch.dtype,
    backend: Backend,
    record_every: int,
    device: torch.device | str,
    kept: int = 0,
) -> None:
    """Refuse, in one line, a simulation that cannot fit (beside `kept` bytes of earlier ones)
    before anything is allocated."""
    needed = peak_bytes(setup, dtype, backend, record_every) + kept
    history = records(setup, record_every) * BYTES_PER_RECORD
    check_memory(
        needed,
        f"--runs {setup.runs} x --sweeps {setup.sweeps} (backend {backend})",
        "raise --log-every or lower --sweeps" if history > needed / 2 else "lower --runs",
        torch.device(device),
    )


def simulate(
    setup: Setup,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    backend: Backend = "auto",
    record_every: int = 25,
    on_record: Callable[[Snapshot], None] | None = None,
    warn: Callable[[str], None] = print,
) -> Simulation:
    """Train setup.runs networks for setup.sweeps sweeps; record the outcome distribution every
    `record_every` sweeps (and at the end), passing each record to `on_record`.

    backend: kernel (the fused C loop, CPU float32), compile (torch.compile), eager, or auto (see
    start_sweeps). All compute the same numbers up to float rounding.
    """
    setup.check()
    device = torch.device(device)
    check_backend(backend, device, dtype)
    check_simulation_memory(setup, dtype, backend, record_every, device)
    runs = setup.runs
    padded = padded_runs(runs)
    task = Task.build(setup, device, dtype)
    theta = initial_theta(padded, seed, setup.init, setup.init_range).to(device, dtype)
    state = tuple(torch.zeros_like(theta) for _ in range(STATE_TENSORS[setup.optimizer]))
    solved_at = torch.full((padded,), -1, device=device, dtype=torch.int64)

    started = time.perf_counter()
    sweeps, ran = start_sweeps(setup, task, theta, state, solved_at, backend, warn)
    _synchronize(device)
    build_seconds = time.perf_counter() - started

    history: list[Snapshot] = []

    def record(sweeps_done: int, loss: Tensor, correct: Tensor) -> None:
        snapshot = Snapshot(sweeps_done, outcome_counts(correct[:runs]), float(loss[:runs].mean()))
        history.append(snapshot)
        if on_record is not None:
            on_record(snapshot)

    try:
        started = time.perf_counter()
        done = 0
        while done < setup.sweeps:  # up to and including the next recorded sweep
            next_record = -(-done // record_every) * record_every
            last = min(next_record, setup.sweeps - 1)
            loss, correct = sweeps(last - done + 1)
            if last == next_record:
                record(last, loss, correct)
            done = last + 1
        _synchronize(device)
        seconds = time.perf_counter() - started
        loss, correct = sweeps.evaluate()
    finally:
        sweeps.close()
    record(setup.sweeps, loss, correct)
    return Simulation(
        setup=setup_of(setup),
        seed=seed,
        final=MirrorNets(theta[:, :runs].cpu()),
        final_correct=correct[:runs].cpu(),
        solved_at=solved_at[:runs].cpu(),
        history=history,
        seconds=seconds,
        build_seconds=build_seconds,
        backend=ran,
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
    )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
