"""Sweeps as torch operations: the hand-written forward and backward pass of N networks at once,
the optimizers batched by hand, and `TorchSweeps`, which runs them eagerly or fused by
torch.compile.

All 17 weights of every network live in one tensor `theta` of shape [17, N] with the runs
*last*: every elementwise operation then runs across runs in contiguous memory. Rows of theta:
W1[j, i] at 6*j + i, then b1 (2 rows), W2 (2 rows), b2 (1 row). Gradients are written out by
hand (tests check them against autograd on an ordinary nn.Module).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from mirror_symmetry.setup import (
    ADAM_BETA2,
    HIDDEN,
    INPUTS,
    OPTIMIZER_EPS,
    PATTERNS,
    RMSPROP_ALPHA,
    Activation,
    Optimizer,
    Setup,
    Task,
)

# [64, N] per-pattern tensors a torch sweep holds at once, rounded up (about 13 in an eager
# sweep), for the memory estimates.
TORCH_PATTERN_TENSORS = 16


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
