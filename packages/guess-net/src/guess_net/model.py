"""The source's VAE + classifier with its encoder capacity split in half, and the guess net.

Encoder (per hidden layer: Linear -> BatchNorm -> Dropout -> ReLU, as the source):
  main half      reads the main half of the layer below (the image for the first layer);
  reserved half  reads the main AND reserved halves below (the source's extended layers read
                 the main encoder's activations the same way); its (mean, log-variance) heads
                 add a correction to the main half's.
Routing: per sample, `route` in {0, 1} switches the reserved correction on. Samples with
route 0 see exactly the main half, so the reserved half gets no gradient from them.
The "conditional" form gives the reserved half conditional BatchNorm: its affine scale and
shift are modulated per sample by a small net of the main half's (detached) z_mean.
The guess net reads every encoder activation, detached, and predicts whether the classifier
will be right: per layer Linear + BatchNorm (no nonlinearity, as the source), concatenated,
Linear -> one logit.
"""

from __future__ import annotations

import itertools
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from guess_net.losses import GE2ELoss

ReservedForm = Literal["parallel", "conditional"]
Route = Literal["all", "none", "guess"] | Tensor


class ConditionalBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose affine weight and bias are modulated per sample by a net of a
    condition: weight * (1 + a(c)), bias + b(c). The net's last layer starts at zero, so the
    layer starts as a plain BatchNorm (the source: element-wise conditioning, [latent, latent,
    2 * features] Linear+ReLU stack)."""

    def __init__(self, features: int, condition: int) -> None:
        super().__init__(features)
        self.modulation = nn.Sequential(
            nn.Linear(condition, condition), nn.ReLU(), nn.Linear(condition, 2 * features)
        )
        nn.init.zeros_(self.modulation[-1].weight)
        nn.init.zeros_(self.modulation[-1].bias)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:  # type: ignore[override]
        normalised = nn.functional.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            None,
            None,
            self.training,
            self.momentum or 0.0,
            self.eps,
        )
        scale, shift = self.modulation(condition).chunk(2, dim=1)
        return normalised * (self.weight * (1 + scale)) + (self.bias + shift)


class Block(nn.Module):
    """Linear -> BatchNorm (optionally conditional) -> Dropout -> ReLU."""

    def __init__(self, fan_in: int, width: int, dropout: float, condition: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(fan_in, width)
        self.norm = ConditionalBatchNorm(width, condition) if condition else nn.BatchNorm1d(width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        out = self.linear(x)
        out = self.norm(out, condition) if condition is not None else self.norm(out)
        return torch.relu(self.dropout(out))


class Outputs(NamedTuple):
    logits: Tensor  # the classifier on the routed z_mean: the model's prediction
    main_logits: Tensor  # the classifier on the main half's z_mean alone
    guess_logit: Tensor  # [B]: logit of "the classifier is right" (the guess net)
    routed: Tensor  # [B] 0/1: the samples that took the reserved half
    z_mean: Tensor
    z_logvar: Tensor
    recon: Tensor | None  # sigmoid reconstruction of a sampled z (None when not decoding)


class GuessNetVAE(nn.Module):
    def __init__(
        self,
        pixels: int = 784,
        hidden: tuple[int, ...] = (256, 64),
        latent: int = 8,
        classifier_hidden: int = 8,
        classes: int = 10,
        dropout: float = 0.15,
        guess_width: int = 16,
        reserved: ReservedForm = "parallel",
        reserved_trim: int = 0,
        flag_threshold: float = 0.5,
        ge2e: bool = False,
        decoder_output: Literal["sigmoid", "linear"] = "sigmoid",
    ) -> None:
        """`hidden` are the full widths; each layer's main half has width // 2 units and its
        reserved half the rest, less `reserved_trim` units in the first layer (to pay for the
        conditional form's modulation nets at equal parameter count)."""
        super().__init__()
        self.reserved_form = reserved
        # A buffer, so that a threshold chosen during training is saved with the weights.
        self.register_buffer("flag_threshold", torch.tensor(float(flag_threshold)))
        self.decoder_output = decoder_output
        main_widths = [width // 2 for width in hidden]
        reserved_widths = [width - width // 2 for width in hidden]
        reserved_widths[0] -= reserved_trim
        condition = latent if reserved == "conditional" else 0
        self.main = nn.ModuleList()
        self.reserved = nn.ModuleList()
        main_in, reserved_in = pixels, pixels
        for main_width, reserved_width in zip(main_widths, reserved_widths, strict=True):
            self.main.append(Block(main_in, main_width, dropout))
            self.reserved.append(Block(reserved_in, reserved_width, dropout, condition))
            main_in, reserved_in = main_width, main_width + reserved_width
        self.main_heads = nn.Linear(main_in, 2 * latent)
        self.reserved_heads = nn.Linear(reserved_in, 2 * latent)
        # Zero start: switching the reserved half on leaves the prediction where it was.
        nn.init.zeros_(self.reserved_heads.weight)
        nn.init.zeros_(self.reserved_heads.bias)

        self.classifier = nn.Sequential(
            nn.Linear(latent, classifier_hidden),
            nn.Dropout(dropout),
            nn.ReLU(),
            nn.Linear(classifier_hidden, classes),
        )
        widths = [latent, *reversed(hidden)]
        self.decoder = nn.Sequential(
            *(Block(a, b, dropout) for a, b in itertools.pairwise(widths)),
            nn.Linear(widths[-1], pixels),
        )
        self.guess_branches = nn.ModuleList(
            nn.Sequential(nn.Linear(m + r, guess_width), nn.BatchNorm1d(guess_width))
            for m, r in zip(main_widths, reserved_widths, strict=True)
        )
        self.guesser = nn.Linear(guess_width * len(hidden), 1)
        # GE2E's learned similarity scale and offset (w, b), when that loss is on.
        self.ge2e = GE2ELoss() if ge2e else None

    def reserved_parameters(self) -> list[nn.Parameter]:
        """What only routed samples train: the reserved half and its heads."""
        return [*self.reserved.parameters(), *self.reserved_heads.parameters()]

    def forward(self, x: Tensor, route: Route = "all", decode: bool = True) -> Outputs:
        """`x`: [B, pixels] in [0, 1]. `route`: "all" (every sample through both halves: the
        baseline), "none" (main half only), "guess" (only the samples the guess net flags:
        probability of being right below `flag_threshold`), or a [B] 0/1 tensor."""
        main_activations = []
        below = x
        for block in self.main:
            below = block(below)
            main_activations.append(below)
        mean_main, logvar_main = self.main_heads(below).chunk(2, dim=1)

        condition = mean_main.detach() if self.reserved_form == "conditional" else None
        features = []
        below = x
        for main_activation, block in zip(main_activations, self.reserved, strict=True):
            below = torch.cat((main_activation, block(below, condition)), dim=1)
            features.append(below)
        correction_mean, correction_logvar = self.reserved_heads(below).chunk(2, dim=1)

        branches = [
            branch(f.detach()) for branch, f in zip(self.guess_branches, features, strict=True)
        ]
        guess_logit = self.guesser(torch.cat(branches, dim=1)).squeeze(1)
        gate = self.gate(route, guess_logit).unsqueeze(1)
        z_mean = mean_main + gate * correction_mean
        z_logvar = logvar_main + gate * correction_logvar
        recon = None
        if decode:
            z = z_mean + torch.exp(0.5 * z_logvar) * torch.randn_like(z_mean)
            recon = self.decoder(z)
            if self.decoder_output == "sigmoid":
                recon = torch.sigmoid(recon)
        return Outputs(
            self.classifier(z_mean),
            self.classifier(mean_main),
            guess_logit,
            gate.squeeze(1),
            z_mean,
            z_logvar,
            recon,
        )

    def gate(self, route: Route, guess_logit: Tensor) -> Tensor:
        """[B] 0/1: which samples take the reserved half."""
        if isinstance(route, Tensor):
            return route.detach().to(guess_logit.dtype)
        if route == "all":
            return torch.ones_like(guess_logit)
        if route == "none":
            return torch.zeros_like(guess_logit)
        flagged = torch.sigmoid(guess_logit.detach()) < self.flag_threshold
        return flagged.to(guess_logit.dtype)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def equal_size_model(reserved: ReservedForm = "parallel", **options) -> GuessNetVAE:
    """The model with the parallel form's parameter count. The conditional form's modulation
    nets are paid for by trimming first-layer reserved units until it is no larger; it then
    falls short by less than one such unit (under 0.5% at the default sizes)."""
    parallel = GuessNetVAE(reserved="parallel", **options)
    budget = parameter_count(parallel)
    for trim in range(len(parallel.reserved[0].norm.weight)):
        model = GuessNetVAE(reserved=reserved, reserved_trim=trim, **options)
        if parameter_count(model) <= budget:
            return model
    raise ValueError(
        "the conditional reserved half cannot match the parallel one's size; "
        "use wider hidden layers"
    )
