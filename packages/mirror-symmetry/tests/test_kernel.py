"""The fused C kernel against autograd and itself, and what happens without it (its optimizers
are tested beside the torch ones in test_gradients.py)."""

from __future__ import annotations

import stat

import pytest
import torch
from torch.testing import assert_close

from mirror_symmetry import kernel
from mirror_symmetry.reference import MirrorNet, ReferenceLoss
from mirror_symmetry.setup import Setup, Task
from mirror_symmetry.sim import MirrorNets, initial_theta, simulate
from mirror_symmetry.study import STUDY
from mirror_symmetry.sweeps import ACTIVATIONS

LANES = kernel.LANES
CPU = torch.device("cpu")


def wide_weights(seed: int) -> torch.Tensor:
    """[17, 32] float32: lanes 0-15 up to +-2 (every kink and plateau is crossed), lanes 16-31 up
    to +-40, where exp(-net input) no longer factorises safely and the kernel computes it
    directly."""
    theta = initial_theta(2 * LANES, seed=seed, init="uniform", init_range=2.0)
    theta[:, LANES:] *= 20
    return theta.float()


def one_sweep(setup: Setup, theta: torch.Tensor) -> torch.Tensor:
    """-(change of the weights) after one plain gradient step with lr 1: the kernel's gradient."""
    state = (torch.zeros_like(theta),)
    solved_at = torch.full((theta.shape[1],), -1, dtype=torch.int64)
    task = Task.build(setup, CPU, torch.float32)
    after = theta.clone()
    sweeps = kernel.FusedSweeps(setup, task, after, state, solved_at)
    try:
        sweeps(1)
    finally:
        sweeps.close()
    return (theta - after).double()


