"""AE-overfit's options. Defaults: the question's autoencoder (encoder 784-256-256, linear
latent, the question's mirrored decoder, sigmoid output, summed BCE) trained with Adam until the
question's convergence rule stops it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from mnistlab.classify import ClassifierConfig
from mnistlab.config import require


@dataclass
class AEConfig(ClassifierConfig):
    study: ClassVar[str] = "ae-overfit"

    hidden: tuple[int, ...] = (256, 256)
    """Encoder hidden widths after the 784 inputs, each with a ReLU; the decoder mirrors them
    (the question's [784,256,256] is --hidden 256 256)."""
    latent: int = 32
    """Width of the linear latent code."""
    decoder: Literal["question", "relu-everywhere"] = "question"
    """question: the question's decoder, whose first layer after the latent has no ReLU (its
    code adds one only `if i != 0`); relu-everywhere: a ReLU after every mirrored hidden layer
    (this study's earlier form, kept for the comparison)."""
    loss: Literal["bce", "mse"] = "bce"
    """Training loss, summed over the 784 pixels of each image; BCE and its excess over the
    floor are reported either way."""
    epochs: int = 200
    """Upper bound on epochs; the convergence rule usually stops a run earlier."""
    converge_window: int = 5
    """Converged when the epoch-average training loss changed by less than --converge-tolerance
    (relative) in each of the last N epochs (the question: 5)."""
    converge_tolerance: float = 0.01
    """Relative change counted as 'no change' (the question: 1%); 0 turns the rule off."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(len(self.hidden) >= 1, "--hidden needs at least one width, e.g. --hidden 256 256")
        require(
            all(isinstance(w, int) and w >= 1 for w in self.hidden),
            f"--hidden widths must be positive integers, got {list(self.hidden)}",
        )
        require(self.latent >= 1, f"--latent must be >= 1, got {self.latent}")
        require(
            self.converge_window >= 1, f"--converge-window must be >= 1, got {self.converge_window}"
        )
        require(
            0 <= self.converge_tolerance < 1,
            f"--converge-tolerance must be in [0, 1), got {self.converge_tolerance}",
        )
