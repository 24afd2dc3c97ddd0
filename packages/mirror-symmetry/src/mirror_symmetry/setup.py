"""What is simulated: the paper's 6-2-1 network, the options of a simulation (`Setup`) and the
training set (`Task`). Every other module of the simulation, the fused kernel included, builds
on this one, which imports none of them.

Each network has 6 binary inputs, 2 hidden units and 1 logistic output, with biases everywhere,
and is trained full-batch on all 64 patterns (target 1 for the 8 mirror-symmetric ones).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from mnistlab.config import require

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
Init = Literal["uniform", "torch", "gaussian"]


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
    """uniform: every weight and bias from U(-r, r) with r = --init-range (the paper); torch: nn.Linear's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)); gaussian: N(0, 1/fan_in) for weights and biases (LeCun normal, the report's SiLU trial's "default Gaussian with layer-width-adaptive variance")."""
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
