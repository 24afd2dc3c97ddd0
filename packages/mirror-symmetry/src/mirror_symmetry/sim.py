"""N independent mirror-symmetry networks trained as one batched tensor program.

Each network is the paper's 6-2-1 net: 6 binary inputs, 2 hidden units, 1 logistic output, biases
everywhere, trained full-batch on all 64 patterns (target 1 for the 8 mirror-symmetric ones).

Inside the sweep loop all 17 weights of every network live in one tensor `theta` of shape [17, N]
with the runs *last*: every elementwise operation then runs across runs in contiguous memory.
Rows of theta: W1[j, i] at 6*j + i, then b1 (2 rows), W2 (2 rows), b2 (1 row). Gradients are
written out by hand (tests check them against autograd on an ordinary nn.Module), and a sweep
can be fused into one compiled call with torch.compile.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnistlab.batches import derive_seed
from mnistlab.cli import UsageError, first_line
from mnistlab.config import require
from mnistlab.runtime import check_memory

if TYPE_CHECKING:
    from mirror_symmetry.kernel import FusedSweeps

INPUTS = 6
HIDDEN = 2
PATTERNS = 2**INPUTS
PARAMETERS = HIDDEN * INPUTS + HIDDEN + HIDDEN + 1  # W1, b1, W2, b2 = 17

# torch.optim defaults that have no flag of their own here.
RMSPROP_ALPHA = 0.99
ADAM_BETA2 = 0.999
OPTIMIZER_EPS = 1e-8

Optimizer = Literal["sgd", "rmsprop", "adam"]
Activation = Literal["sigmoid", "tanh", "hardsigmoid", "hardtanh", "silu", "relu"]
Reduction = Literal["sum", "mean"]
Init = Literal["uniform", "torch"]

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


@dataclass
class Setup:
    """What is simulated: the network's options, the optimizer and the budget."""

    runs: int = 1000
    """Independent networks, simulated together as one batch."""
    sweeps: int = 1425
    """Full-batch updates per network (the paper reports a solution after 1425 sweeps)."""
    optimizer: Optimizer = "sgd"
    """sgd: the paper's rule dw(t) = -lr * dE/dw + momentum * dw(t-1) (--momentum 0 is plain gradient descent); rmsprop, adam: torch.optim's update rules."""
    lr: float = 0.1
    """Learning rate (the paper's epsilon)."""
    momentum: float = 0.9
    """sgd: the paper's alpha; rmsprop: torch.optim.RMSprop's momentum; adam: beta1."""
    activation: Activation = "sigmoid"
    """Hidden-unit nonlinearity (PyTorch's definitions of hardsigmoid, hardtanh and silu)."""
    loss_reduction: Reduction = "sum"
    """sum: E = 1/2 * sum_p w_p (o_p - d_p)^2 (the paper); mean: E = 1/64 * sum_p w_p (o_p - d_p)^2, i.e. nn.MSELoss() over the 64 patterns, whose gradient is the sum's divided by 32."""
    symmetric_weight: float = 1.0
    """Loss weight w_p of the 8 symmetric patterns (the other 56 weigh 1)."""
    threshold_output: bool = False
    """The loss sees the thresholded output (o > 0.5); gradients pass it straight through to o."""
    init: Init = "uniform"
    """uniform: every weight and bias from U(-r, r) with r = --init-range (the paper); torch: nn.Linear's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    init_range: float = 0.3
    """r of --init uniform."""

    def check(self) -> None:
        """Raise a one-line UsageError naming the flag when a value cannot be simulated."""
        require(self.runs >= 1, f"--runs must be >= 1, got {self.runs}")
        require(self.sweeps >= 1, f"--sweeps must be >= 1, got {self.sweeps}")
        require(
            math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}"
        )
        require(0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}")
        require(
            math.isfinite(self.symmetric_weight) and self.symmetric_weight > 0,
            f"--symmetric-weight must be a positive number, got {self.symmetric_weight}",
        )
        require(
            math.isfinite(self.init_range) and self.init_range > 0,
            f"--init-range must be a positive number, got {self.init_range}",
        )


def setup_of(config: Setup) -> Setup:
    """The plain Setup part of a config that extends Setup (for replace() and JSON)."""
    return Setup(**{f.name: getattr(config, f.name) for f in dataclasses.fields(Setup)})


# -- the task --------------------------------------------------------------------------------


def all_patterns() -> Tensor:
    """The 64 binary input patterns, [64, 6] float64; row p holds the bits of p, high bit first."""
    bits = torch.arange(INPUTS - 1, -1, -1)
    return ((torch.arange(PATTERNS)[:, None] >> bits) & 1).to(torch.float64)


def is_symmetric(patterns: Tensor) -> Tensor:
    """[64] bool: the pattern reads the same reversed (8 of the 64)."""
    return (patterns == patterns.flip(1)).all(1)


def pattern_weights(setup: Setup, symmetric: Tensor) -> Tensor:
    """[64] float64 loss weights: --symmetric-weight for the symmetric patterns, 1 elsewhere."""
    weights = torch.ones(PATTERNS, dtype=torch.float64)
    weights[symmetric] = setup.symmetric_weight
    return weights


@dataclass(frozen=True)
class Task:
    """Tensors of the training set on the simulation's device and dtype."""

    patterns: Tensor  # [64, 6]
    targets: Tensor  # [64, 1], 1 for symmetric patterns
    loss_weights: Tensor  # [64, 1], c * w_p with c = 1/2 (sum) or 1/64 (mean)

    @classmethod
    def build(cls, setup: Setup, device: torch.device, dtype: torch.dtype) -> Task:
        patterns = all_patterns()
        symmetric = is_symmetric(patterns)
        scale = 0.5 if setup.loss_reduction == "sum" else 1.0 / PATTERNS
        placement = {"device": device, "dtype": dtype}
        return cls(
            patterns=patterns.to(**placement),
            targets=symmetric.to(**placement)[:, None],
            loss_weights=(scale * pattern_weights(setup, symmetric)).to(**placement)[:, None],
        )


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
    theta = torch.empty(PARAMETERS, runs, dtype=torch.float64)
    for block, start in enumerate(range(0, runs, INIT_BLOCK)):
        generator = torch.Generator().manual_seed(derive_seed("mirror-init", seed, block))
        width = min(INIT_BLOCK, runs - start)
        for row in theta[:, start : start + width]:
            if width == INIT_BLOCK:
                torch.rand(INIT_BLOCK, generator=generator, dtype=torch.float64, out=row)
            else:  # the last block draws whole rows too, so a network's draws do not depend on N
                draws = torch.rand(INIT_BLOCK, generator=generator, dtype=torch.float64)
                row.copy_(draws[:width])
    if init == "uniform":
        bound = torch.full((PARAMETERS,), init_range, dtype=torch.float64)
    else:  # nn.Linear: kaiming_uniform_(a=sqrt(5)) and its bias rule both give 1/sqrt(fan_in)
        first_layer = HIDDEN * INPUTS + HIDDEN
        bound = torch.cat(
            [
                torch.full((first_layer,), 1 / math.sqrt(INPUTS), dtype=torch.float64),
                torch.full((PARAMETERS - first_layer,), 1 / math.sqrt(HIDDEN), dtype=torch.float64),
            ]
        )
    return theta.mul_(2).sub_(1).mul_(bound[:, None])


