"""One ordinary network trained the usual way: nn.Linear layers, autograd and a torch.optim
optimizer. The tests hold the batched simulation to it; the benchmark times a loop of these."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mirror_symmetry.setup import (
    ADAM_BETA2,
    HIDDEN,
    INPUTS,
    OPTIMIZER_EPS,
    RMSPROP_ALPHA,
    Activation,
    Setup,
    all_patterns,
    is_symmetric,
    pattern_weights,
)
from mirror_symmetry.sim import MirrorNets

ACTIVATION_MODULES: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "hardsigmoid": nn.Hardsigmoid,
    "hardtanh": nn.Hardtanh,
    "silu": nn.SiLU,
    "relu": nn.ReLU,
}


class MirrorNet(nn.Module):
    """6 inputs -> 2 hidden units -> 1 logistic output."""

    def __init__(self, activation: Activation) -> None:
        super().__init__()
        self.hidden = nn.Linear(INPUTS, HIDDEN)
        self.activation = ACTIVATION_MODULES[activation]()
        self.output = nn.Linear(HIDDEN, 1)

    def forward(self, patterns: Tensor) -> Tensor:
        return torch.sigmoid(self.output(self.activation(self.hidden(patterns)))).squeeze(-1)

    def load_run(self, nets: MirrorNets, run: int) -> MirrorNet:
        """Take network `run` of a batch, in this network's dtype."""
        with torch.no_grad():
            self.hidden.weight.copy_(nets.W1[run])
            self.hidden.bias.copy_(nets.b1[run])
            self.output.weight.copy_(nets.W2[run])
            self.output.bias.copy_(nets.b2[run])
        return self

    def flat(self, gradients: bool = False) -> Tensor:
        """The 17 weights (or their gradients) in the simulation's row order."""
        parameters = (self.hidden.weight, self.hidden.bias, self.output.weight, self.output.bias)
        return torch.cat([(p.grad if gradients else p).detach().reshape(-1) for p in parameters])


class ReferenceLoss:
    """The study's loss for one network: 1/2 * sum or mean over the 64 patterns of the weighted
    squared error, optionally on the thresholded output with a straight-through gradient."""

    def __init__(self, setup: Setup, dtype: torch.dtype = torch.float64) -> None:
        patterns = all_patterns()
        symmetric = is_symmetric(patterns)
        self.setup = setup
        self.patterns = patterns.to(dtype)
        self.targets = symmetric.to(dtype)
        self.weights = pattern_weights(setup, symmetric).to(dtype)

    def __call__(self, net: MirrorNet) -> Tensor:
        output = net(self.patterns)
        if self.setup.threshold_output:
            output = output + ((output > 0.5).to(output.dtype) - output).detach()
        squared = self.weights * (output - self.targets) ** 2
        return 0.5 * squared.sum() if self.setup.loss_reduction == "sum" else squared.mean()


def reference_optimizer(net: MirrorNet, setup: Setup) -> torch.optim.Optimizer:
    """torch.optim's optimizer for the setup. SGD with momentum equals the paper's rule:
    its buffer b = momentum * b + g gives the paper's change dw = -lr * b."""
    if setup.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=setup.lr, momentum=setup.momentum)
    if setup.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            net.parameters(),
            lr=setup.lr,
            alpha=RMSPROP_ALPHA,
            eps=OPTIMIZER_EPS,
            momentum=setup.momentum,
        )
    return torch.optim.Adam(
        net.parameters(), lr=setup.lr, betas=(setup.momentum, ADAM_BETA2), eps=OPTIMIZER_EPS
    )


def train_reference(net: MirrorNet, setup: Setup, sweeps: int) -> None:
    """`sweeps` full-batch updates of one network, the usual way."""
    loss_fn = ReferenceLoss(setup, next(net.parameters()).dtype)
    optimizer = reference_optimizer(net, setup)
    for _ in range(sweeps):
        optimizer.zero_grad()
        loss_fn(net).backward()
        optimizer.step()
