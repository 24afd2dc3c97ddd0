"""The question's autoencoder family, its per-image losses, and the BCE floor of the data."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

PIXELS = 28 * 28


Decoder = Literal["question", "relu-everywhere"]


class Autoencoder(nn.Module):
    """784 -> hidden (ReLU each) -> linear latent -> mirrored hidden -> 784 sigmoid.

    decoder "question" (default): the question's `Decoder`, which adds a ReLU only `if i != 0`,
    so its first layer after the latent is linear and the later mirrored layers have a ReLU:
    for [784, 256, 256], latent -> 256 (linear), 256 -> 256, ReLU, 256 -> 784, sigmoid.
    decoder "relu-everywhere": a ReLU after every mirrored hidden layer, that one included.

    `forward` returns the output logits; the sigmoid is folded into the BCE (same loss, stable).
    """

    def __init__(self, hidden: tuple[int, ...], latent: int, decoder: Decoder = "question") -> None:
        super().__init__()
        if decoder not in ("question", "relu-everywhere"):
            raise ValueError(f"decoder must be 'question' or 'relu-everywhere', got {decoder!r}")
        widths = (PIXELS, *hidden)
        encoder: list[nn.Module] = []
        for width_in, width_out in zip(widths, widths[1:], strict=False):
            encoder += [nn.Linear(width_in, width_out), nn.ReLU()]
        encoder.append(nn.Linear(widths[-1], latent))  # linear latent, as in the question
        layers: list[nn.Module] = []
        mirrored = (latent, *reversed(hidden))
        for i, (width_in, width_out) in enumerate(zip(mirrored, mirrored[1:], strict=False)):
            layers.append(nn.Linear(width_in, width_out))
            if i != 0 or decoder == "relu-everywhere":
                layers.append(nn.ReLU())
        layers.append(nn.Linear(mirrored[-1], PIXELS))
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*layers)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(pixels.flatten(1)))


def parameter_count(hidden: tuple[int, ...], latent: int) -> int:
    """Weights and biases of `Autoencoder(hidden, latent)`, without building it."""
    widths = (PIXELS, *hidden, latent)
    encoder = sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
    decoder = sum((b + 1) * a for a, b in zip(widths, widths[1:], strict=False))
    return encoder + decoder


def bce_per_image(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE(sigmoid(logits), targets) summed over the pixels of each image, in nats."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none").sum(1)


def squared_error_per_image(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (torch.sigmoid(logits.float()) - targets).square().sum(1)


def bce_entropy_floor(
    targets: torch.Tensor, reduction: Literal["mean", "sum", "none"] = "none"
) -> torch.Tensor:
    """Per-sample sum of the binary entropy H(t) = -t log t - (1-t) log(1-t), in nats.

    This is the smallest summed BCE(x_hat, t) any reconstruction x_hat can reach for targets t
    in [0, 1] (attained at x_hat = t), so it is the floor to subtract when reading BCE values.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if bool(((targets < 0) | (targets > 1)).any()):
        raise ValueError("targets must lie in [0, 1]")
    # xlogy(t, t) = t * log t with the 0 * log 0 = 0 convention.
    entropy = -torch.special.xlogy(targets, targets) - torch.special.xlogy(1 - targets, 1 - targets)
    per_sample = entropy.flatten(1).sum(1)
    return per_sample if reduction == "none" else getattr(per_sample, reduction)()


def reconstruction_metrics(model: nn.Module):
    """Per-image BCE, its floor (the binary entropy of the targets), the excess BCE above the
    floor, and the squared error, for `Run.evaluate`. `images` are the data's own pixels in
    [0, 1] (read with `standardise=False`), which are also the targets."""

    def per_sample(images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        targets = images.flatten(1)
        logits = model(targets)
        bce = bce_per_image(logits, targets)
        floor = bce_entropy_floor(targets)
        return {
            "bce": bce,
            "floor": floor,
            "excess": bce - floor,
            "mse": squared_error_per_image(logits, targets),
        }

    return per_sample
