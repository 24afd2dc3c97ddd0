"""Seeds, independence of runs, outcome counting and the paper's headline behaviour."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.testing import assert_close

from mirror_symmetry.setup import PATTERNS, Setup, all_patterns, is_symmetric
from mirror_symmetry.sim import INIT_BLOCK, MirrorNets, initial_theta, outcome_counts, simulate
from mnistlab.stats import wilson_interval


def test_task_has_8_symmetric_patterns_of_64():
    patterns = all_patterns()
    assert patterns.shape == (64, 6)
    assert len({tuple(row.tolist()) for row in patterns}) == 64
    symmetric = is_symmetric(patterns)
    assert int(symmetric.sum()) == 8
    assert torch.equal(patterns[symmetric], patterns[symmetric].flip(1))


def test_weights_have_the_per_network_shapes_and_round_trip():
    theta = initial_theta(7, seed=1, init="uniform", init_range=0.3)
    nets = MirrorNets(theta)
    assert [tuple(t.shape) for t in (nets.W1, nets.b1, nets.W2, nets.b2)] == [
        (7, 2, 6),
        (7, 2),
        (7, 1, 2),
        (7, 1),
    ]
    assert torch.equal(nets.theta(), theta)


def test_initialisations_respect_their_ranges():
    uniform = initial_theta(500, seed=0, init="uniform", init_range=0.3)
    assert uniform.abs().max() <= 0.3 and uniform.abs().max() > 0.29
    default = initial_theta(500, seed=0, init="torch", init_range=0.3)
    first_layer, second_layer = default[:14].abs(), default[14:].abs()
    assert first_layer.max() <= 1 / math.sqrt(6) and first_layer.max() > 0.39
    assert second_layer.max() <= 1 / math.sqrt(2) and second_layer.max() > 0.69
    gaussian = initial_theta(20000, seed=0, init="gaussian", init_range=0.3)
    first_std, second_std = gaussian[:14].std().item(), gaussian[14:].std().item()
    assert abs(first_std - 1 / math.sqrt(6)) < 0.01 and abs(second_std - 1 / math.sqrt(2)) < 0.01
    assert gaussian[:14].abs().max() > 1 / math.sqrt(6)  # unbounded, unlike the uniform inits


def test_a_run_is_reproducible_from_its_seed():
    setup = Setup(runs=16, sweeps=200)
    first, second = simulate(setup, seed=4), simulate(setup, seed=4)
    assert torch.equal(first.final.theta(), second.final.theta())
    assert torch.equal(first.solved_at, second.solved_at)
    other = simulate(setup, seed=5)
    assert not torch.equal(first.final.theta(), other.final.theta())


@pytest.mark.parametrize(
    ("backend", "dtype"),
    [("kernel", torch.float32), ("eager", torch.float32), ("eager", torch.float64)],
)
def test_a_run_does_not_depend_on_n_or_its_neighbours(backend, dtype):
    setup = Setup(runs=100, sweeps=1425 if backend == "kernel" else 400)  # eager: seconds
    big = simulate(setup, seed=11, dtype=dtype, backend=backend)
    for runs in (8, 33):
        small = simulate(
            dataclasses.replace(setup, runs=runs), seed=11, dtype=dtype, backend=backend
        )
        assert torch.equal(small.final.theta(), big.final.theta()[:, :runs])
        assert torch.equal(small.final_correct, big.final_correct[:runs])
        assert torch.equal(small.solved_at, big.solved_at[:runs])


def test_initial_weights_do_not_depend_on_n_across_generator_blocks():
    many = initial_theta(INIT_BLOCK + 100, seed=3, init="uniform", init_range=0.3)
    assert torch.equal(initial_theta(50, seed=3, init="uniform", init_range=0.3), many[:, :50])
    assert torch.equal(
        initial_theta(INIT_BLOCK + 30, seed=3, init="uniform", init_range=0.3), many[:, :-70]
    )
    assert len(set(many.flatten().tolist())) == many.numel()  # no block repeats another


def test_outcomes_are_counted_by_final_accuracy():
    correct = torch.tensor([64, 56, 56, 32, 63, 0, 64])
    assert outcome_counts(correct) == (2, 2, 1, 2)


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)


def test_paper_setup_solves_some_networks_but_the_mean_loss_with_the_same_lr_does_not():
    paper = Setup(runs=64, sweeps=1425)
    solved = simulate(paper, seed=0)
    mean = simulate(dataclasses.replace(paper, loss_reduction="mean"), seed=0)
    solved_fraction = float((solved.final_correct == PATTERNS).float().mean())
    assert solved_fraction >= 0.1  # about a third of the networks
    assert int((mean.final_correct == PATTERNS).sum()) == 0
    assert int((mean.final_correct == 56).sum()) == 64  # all of them answer "no" throughout


def test_history_records_every_k_sweeps_and_the_end():
    sim = simulate(Setup(runs=4, sweeps=60), seed=0, record_every=25)
    assert [s.sweep for s in sim.history] == [0, 25, 50, 60]
    assert all(sum(s.counts) == 4 for s in sim.history)


@pytest.mark.slow
def test_compiled_sweeps_match_eager_ones_and_stay_independent():
    setup = Setup(runs=100, sweeps=300)
    eager = simulate(setup, seed=2, dtype=torch.float64, backend="eager")
    compiled = simulate(setup, seed=2, dtype=torch.float64, backend="compile")
    assert compiled.backend == "compile"
    assert_close(compiled.final.theta(), eager.final.theta(), rtol=1e-8, atol=1e-10)
    assert torch.equal(compiled.solved_at, eager.solved_at)
    fewer = simulate(
        dataclasses.replace(setup, runs=40), seed=2, dtype=torch.float64, backend="compile"
    )
    assert torch.equal(fewer.final.theta(), compiled.final.theta()[:, :40])
