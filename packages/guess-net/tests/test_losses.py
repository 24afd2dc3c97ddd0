"""The two focal-loss forms, the source's gamma ramp and the AUROC, against hand values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from guess_net.metrics import auroc
from mnistlab.losses import focal_loss, normalised_focal_loss, ramped_gamma

# p_true = 0.75 (target 1 of logits [0, ln 3]) and 0.5 (target 0 of logits [0, 0]).
LOGITS = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
TARGETS = torch.tensor([1, 0])


def test_source_focal_is_the_normalised_weighted_mean_of_cross_entropy() -> None:
    w1, w2 = 0.25**2, 0.5**2
    expected = (w1 * -math.log(0.75) + w2 * -math.log(0.5)) / (w1 + w2)
    assert normalised_focal_loss(LOGITS, TARGETS, gamma=2.0).item() == pytest.approx(expected)


def test_lin_focal_has_alpha_and_no_normalisation() -> None:
    expected = 0.25 * (0.25**2 * -math.log(0.75) + 0.5**2 * -math.log(0.5)) / 2
    value = focal_loss(LOGITS, TARGETS, alpha=0.25, gamma=2.0).item()
    assert value == pytest.approx(expected)
    # The forms differ by alpha and the normaliser: source = lin(alpha=None) * N / sum(w).
    unweighted = focal_loss(LOGITS, TARGETS, alpha=None, gamma=2.0).item()
    source = normalised_focal_loss(LOGITS, TARGETS, gamma=2.0).item()
    assert source == pytest.approx(unweighted * 2 / (0.25**2 + 0.5**2))


def test_source_focal_at_gamma_zero_is_cross_entropy() -> None:
    logits, targets = torch.randn(32, 10), torch.randint(0, 10, (32,))
    value = normalised_focal_loss(logits, targets, gamma=0.0)
    torch.testing.assert_close(value, F.cross_entropy(logits, targets))


def test_source_focal_treats_its_weights_as_constants() -> None:
    logits = torch.randn(8, 10, requires_grad=True)
    targets = torch.randint(0, 10, (8,))
    normalised_focal_loss(logits, targets, gamma=2.0).backward()
    with torch.no_grad():
        p_true = F.softmax(logits, 1).gather(1, targets[:, None]).squeeze(1)
        weights = (1 - p_true) ** 2
    reference = logits.detach().clone().requires_grad_()
    (
        F.cross_entropy(reference, targets, reduction="none") * weights / weights.sum()
    ).sum().backward()
    torch.testing.assert_close(logits.grad, reference.grad)


def test_gamma_ramp_is_half_way_at_three_fifths_and_rises() -> None:
    epochs = 10  # centre 3/5 * 10 - 1 = epoch 5
    assert ramped_gamma(2.0, 5, epochs) == pytest.approx(1.0)
    values = [ramped_gamma(2.0, e, epochs) for e in range(epochs)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    assert values[0] == pytest.approx(2 / (1 + math.exp(1.0)))


def test_auroc_counts_ties_as_half() -> None:
    positives = torch.tensor([1, 1, 0, 0])
    assert auroc(torch.tensor([0.9, 0.8, 0.1, 0.2]), positives) == 1.0
    assert auroc(torch.tensor([0.1, 0.2, 0.9, 0.8]), positives) == 0.0
    # Pairs (pos, neg): (0.5, 0.5) tie, (0.5, 0.1) win, (0.7, 0.5) win, (0.7, 0.1) win.
    assert auroc(torch.tensor([0.5, 0.7, 0.5, 0.1]), positives) == pytest.approx(3.5 / 4)
    assert math.isnan(auroc(torch.tensor([0.3, 0.4]), torch.tensor([1, 1])))
