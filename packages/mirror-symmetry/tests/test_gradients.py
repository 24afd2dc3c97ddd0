"""The hand-written batched forward/backward and optimizers against one ordinary network."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from mirror_symmetry.reference import MirrorNet, ReferenceLoss, train_reference
from mirror_symmetry.setup import Setup, Task
from mirror_symmetry.sim import MirrorNets, initial_theta, simulate
from mirror_symmetry.sweeps import ACTIVATIONS, loss_and_gradients

RUNS = 5


@pytest.mark.parametrize("unrolled", [False, True], ids=["matmul", "unrolled"])
@pytest.mark.parametrize("symmetric_weight", [1.0, 7.0])
@pytest.mark.parametrize("threshold_output", [False, True], ids=["plain", "thresholded"])
@pytest.mark.parametrize("loss_reduction", ["sum", "mean"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_batched_gradients_equal_autograd_on_one_network(
    activation, loss_reduction, threshold_output, symmetric_weight, unrolled
):
    setup = Setup(
        runs=RUNS,
        activation=activation,
        loss_reduction=loss_reduction,
        threshold_output=threshold_output,
        symmetric_weight=symmetric_weight,
    )
    # Weights up to +-2 put the hidden units' inputs on both sides of every kink and plateau.
    theta = initial_theta(RUNS, seed=3, init="uniform", init_range=2.0)
    task = Task.build(setup, torch.device("cpu"), torch.float64)
    grad, loss, correct = loss_and_gradients(theta, task, activation, threshold_output, unrolled)

    reference_loss = ReferenceLoss(setup)
    nets = MirrorNets(theta)
    # PyTorch's hardsigmoid backward uses the float32 constant 1/6 even in float64.
    rtol = 1e-7 if activation == "hardsigmoid" else 1e-10
    for run in range(RUNS):
        net = MirrorNet(activation).double().load_run(nets, run)
        expected = reference_loss(net)
        expected.backward()
        assert_close(grad[:, run], net.flat(gradients=True), rtol=rtol, atol=1e-13)
        assert_close(loss[run], expected.detach(), rtol=1e-12, atol=0)
        fired = net(reference_loss.patterns) > 0.5
        assert correct[run] == (fired == (reference_loss.targets > 0.5)).sum()


def test_gradient_test_can_fail():
    """The comparison above notices a wrong derivative (here: tanh's slope used for sigmoid)."""
    setup = Setup(runs=RUNS)
    theta = initial_theta(RUNS, seed=3, init="uniform", init_range=2.0)
    task = Task.build(setup, torch.device("cpu"), torch.float64)
    grad, _, _ = loss_and_gradients(theta, task, "sigmoid", False)
    net = MirrorNet("tanh").double().load_run(MirrorNets(theta), 0)
    ReferenceLoss(setup)(net).backward()
    assert not torch.allclose(grad[:, 0], net.flat(gradients=True))


def test_mean_loss_gradient_is_the_sum_loss_gradient_over_32():
    theta = initial_theta(RUNS, seed=3, init="uniform", init_range=2.0)
    cpu, dtype = torch.device("cpu"), torch.float64
    grad_sum, loss_sum, _ = loss_and_gradients(
        theta, Task.build(Setup(loss_reduction="sum"), cpu, dtype), "sigmoid", False
    )
    grad_mean, loss_mean, _ = loss_and_gradients(
        theta, Task.build(Setup(loss_reduction="mean"), cpu, dtype), "sigmoid", False
    )
    # 1/2 * sum vs 1/64 * sum: a factor 2/64 = 1/32, a power of two, so exact in floating point.
    assert torch.equal(grad_mean * 32, grad_sum)
    assert torch.equal(loss_mean * 32, loss_sum)


@pytest.mark.parametrize(
    ("optimizer", "lr", "momentum"),
    [
        ("sgd", 0.1, 0.9),
        ("sgd", 0.5, 0.0),
        ("rmsprop", 0.8, 0.1),
        ("rmsprop", 0.01, 0.0),
        ("adam", 0.05, 0.9),
    ],
)
@pytest.mark.parametrize(
    ("backend", "dtype", "rtol", "atol"),
    [
        ("eager", torch.float64, 1e-9, 1e-11),
        ("kernel", torch.float32, 1e-4, 1e-5),  # float32 against the float64 reference
    ],
)
def test_batched_optimizers_follow_torch_optim(optimizer, lr, momentum, backend, dtype, rtol, atol):
    setup = Setup(runs=3, sweeps=40, optimizer=optimizer, lr=lr, momentum=momentum)
    sim = simulate(setup, seed=5, dtype=dtype, backend=backend)
    assert sim.backend == backend
    start = MirrorNets(initial_theta(setup.runs, 5, setup.init, setup.init_range))
    final = sim.final.theta().double()
    for run in range(setup.runs):
        net = MirrorNet(setup.activation).double().load_run(start, run)
        train_reference(net, setup, setup.sweeps)
        assert_close(final[:, run], net.flat(), rtol=rtol, atol=atol)