# -- forward and backward --------------------------------------------------------------------


def _sigmoid(a: Tensor) -> tuple[Tensor, Tensor]:
    h = torch.sigmoid(a)
    return h, h * (1 - h)


def _tanh(a: Tensor) -> tuple[Tensor, Tensor]:
    h = torch.tanh(a)
    return h, 1 - h * h


def _hardsigmoid(a: Tensor) -> tuple[Tensor, Tensor]:
    return F.hardsigmoid(a), ((a > -3) & (a < 3)).to(a.dtype) / 6


def _hardtanh(a: Tensor) -> tuple[Tensor, Tensor]:
    return F.hardtanh(a), ((a > -1) & (a < 1)).to(a.dtype)


def _silu(a: Tensor) -> tuple[Tensor, Tensor]:
    s = torch.sigmoid(a)
    return a * s, s * (1 + a * (1 - s))


def _relu(a: Tensor) -> tuple[Tensor, Tensor]:
    return torch.relu(a), (a > 0).to(a.dtype)


# Each returns the unit's output and its derivative (the derivative autograd uses at the kinks).
ACTIVATIONS: dict[str, Callable[[Tensor], tuple[Tensor, Tensor]]] = {
    "sigmoid": _sigmoid,
    "tanh": _tanh,
    "hardsigmoid": _hardsigmoid,
    "hardtanh": _hardtanh,
    "silu": _silu,
    "relu": _relu,
}


