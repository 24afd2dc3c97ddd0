"""Local-loss options. Defaults are the paper's MNIST recipe (anokland/local-loss
`run_experiments.sh`); every field left at None is filled from the dataset's recipe, the net
and the loss, and the resolved value is what config.json records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

from mnistlab.classify import ClassifierConfig
from mnistlab.config import require

Net = Literal["mlp", "vgg8b"]
Loss = Literal["global", "pred", "sim", "predsim", "bio-predsim"]
Nonlinearity = Literal["relu", "leakyrelu"]


class Recipe(NamedTuple):
    """A dataset's training recipe from the original `run_experiments.sh`."""

    epochs: int
    milestones: tuple[int, ...]
    dropout: dict[str, float]  # per net
    translate: int
    flip: bool


RECIPES = {
    "mnist": Recipe(100, (50, 75, 89, 94), {"mlp": 0.1, "vgg8b": 0.2}, 2, False),
    "fashion-mnist": Recipe(200, (100, 150, 175, 188), {"mlp": 0.025, "vgg8b": 0.1}, 2, True),
    "kmnist": Recipe(100, (50, 75, 89, 94), {"mlp": 0.2, "vgg8b": 0.3}, 0, False),
}
# The original code picks the nonlinearity per loss: LeakyReLU(0.01) wherever sim is involved.
NONLINEARITY: dict[str, Nonlinearity] = {
    "global": "relu",
    "pred": "relu",
    "sim": "leakyrelu",
    "predsim": "leakyrelu",
    "bio-predsim": "leakyrelu",
}
# Weight of the similarity term: 0.99 for predsim, 0.01 for the backprop-free variant.
BETA = {"predsim": 0.99, "bio-predsim": 0.01}


@dataclass
class LocalLossConfig(ClassifierConfig):
    study: ClassVar[str] = "local-loss"

    net: Net = "mlp"
    """mlp: 784 -> 3x1024 -> 10; vgg8b: conv 128,256,M,256,512,M,512,M,512,M -> FC 1024 -> 10."""
    loss: Loss = "predsim"
    """global: ordinary backprop (the baseline); pred / sim / predsim: every hidden block learns
    from its own loss; bio-predsim: the backprop-free variant (fixed random target projection,
    feedback-alignment decoder)."""
    beta: float | None = None
    """Weight of the similarity term in predsim (default 0.99; bio-predsim 0.01)."""
    nonlin: Nonlinearity | None = None
    """Hidden nonlinearity (default: relu for global and pred, leakyrelu(0.01) otherwise)."""
    dropout: float | None = None
    """Dropout after each hidden block, Dropout2d for conv blocks (default: the dataset's
    recipe, e.g. MNIST mlp 0.1, vgg8b 0.2)."""
    hidden: int = 1024
    """Width of the fully connected hidden layers."""
    hidden_layers: int | None = None
    """Fully connected hidden layers (default: 3 for mlp, 1 after vgg8b's convolutions)."""
    feat_mult: float = 1.0
    """Multiply vgg8b's channel counts by this (the original --feat-mult)."""
    dim_in_decoder: int = 1024
    """Conv activations are average-pooled to at most this many features for the pred decoder."""
    target_proj_size: int = 128
    """bio-predsim: size of the fixed random projection of the one-hot targets."""
    epochs: int | None = None  # type: ignore[assignment]
    """Training epochs (default: the dataset's recipe, 100 for MNIST, 200 for Fashion-MNIST)."""
    lr: float = 5e-4
    """Adam learning rate (every block's optimizer and the output layer's)."""
    milestones: tuple[int, ...] | None = None
    """The lr is multiplied by --lr-decay after each of these epochs, i.e. from the epoch after
    (default: the dataset's recipe, MNIST 50 75 89 94)."""
    lr_decay: float = 0.25
    """Factor applied to the lr at each milestone."""
    translate: int | None = None  # type: ignore[assignment]
    """Random translation of up to N pixels (default: the dataset's recipe, 2; KMNIST 0)."""
    flip: bool | None = None
    """Random horizontal flips during training (default: on for Fashion-MNIST only)."""

    def __post_init__(self) -> None:
        recipe = RECIPES[self.dataset]
        if self.epochs is None:
            self.epochs = recipe.epochs
        if self.milestones is None:
            self.milestones = recipe.milestones
        if self.dropout is None:
            self.dropout = recipe.dropout[self.net]
        if self.translate is None:
            self.translate = recipe.translate
        if self.flip is None:
            self.flip = recipe.flip
        if self.nonlin is None:
            self.nonlin = NONLINEARITY[self.loss]
        if self.beta is None:
            self.beta = BETA.get(self.loss, 0.0)
        if self.hidden_layers is None:
            self.hidden_layers = 3 if self.net == "mlp" else 1
        super().__post_init__()
        require(0 <= self.beta <= 1, f"--beta must be in [0, 1], got {self.beta}")
        require(
            self.beta == 0 or self.loss in BETA,
            f"--beta only applies to predsim losses, not --loss {self.loss}",
        )
        require(0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")
        require(self.hidden >= 1, f"--hidden must be >= 1, got {self.hidden}")
        require(self.hidden_layers >= 1, f"--hidden-layers must be >= 1, got {self.hidden_layers}")
        require(
            128 * self.feat_mult >= 1 and self.feat_mult <= 16,
            f"--feat-mult must be in [1/128, 16], got {self.feat_mult}",
        )
        require(
            self.dim_in_decoder >= 1, f"--dim-in-decoder must be >= 1, got {self.dim_in_decoder}"
        )
        require(self.target_proj_size >= 1, "--target-proj-size must be >= 1")
        require(0 < self.lr_decay <= 1, f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        require(
            all(m >= 1 for m in self.milestones)
            and list(self.milestones) == sorted(self.milestones),
            f"--milestones must be increasing epochs >= 1, got {list(self.milestones)}",
        )
        # The recipe's schedule may be cut short: --epochs 10 trains its first 10 epochs, and a
        # resumed run's config.json lists it. A schedule of one's own must fire.
        never_fire = [m for m in self.milestones if m >= self.epochs]
        require(
            tuple(self.milestones) == recipe.milestones or not never_fire,
            f"--milestones {' '.join(map(str, never_fire))} can never fire in --epochs "
            f"{self.epochs} (the lr drops from the epoch after a milestone); choose milestones "
            "below --epochs",
        )

    @property
    def local(self) -> bool:
        """Whether hidden blocks learn from their own losses (every loss but global)."""
        return self.loss != "global"
