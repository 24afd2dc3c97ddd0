"""The BCE floor and the excess BCE: exact on hand-made pixels, never below zero."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ae_overfit.model import Autoencoder, bce_entropy_floor, reconstruction_metrics
from mnistlab.batches import BatchSource
from mnistlab.data import Split, load_split


def close(actual: torch.Tensor, expected, tol: float = 1e-6) -> None:
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual.detach(), expected, rtol=tol, atol=tol)


def binary_entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -p * math.log(p) - (1 - p) * math.log(1 - p)


class Perfect(torch.nn.Module):
    """Reconstructs its input exactly: logits = logit(pixels), clipped where it is 0 or 1."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.logit(pixels.flatten(1).double(), eps=1e-12)


def hand_made_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 28x28 images as an unstandardised BatchSource holds them (the run's data), and their
    pixels on the data's k/255 grid."""
    grey_levels = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    grey_levels[0, 0, 0, :4] = torch.tensor([255, 128, 64, 0])
    grey_levels[1, 0, 5, 5] = 255  # binary image: floor 0
    source = BatchSource(Split(grey_levels, torch.zeros(2, dtype=torch.long)), batch_size=2)
    return source.images, grey_levels.float() / 255


def test_targets_are_the_datasets_own_pixels() -> None:
    images, pixels = hand_made_images()
    targets = images.flatten(1)
    assert torch.equal(targets, pixels.flatten(1))


def test_floor_of_a_hand_made_batch_is_the_summed_binary_entropy() -> None:
    images, _ = hand_made_images()
    metrics = reconstruction_metrics(Perfect())(images, torch.zeros(2))
    expected = binary_entropy(128 / 255) + binary_entropy(64 / 255)
    assert metrics["floor"][0].item() == pytest.approx(expected, rel=1e-6)
    assert metrics["floor"][1].item() == 0.0
    # The perfect reconstruction reaches the floor exactly: no excess left.
    assert metrics["bce"][0].item() == pytest.approx(expected, rel=1e-5)
    assert metrics["excess"].abs().max().item() < 1e-5


def test_excess_is_never_below_zero_for_any_reconstruction() -> None:
    torch.manual_seed(0)
    hand_made, _ = hand_made_images()
    random_pixels = torch.randint(0, 256, (30, 1, 28, 28)) / 255
    images = torch.cat([hand_made, random_pixels])
    for hidden, latent in [((8,), 2), ((64, 32), 16)]:
        metrics = reconstruction_metrics(Autoencoder(hidden, latent))(images, None)
        assert metrics["excess"].min().item() > -1e-4


def test_mnist_floor_is_tens_of_nats(data_dir: Path) -> None:
    """The fact the question missed: ~46 of its ~55 nats can never be learned."""
    pixels = load_split("mnist", "test", data_dir).images[:2000].float() / 255
    metrics = reconstruction_metrics(Autoencoder((32,), 8))(pixels, None)
    assert 40 < metrics["floor"].mean().item() < 52
    assert metrics["excess"].min().item() > -1e-4


def test_bce_entropy_floor_is_zero_for_binary_and_log2_per_feature_at_half():
    targets = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.5, 0.5, 0.5, 1.0]], dtype=torch.float64)
    close(bce_entropy_floor(targets), [0.0, 3 * math.log(2.0)])
    close(bce_entropy_floor(targets, reduction="sum"), 3 * math.log(2.0))
    close(bce_entropy_floor(targets, reduction="mean"), 1.5 * math.log(2.0))


def test_bce_entropy_floor_sums_over_all_feature_dims():
    targets = torch.tensor([[[[0.2, 0.7], [1.0, 0.9]]]], dtype=torch.float64)  # [1, 1, 2, 2]
    expected = sum(binary_entropy(t) for t in (0.2, 0.7, 1.0, 0.9))
    close(bce_entropy_floor(targets), [expected])


def test_bce_entropy_floor_is_the_minimum_of_summed_bce():
    targets = torch.tensor([[0.2, 0.7, 1.0], [0.5, 0.0, 0.9]], dtype=torch.float64)
    floor = bce_entropy_floor(targets)

    def summed_bce(recon: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy(recon, targets, reduction="none").sum(dim=1)

    close(summed_bce(targets), floor)
    for shift in (-0.05, 0.05):
        other = (targets + shift).clamp(1e-3, 1 - 1e-3)
        assert (summed_bce(other) > floor).all()


def test_bce_entropy_floor_rejects_targets_outside_unit_interval():
    for bad in (1.2, -0.1):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            bce_entropy_floor(torch.tensor([[0.5, bad]]))
    with pytest.raises(ValueError, match="reduction"):
        bce_entropy_floor(torch.tensor([[0.5]]), reduction="total")
