"""Heads K, D, W and the backbones they sit on (UEFI-code/Neuro_myKakuritsu; README, "The source").

Every head is two linear layers with a ReLU between them. What differs is the noise:
  K  Kakuritsu synapses (each kept with probability p, no rescale), bias-free, init U(-0.1, 0.1)
  D  Linear -> Dropout(0.5) -> ReLU -> Linear -> Dropout(0.5)  (dropout on the logits, as in
     the original)
  W  plain Linear layers
The noise is chosen at every forward from `head.noise`, so a trained head can be evaluated in
any mode: one pass with its own noise ("sampled"); the softmax averaged over N passes with its
own noise ("mc", an estimate of the expected prediction over the noise); none
("deterministic", i.e. K at p=1 / dropout off — the original `--switch`, which evaluates the
weight-scaled network, not the expectation); or the other kind ("swapped": K with dropout, D
and W with Kakuritsu synapses at p — the original's cross-swaps). W, which has no noise of its
own, is also evaluated with dropout ("swapped-dropout", the original archive's W+dropout).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from kakuritsu.layers import kakuritsu_linear

HeadKind = Literal["K", "D", "W"]
Noise = Literal["kakuritsu", "dropout", "none"]
EvalMode = Literal["sampled", "mc", "deterministic", "swapped", "swapped-dropout"]
# The modes every head is evaluated in; W's sampled and mc equal its deterministic (no noise).
EVAL_MODES: tuple[EvalMode, ...] = ("sampled", "mc", "deterministic", "swapped")
HEAD_EVAL_MODES: dict[HeadKind, tuple[EvalMode, ...]] = {
    "K": EVAL_MODES,
    "D": EVAL_MODES,
    "W": (*EVAL_MODES, "swapped-dropout"),
}
TRAINING_NOISE: dict[str, Noise] = {"K": "kakuritsu", "D": "dropout", "W": "none"}


def eval_noise(kind: HeadKind, mode: EvalMode) -> Noise:
    """The noise a head trained as `kind` is evaluated with in `mode`."""
    own = TRAINING_NOISE[kind]
    if mode in ("sampled", "mc"):
        return own
    if mode == "deterministic":
        return "none"
    if mode == "swapped":
        return "dropout" if own == "kakuritsu" else "kakuritsu"
    return "dropout"


class SwitchableLinear(nn.Module):
    """A linear layer whose forward applies Kakuritsu synapses, output dropout, or nothing."""

    def __init__(self, in_features: int, out_features: int, kakuritsu_init: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        if kakuritsu_init:  # the original layer: bias-free, U(-0.1, 0.1)
            nn.init.uniform_(self.weight, -0.1, 0.1)
            self.bias = None
        else:  # nn.Linear's own initialisation
            reference = nn.Linear(in_features, out_features)
            self.weight.data.copy_(reference.weight.data)
            self.bias = nn.Parameter(reference.bias.data.clone())

    def forward(self, x: torch.Tensor, noise: Noise, p: float, dropout: float) -> torch.Tensor:
        if noise == "kakuritsu":
            out = kakuritsu_linear(x, self.weight, p)
            return out if self.bias is None else out + self.bias
        out = F.linear(x, self.weight, self.bias)
        return F.dropout(out, dropout, training=True) if noise == "dropout" else out


class Head(nn.Module):
    def __init__(
        self,
        kind: HeadKind,
        in_features: int,
        hidden: int,
        classes: int,
        p: float = 0.5,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.p = p
        self.dropout = dropout
        self.noise: Noise = TRAINING_NOISE[kind]
        self.hidden = SwitchableLinear(in_features, hidden, kakuritsu_init=kind == "K")
        self.out = SwitchableLinear(hidden, classes, kakuritsu_init=kind == "K")

    def set_eval_mode(self, mode: EvalMode) -> None:
        self.noise = eval_noise(self.kind, mode)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.hidden(features, self.noise, self.p, self.dropout))
        return self.out(hidden, self.noise, self.p, self.dropout)


class DemoBackbone(nn.Sequential):
    """The original MNIST demo's features: conv32 -> conv64 -> maxpool -> 9216 features."""

    out_features = 9216

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )


class SmallBackbone(nn.Sequential):
    """A fast CPU preset: two strided convs, ~1/20 of the demo's compute, 1600 features."""

    out_features = 1600

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 32, 5, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its classifier, for ImageFolder / fake ImageNet-style data."""

    def __init__(self, arch: str, pretrained: bool, frozen: bool) -> None:
        super().__init__()
        weights = "DEFAULT" if pretrained else None
        self.net = torchvision.models.get_model(arch, weights=weights)
        if not isinstance(getattr(self.net, "fc", None), nn.Linear):
            raise ValueError("not a ResNet-style model with an `fc` classifier; use e.g. resnet50")
        self.out_features = self.net.fc.in_features
        self.net.fc = nn.Identity()
        self.frozen = frozen
        if frozen:
            self.net.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.frozen:  # frozen features, as in the original (BatchNorm statistics too)
            self.net.eval()
            with torch.no_grad():
                return self.net(images)
        return self.net(images)


class KakuritsuNet(nn.Module):
    def __init__(self, backbone: nn.Module, head: Head) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def monte_carlo_log_probs(self, images: torch.Tensor, passes: int) -> torch.Tensor:
        """log of the softmax averaged over `passes` passes of the head with its current noise
        (the "mc" mode). Usable as logits: their argmax and cross-entropy are those of the mean
        softmax. Only the head is noisy, so the backbone runs once."""
        features = self.backbone(images)
        log_probs = torch.stack([F.log_softmax(self.head(features), dim=1) for _ in range(passes)])
        return torch.logsumexp(log_probs, dim=0) - math.log(passes)
