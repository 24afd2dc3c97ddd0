"""Guess-net border training's options. Defaults follow detshawn/dendric-relu where it says
(encoder 784-256-64-8, classifier 8-8-10, dropout 0.15, MSE reconstruction, KL weight 5e-4,
Adam 1e-3, guess net switched on after 2/3 of the epochs); epochs and batch size are CPU-sized
(the source: 64 epochs of batch 8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from guess_net.model import ReservedForm
from mnistlab.classify import ClassifierConfig
from mnistlab.config import RESUMABLE_FIELDS, require

ClassLoss = Literal["ce", "focal-lin", "focal-source"]


@dataclass
class GuessNetConfig(ClassifierConfig):
    study: ClassVar[str] = "guess-net"
    # The gamma ramp and the default routing epoch follow --epochs: a run resumed
    # with another length (even a finished one, extended) would train neither, so it is refused.
    resumable_fields: ClassVar[frozenset[str]] = RESUMABLE_FIELDS - {"epochs"}

    epochs: int = 3
    border: bool = False
    """Border training: phase 1 trains the main half (and the guess net) on everything; from
    --border-epoch on, only the samples the guess net flags go through the reserved half.
    Without it every sample goes through both halves (the same-size baseline)."""
    border_epoch: int | None = None
    """Epochs of phase 1 before routing starts, below --epochs (default: 2/3 of --epochs, at
    least 1). Only with --border."""
    reserved: ReservedForm = "parallel"
    """Form of the reserved half: parallel (its own encoder units, reading the main half's) or
    conditional (the same, with BatchNorm whose affine is modulated by the main z_mean)."""
    flag_threshold: float | None = None
    """A sample is flagged (routed) when the guess net's probability that the classifier is
    right falls below this. The source's 0.5 flags almost nothing once the classifier is ~97%
    right (the guess net's prior), so by default (None) it is chosen on the validation split
    when routing starts and after every routed epoch: the threshold that flags as many
    validation samples as the main half gets wrong."""
    loss: ClassLoss = "ce"
    """Classification loss: ce, focal-lin (Lin et al. 2017: alpha_t (1-p_t)^gamma CE), or
    focal-source (the source's: no alpha, weights normalised, gamma ramped in by epoch)."""
    gamma: float = 2.0
    """Focal loss gamma (focal-source: the final value of its ramp)."""
    alpha: float = 0.25
    """Focal loss alpha (focal-lin only)."""
    hidden: tuple[int, ...] = (256, 64)
    """Encoder hidden widths, each split into a main and a reserved half; the decoder mirrors."""
    latent: int = 8
    """Latent size (z_mean, the classifier's input)."""
    classifier_hidden: int = 8
    dropout: float = 0.15
    guess_width: int = 16
    """Guess net width per encoder layer (the source's is set in an unpublished config)."""
    reconstruction: Literal["mse", "bce"] = "mse"
    """Reconstruction loss, averaged over pixels as the source (mse) or BCE."""
    decoder_output: Literal["sigmoid", "linear"] = "sigmoid"
    """The decoder's output: sigmoid (pixels in [0, 1], as the source) or linear (mse only)."""
    kl_weight: float = 5e-4
    """Weight of the KL term averaged over latent dimensions, as the source."""
    ge2e_weight: float = 0.0
    """Weight of a GE2E loss (softmax) on each batch's z_mean grouped by class; the source
    used 0.1 when enabled. 0 turns it off."""
    hard_fraction: float = 0.1
    """The hard test set: this fraction of test samples that a fixed logistic-regression
    reference model gives the lowest true-class probability."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            bool(self.hidden) and all(w >= 2 for w in self.hidden),
            f"--hidden needs widths >= 2 (each is split in half), got {self.hidden}",
        )
        require(self.latent >= 1, f"--latent must be >= 1, got {self.latent}")
        require(
            not (self.reconstruction == "bce" and self.decoder_output == "linear"),
            "--reconstruction bce needs --decoder-output sigmoid (BCE takes probabilities)",
        )
        require(
            self.classifier_hidden >= 1,
            f"--classifier-hidden must be >= 1, got {self.classifier_hidden}",
        )
        require(0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")
        require(self.guess_width >= 1, f"--guess-width must be >= 1, got {self.guess_width}")
        require(
            self.flag_threshold is None or 0 < self.flag_threshold < 1,
            f"--flag-threshold must be in (0, 1), got {self.flag_threshold}",
        )
        require(
            not (self.border and self.flag_threshold is None and self.val_size == 0),
            "border training chooses its flag threshold on the validation split, and --val-size "
            "0 leaves none: pass --val-size > 0 or a fixed --flag-threshold",
        )
        require(self.gamma >= 0, f"--gamma must be >= 0, got {self.gamma}")
        require(0 <= self.alpha <= 1, f"--alpha must be in [0, 1], got {self.alpha}")
        require(self.kl_weight >= 0, f"--kl-weight must be >= 0, got {self.kl_weight}")
        require(self.ge2e_weight >= 0, f"--ge2e-weight must be >= 0, got {self.ge2e_weight}")
        require(
            0 < self.hard_fraction <= 1,
            f"--hard-fraction must be in (0, 1], got {self.hard_fraction}",
        )
        require(
            self.border_epoch is None or self.border_epoch >= 1,
            f"--border-epoch must be >= 1, got {self.border_epoch}",
        )
        require(
            self.border or self.border_epoch is None,
            "--border-epoch only applies with --border",
        )
        # The default phase (at least 1 epoch) is not refused at --epochs 1: such a run can be
        # the first epoch of one that --resume extends, as in the shared resume test.
        require(
            self.border_epoch is None or self.border_epoch < self.epochs,
            f"--border-epoch {self.border_epoch} must be below --epochs {self.epochs}, or routing "
            "never starts",
        )

    @property
    def phase1_epochs(self) -> int:
        """Epochs before routing starts."""
        if self.border_epoch is not None:
            return self.border_epoch
        return max(1, 2 * self.epochs // 3)

    def routes(self, epoch_index: int) -> bool:
        """Whether border routing is on in epoch `epoch_index` (from 0)."""
        return self.border and epoch_index >= self.phase1_epochs