def loss_and_gradients(
    theta: Tensor,
    task: Task,
    activation: Activation,
    threshold_output: bool,
    unrolled: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """dE/dtheta [17, N], E [N] and the number of correctly classified patterns [N].

    Per-pattern quantities are [64, N], one tensor per hidden unit. The contractions with the
    64x6 patterns are matrix products, or with `unrolled` six broadcast multiply-adds: slower
    eagerly, but torch.compile fuses those into its elementwise loops, where a matrix product
    stays a separate pass over memory.
    """
    runs = theta.shape[1]
    w1 = theta[:12].view(HIDDEN, INPUTS, runs)
    b1, w2, b2 = theta[12:14], theta[14:16], theta[16]
    columns = [task.patterns[:, i, None] for i in range(INPUTS)]  # [64, 1] each

    def net_input(unit: int) -> Tensor:
        if unrolled:
            return b1[unit] + sum(c * w for c, w in zip(columns, w1[unit], strict=True))
        return task.patterns @ w1[unit] + b1[unit]

    def input_gradient(delta: Tensor) -> Tensor:
        if unrolled:
            return torch.stack([(c * delta).sum(0) for c in columns])
        return task.patterns.T @ delta

    hidden, slope = zip(
        *(ACTIVATIONS[activation](net_input(j)) for j in range(HIDDEN)), strict=True
    )
    output = torch.sigmoid(b2 + sum(w2[j] * hidden[j] for j in range(HIDDEN)))
    fired = output > 0.5
    seen = fired.to(output.dtype) if threshold_output else output
    error = seen - task.targets
    loss = (task.loss_weights * error * error).sum(0)
    # Straight-through when thresholding: d(seen)/d(output) is taken as 1.
    delta_output = 2 * task.loss_weights * error * output * (1 - output)  # dE/d(output net input)
    delta_hidden = [delta_output * w2[j] * slope[j] for j in range(HIDDEN)]
    grad = torch.cat(
        [
            *(input_gradient(delta) for delta in delta_hidden),
            torch.stack([delta.sum(0) for delta in delta_hidden]),
            torch.stack([(delta_output * h).sum(0) for h in hidden]),
            delta_output.sum(0, keepdim=True),
        ]
    )
    correct = (fired == (task.targets > 0.5)).sum(0)
    return grad, loss, correct


# -- optimizers, batched by hand (each network has its own state; torch.optim's update rules) --


def _sgd(theta: Tensor, grad: Tensor, state: tuple[Tensor, ...], hyper: Tensor, step: Tensor):
    (change,) = state  # the paper's dw(t-1); equals -lr times torch.optim.SGD's momentum buffer
    change.mul_(hyper[1]).sub_(hyper[0] * grad)
    theta.add_(change)


def _rmsprop(theta: Tensor, grad: Tensor, state: tuple[Tensor, ...], hyper: Tensor, step: Tensor):
    square_avg, buffer = state
    square_avg.mul_(RMSPROP_ALPHA).addcmul_(grad, grad, value=1 - RMSPROP_ALPHA)
    buffer.mul_(hyper[1]).addcdiv_(grad, square_avg.sqrt().add_(OPTIMIZER_EPS))
    theta.sub_(hyper[0] * buffer)


def _adam(theta: Tensor, grad: Tensor, state: tuple[Tensor, ...], hyper: Tensor, step: Tensor):
    exp_avg, exp_avg_sq = state
    beta1 = hyper[1]
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(ADAM_BETA2).addcmul_(grad, grad, value=1 - ADAM_BETA2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - ADAM_BETA2**step
    denom = (exp_avg_sq.sqrt() / bias_correction2.sqrt()).add_(OPTIMIZER_EPS)
    theta.sub_(hyper[0] / bias_correction1 * exp_avg / denom)


UPDATES = {"sgd": _sgd, "rmsprop": _rmsprop, "adam": _adam}
STATE_TENSORS = {"sgd": 1, "rmsprop": 2, "adam": 2}

SweepFn = Callable[..., tuple[Tensor, Tensor]]


def mark_solved(solved_at: Tensor, correct: Tensor, updates_done: Tensor) -> None:
    """Record `updates_done` for the networks that classify all 64 patterns for the first time."""
    newly_solved = (solved_at < 0) & (correct == PATTERNS)
    solved_at.copy_(torch.where(newly_solved, updates_done, solved_at))


def make_sweep(
    activation: Activation, threshold_output: bool, optimizer: Optimizer, unrolled: bool = False
) -> SweepFn:
    """One full-batch update of every network, in place. Returns E and the number of correct
    patterns [N] *before* the update, and records in `solved_at` the first update count at which a
    network classified all 64 patterns."""
    update = UPDATES[optimizer]

    def sweep(
        theta: Tensor,
        state: tuple[Tensor, ...],
        hyper: Tensor,  # [lr, momentum]
        task: Task,
        solved_at: Tensor,  # [N] int64, -1 until solved
        updates_done: Tensor,  # 0-d int64
    ) -> tuple[Tensor, Tensor]:
        grad, loss, correct = loss_and_gradients(
            theta, task, activation, threshold_output, unrolled
        )
        mark_solved(solved_at, correct, updates_done)
        updates_done.add_(1)
        update(theta, grad, state, hyper, updates_done.to(theta.dtype))
        return loss, correct

    return sweep


# -- the simulation --------------------------------------------------------------------------

Backend = Literal["auto", "kernel", "compile", "eager"]
BACKENDS: tuple[str, ...] = get_args(Backend)


class TorchSweeps:
    """Sweeps as torch operations on any device and dtype, optionally fused by torch.compile.
    Updates theta, the optimizer state and solved_at in place."""

    def __init__(
        self,
        setup: Setup,
        task: Task,
        theta: Tensor,
        state: tuple[Tensor, ...],
        solved_at: Tensor,
        compile: bool,
    ) -> None:
        self.setup, self.task = setup, task
        self.theta, self.state, self.solved_at = theta, state, solved_at
        self.hyper = torch.tensor(
            [setup.lr, setup.momentum], device=theta.device, dtype=theta.dtype
        )
        self.updates_done = torch.zeros((), device=theta.device, dtype=torch.int64)
        unrolled = compile  # the unrolled contractions only pay off when fused
        self._sweep = make_sweep(
            setup.activation, setup.threshold_output, setup.optimizer, unrolled
        )
        if compile:
            self._sweep = torch.compile(self._sweep, dynamic=False, fullgraph=True)
            # The first call compiles; it runs on copies so the simulation starts clean.
            self._sweep(
                theta.clone(),
                tuple(s.clone() for s in state),
                self.hyper,
                task,
                solved_at.clone(),
                self.updates_done.clone(),
            )

    def __call__(self, sweeps: int) -> tuple[Tensor, Tensor]:
        """`sweeps` sweeps; E and the number of correct patterns [N] before the last update."""
        for _ in range(sweeps):
            loss, correct = self._sweep(
                self.theta, self.state, self.hyper, self.task, self.solved_at, self.updates_done
            )
        return loss, correct

    def evaluate(self) -> tuple[Tensor, Tensor]:
        """E and correct patterns at the current weights (marking newly solved networks)."""
        setup = self.setup
        _, loss, correct = loss_and_gradients(
            self.theta, self.task, setup.activation, setup.threshold_output
        )
        mark_solved(self.solved_at, correct, self.updates_done)
        return loss, correct

    def close(self) -> None:
        pass


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
    from mirror_symmetry.kernel import KernelUnavailable, load

    try:
        load()
    except KernelUnavailable as exc:
        raise UsageError(f"{exc}; use --backend compile or eager") from exc


def start_sweeps(
    setup: Setup,
    task: Task,
    theta: Tensor,
    state: tuple[Tensor, ...],
    solved_at: Tensor,
    backend: Backend,
    warn: Callable[[str], None],
) -> tuple[TorchSweeps | FusedSweeps, str]:
    """The sweep implementation for `backend` and the name of what runs. auto: the fused kernel
    for float32 on the CPU, else torch.compile; each falls back to the next with a warning that
    says the expected time."""
    if backend == "kernel":
        check_kernel()
    if backend == "kernel" or (
        backend == "auto" and theta.device.type == "cpu" and theta.dtype == torch.float32
    ):
        from mirror_symmetry.kernel import FusedSweeps, KernelUnavailable

        try:
            return FusedSweeps(setup, task, theta, state, solved_at), "kernel"
        except KernelUnavailable as exc:
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


# Peak memory, measured with `train` (float32, 30 sweeps, 100,000 and 400,000 networks) and
# rounded up: about 820 bytes per network with the kernel (initial draws in float64, weights,
# optimizer state, final copies, the solution summary); torch sweeps add [64, N] per-pattern
# tensors, about 13 of them alive at once in an eager sweep.
BYTES_PER_NETWORK = 1024
TORCH_PATTERN_TENSORS = 16
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
