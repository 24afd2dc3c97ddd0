"""The paper's-solution criteria on hand-made weights."""

from __future__ import annotations

import torch

from mirror_symmetry.sim import MirrorNets
from mirror_symmetry.solution import solution_shape

PAPER_UNIT = [3.6, -7.2, 14.4, -14.4, 7.2, -3.6]


def nets_with_hidden_weights(*units: list[list[float]]) -> MirrorNets:
    """Networks whose input-to-hidden weights are given; the other weights do not matter here."""
    w1 = torch.tensor(units, dtype=torch.float64)  # [N, 2, 6]
    theta = torch.cat([w1.reshape(len(units), 12), torch.zeros(len(units), 5)], dim=1).T
    return MirrorNets(theta)


def test_the_papers_weights_pass_every_criterion():
    flipped = [-w for w in PAPER_UNIT]
    # Pair order within a unit does not matter, only the magnitudes 1:2:4.
    shuffled = [14.4, 3.6, -7.2, 7.2, -3.6, -14.4]
    nets = nets_with_hidden_weights([PAPER_UNIT, flipped], [shuffled, [-w for w in shuffled]])
    shape = solution_shape(nets)
    assert shape.paper.tolist() == [True, True]
    assert torch.allclose(shape.step_ratios, torch.tensor(2.0, dtype=torch.float64))


def test_each_criterion_can_fail_on_its_own():
    flipped = [-w for w in PAPER_UNIT]
    not_antisymmetric = [3.6, -7.2, 14.4, -10.0, 7.2, -3.6]
    equal_pairs = [5.0, -5.0, 5.0, -5.0, 5.0, -5.0]
    nets = nets_with_hidden_weights(
        [not_antisymmetric, flipped],
        [equal_pairs, [-w for w in equal_pairs]],
        [PAPER_UNIT, PAPER_UNIT],  # copies, but not sign-flipped
        [PAPER_UNIT, [2 * w for w in flipped]],  # sign-flipped, but twice the size
    )
    shape = solution_shape(nets)
    assert shape.antisymmetric.tolist() == [False, True, True, True]
    assert shape.ratio_1_2_4.tolist() == [True, False, True, True]
    assert shape.opposite_copies.tolist() == [True, True, False, False]
    assert not shape.paper.any()
