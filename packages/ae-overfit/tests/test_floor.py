"""The BCE floor and the excess BCE: exact on hand-made pixels, never below zero."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ae_overfit.model import Autoencoder, pixel_targets, reconstruction_metrics
from mnistlab.batches import Normalisation
from mnistlab.data import load_split

MNIST_NORM = Normalisation(0.1307, 0.3081)


def binary_entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -p * math.log(p) - (1 - p) * math.log(1 - p)


class Perfect(torch.nn.Module):
    """Reconstructs its input exactly: logits = logit(pixels), clipped where it is 0 or 1."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.logit(pixels.flatten(1).double(), eps=1e-12)


def hand_made_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 28x28 images on the data's k/255 grid, normalised as BatchSource stores them."""
    pixels = torch.zeros(2, 1, 28, 28)
    pixels[0, 0, 0, :4] = torch.tensor([255, 128, 64, 0]) / 255
    pixels[1, 0, 5, 5] = 1.0  # binary image: floor 0
    return (pixels - MNIST_NORM.mean) / MNIST_NORM.std, pixels


def test_targets_are_the_datasets_own_pixels() -> None:
    normalised, pixels = hand_made_images()
    targets = pixel_targets(normalised, MNIST_NORM)
    assert torch.equal(targets, pixels.flatten(1))


def test_floor_of_a_hand_made_batch_is_the_summed_binary_entropy() -> None:
    normalised, _ = hand_made_images()
    metrics = reconstruction_metrics(Perfect(), MNIST_NORM)(normalised, torch.zeros(2))
    expected = binary_entropy(128 / 255) + binary_entropy(64 / 255)
    assert metrics["floor"][0].item() == pytest.approx(expected, rel=1e-6)
    assert metrics["floor"][1].item() == 0.0
    # The perfect reconstruction reaches the floor exactly: no excess left.
    assert metrics["bce"][0].item() == pytest.approx(expected, rel=1e-5)
    assert metrics["excess"].abs().max().item() < 1e-5


def test_excess_is_never_below_zero_for_any_reconstruction() -> None:
    torch.manual_seed(0)
    normalised, _ = hand_made_images()
    images = torch.cat([normalised, torch.randn(30, 1, 28, 28)])  # random pixels too
    images = (pixel_targets(images, MNIST_NORM).view(-1, 1, 28, 28) - 0.1307) / 0.3081
    for hidden, latent in [((8,), 2), ((64, 32), 16)]:
        metrics = reconstruction_metrics(Autoencoder(hidden, latent), MNIST_NORM)(images, None)
        assert metrics["excess"].min().item() > -1e-4


def test_mnist_floor_is_tens_of_nats(data_dir: Path) -> None:
    """The fact the question missed: ~46 of its ~55 nats can never be learned."""
    pixels = load_split("mnist", "test", data_dir).images[:2000].float() / 255
    normalised = (pixels - MNIST_NORM.mean) / MNIST_NORM.std
    metrics = reconstruction_metrics(Autoencoder((32,), 8), MNIST_NORM)(normalised, None)
    assert 40 < metrics["floor"].mean().item() < 52
    assert metrics["excess"].min().item() > -1e-4
