"""Compound ReLU options. Every arch is sized to the parameter count of the plain MLP of
--width and --depth, so arms compared at the same --width have equal parameter counts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from compound_relu.model import (
    SOURCE_FIRST_CHUNK,
    SOURCE_FRACTION,
    Arch,
    HyperGradient,
    branch_sizes,
    matched_width,
)
from mnistlab.classify import ClassifierConfig
from mnistlab.config import require

IN_FEATURES, CLASSES = 28 * 28, 10  # every MNIST-family dataset


@dataclass
class CompoundConfig(ClassifierConfig):
    study: ClassVar[str] = "compound-relu"

    arch: Arch = "compound"
    """plain: Linear+ReLU middle layers; compound: DendricLinear middle layers; residual:
    ReLU(x + W2 ReLU(W1 x)) middle blocks. The first layer is a plain Linear+ReLU in every arch
    (as in the source)."""
    width: int = 128
    """Hidden width of the plain reference MLP; compound and residual take the width whose
    parameter count is nearest to it."""
    depth: int = 2
    """Hidden layers of the plain reference: the first layer plus depth-1 middle layers
    (compound layers or residual blocks)."""
    hyper_fraction: float = SOURCE_FRACTION
    """Share of a compound layer's inputs in the hyper branch (step T 1[z >= T/2]); the
    source's: 1/8."""
    hypo_fraction: float = SOURCE_FRACTION
    """Share of a compound layer's inputs in the hypo branch (clamp(z, 0, T/2)); hyper + hypo
    must stay below 1 (the rest is the linear standard branch); the source's: 1/8."""
    threshold: float = 1.0
    """T: the hyper step jumps to T at T/2, the hypo clamp saturates at T/2 (source: 1)."""
    chunk: int = SOURCE_FIRST_CHUNK
    """Inputs per hyper/hypo Linear in the first compound layer, each chunk with its own Linear
    and activation; every later compound layer halves it, down to 1 (the source: 4, then 2);
    0: one Linear per branch in every layer."""
    hyper_gradient: HyperGradient = "straight-through"
    """Backward of the hyper step: straight-through (slope of clamp(z, 0, T)), sigmoid (slope
    of T sigmoid(4 (z - T/2) / T)), or zero (the source: its hyper weights never train)."""
    epochs: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        require(1 <= self.width <= 16384, f"--width must be in [1, 16384], got {self.width}")
        require(
            2 <= self.depth <= 64, f"--depth must be in [2, 64] (a middle layer), got {self.depth}"
        )
        for name, value in (("hyper", self.hyper_fraction), ("hypo", self.hypo_fraction)):
            require(0 <= value < 1, f"--{name}-fraction must be in [0, 1), got {value}")
        require(
            self.hyper_fraction + self.hypo_fraction < 1,
            f"--hyper-fraction + --hypo-fraction must be < 1 (the rest is the standard "
            f"branch), got {self.hyper_fraction + self.hypo_fraction:g}",
        )
        require(
            math.isfinite(self.threshold) and self.threshold > 0,
            f"--threshold must be > 0, got {self.threshold}",
        )
        require(
            self.chunk >= 0, f"--chunk must be >= 0 (0: one Linear per branch), got {self.chunk}"
        )
        require(
            self.arch == "compound" or self.hyper_gradient == CompoundConfig.hyper_gradient,
            f"--hyper-gradient only applies to --arch compound, not --arch {self.arch}",
        )
        if self.arch == "compound":
            standard = branch_sizes(self.arch_width, self.hyper_fraction, self.hypo_fraction)[2]
            require(
                standard >= 1,
                f"--width {self.width} leaves the compound layer of width "
                f"{self.arch_width} no standard input; lower the fractions or raise --width",
            )

    @property
    def dendric_shape(self) -> dict[str, float]:
        """What a DendricLinear's parameter count depends on."""
        return {
            "hyper_fraction": self.hyper_fraction,
            "hypo_fraction": self.hypo_fraction,
            "chunk": self.chunk,
        }

    @property
    def arch_width(self) -> int:
        """This arch's hidden width at the plain MLP's parameter count."""
        return matched_width(
            self.arch, self.width, self.depth, IN_FEATURES, CLASSES, **self.dendric_shape
        )