@pytest.mark.parametrize("symmetric_weight", [1.0, 7.0])
@pytest.mark.parametrize("threshold_output", [False, True], ids=["plain", "thresholded"])
@pytest.mark.parametrize("loss_reduction", ["sum", "mean"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_kernel_gradients_equal_autograd_on_one_network(
    activation, loss_reduction, threshold_output, symmetric_weight
):
    setup = Setup(
        activation=activation,
        loss_reduction=loss_reduction,
        threshold_output=threshold_output,
        symmetric_weight=symmetric_weight,
        lr=1.0,
        momentum=0.0,
    )
    theta = wide_weights(seed=3)
    grad = one_sweep(setup, theta)
    reference_loss = ReferenceLoss(setup)
    nets = MirrorNets(theta.double())
    for run in range(theta.shape[1]):
        net = MirrorNet(activation).double().load_run(nets, run)
        reference_loss(net).backward()
        # float32 arithmetic, and the step theta - g rounds to the float32 grid of theta (|theta|
        # up to 40 here); a wrong derivative is off by far more.
        atol = 2e-6 if run < LANES else 2e-5
        assert_close(grad[:, run], net.flat(gradients=True), rtol=1e-4, atol=atol)


def test_kernel_gradient_test_can_fail():
    """The comparison above notices a wrong derivative (sigmoid's slope where tanh's belongs)."""
    theta = wide_weights(seed=3)
    grad = one_sweep(Setup(activation="sigmoid", lr=1.0, momentum=0.0), theta)
    net = MirrorNet("tanh").double().load_run(MirrorNets(theta.double()), 0)
    ReferenceLoss(Setup(activation="tanh"))(net).backward()
    assert not torch.allclose(grad[:, 0], net.flat(gradients=True), rtol=1e-4, atol=2e-6)


def test_kernel_and_eager_agree_on_the_papers_outcomes():
    setup = Setup(runs=256, sweeps=1425)
    fused = simulate(setup, seed=0, backend="kernel")
    eager = simulate(setup, seed=0, backend="eager")
    assert [s.counts for s in fused.history] == [s.counts for s in eager.history]
    # float32 rounding may tip a network across 0.5 one sweep earlier or later, never more
    assert (fused.solved_at - eager.solved_at).abs().max() <= 1
    assert int((fused.solved_at != eager.solved_at).sum()) <= 2


def test_a_network_does_not_depend_on_its_neighbours_weights():
    """Whether the lanes beside it take the factorised or the direct exponentials, a network's
    arithmetic is its own: bitwise the same trajectory."""
    setup = Setup(activation="tanh", lr=0.5)
    calm = wide_weights(seed=8)[:, :LANES].clone()
    mixed = calm.clone()
    mixed[:, 1::2] = wide_weights(seed=9)[:, LANES + 1 :: 2]  # every other lane: large weights
    results = []
    for theta in (calm, mixed):
        state = (torch.zeros_like(theta),)
        solved_at = torch.full((LANES,), -1, dtype=torch.int64)
        sweeps = kernel.FusedSweeps(
            setup, Task.build(setup, CPU, torch.float32), theta, state, solved_at
        )
        loss, correct = sweeps(300)
        sweeps.close()
        results.append((theta[:, ::2].clone(), loss[::2], correct[::2]))
    for calm_part, mixed_part in zip(*results, strict=True):
        assert torch.equal(calm_part, mixed_part)


def test_a_failing_compiler_is_reported_in_one_line(tmp_path, monkeypatch):
    compiler = tmp_path / "broken-cc"
    compiler.write_text("#!/bin/sh\necho 'broken-cc: error: no such luck' >&2\nexit 1\n")
    compiler.chmod(compiler.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CC", str(compiler))
    with pytest.raises(kernel.KernelUnavailable, match="broken-cc could not build") as error:
        kernel.build(tmp_path / "kernels")
    assert "\n" not in str(error.value)
    assert not list((tmp_path / "kernels").iterdir())  # no partial library left behind


@pytest.fixture
def missing_cc(monkeypatch):
    """$CC names no compiler, and no kernel is loaded yet in this process."""
    monkeypatch.setenv("CC", "/nonexistent/cc")
    kernel.load.cache_clear()
    yield
    kernel.load.cache_clear()


def test_a_missing_cc_is_refused_in_one_line_not_replaced_by_cc(missing_cc, capsys, tmp_path):
    with pytest.raises(kernel.KernelUnavailable, match="CC=/nonexistent/cc is not an executable"):
        kernel.find_compiler()
    with pytest.raises(SystemExit) as exit_:
        STUDY.main(["--backend", "kernel", "--runs", "64", "--out-dir", str(tmp_path)])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error
    assert error.startswith("error: CC=/nonexistent/cc") and "--backend compile" in error
    assert not any(tmp_path.iterdir())


def test_auto_without_the_kernel_warns_with_the_expected_time_and_compiles(missing_cc):
    warnings: list[str] = []
    sim = simulate(Setup(runs=30_000, sweeps=100), seed=0, backend="auto", warn=warnings.append)
    assert sim.backend == "compile"  # this machine has a C++ compiler for torch.compile
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: CC=/nonexistent/cc is not an executable")
    assert "running the torch.compile version instead (expected ~1 s" in warnings[0]


def test_without_any_compiler_auto_runs_eagerly_and_says_how_long(monkeypatch):
    def unavailable():
        raise kernel.KernelUnavailable("no C compiler found (set CC, or install gcc or clang)")

    def no_cxx(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(kernel, "load", unavailable)
    monkeypatch.setattr(torch, "compile", no_cxx)
    warnings: list[str] = []
    sim = simulate(Setup(runs=10_000, sweeps=3), seed=0, backend="auto", warn=warnings.append)
    assert sim.backend == "eager"
    assert [w.split(";")[0] for w in warnings] == [
        "warning: no C compiler found (set CC, or install gcc or clang)",
        "warning: torch.compile failed (InvalidCxxCompiler: No working C++ compiler found)",
    ]
    assert "running eagerly (expected under a second" in warnings[1]


def test_an_unwritable_cache_is_reported_in_one_line(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(
        kernel.KernelUnavailable, match="cannot write the kernel cache.*MNISTLAB_CACHE"
    ):
        kernel.build(blocker / "kernels")
