"""The compound ReLU layer (`DendricLinear`) and the three MLPs compared at equal parameter count.

A `DendricLinear(in, out)` splits its inputs into three slices (detshawn/dendric-relu):

    hyper:    chunks of inputs, each chunk its own Linear to all outputs, then T * 1[z >= T/2]
    hypo:     chunks of inputs, each chunk its own Linear to all outputs, then clamp(z, 0, T/2)
    standard: the remaining inputs, one Linear to all outputs, no activation

and returns ReLU(sum of every branch's output). The step has no gradient as the source wrote it
(`(z >= T/2) * T`: its hyper weights never train); `hyper_gradient` gives it a straight-through
ramp or a smooth sigmoid surrogate in the backward pass, the forward value staying the step.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import nn

HyperGradient = Literal["straight-through", "sigmoid", "zero"]
Arch = Literal["plain", "compound", "residual"]
HYPER_GRADIENTS: tuple[HyperGradient, ...] = get_args(HyperGradient)
# The source's sizing (model/shallownet.py): its compound layer i = 1, 2 took
# [2^(3-i)] * 2^(4-i) hyper inputs and as many hypo ones, i.e. 32 of 256 (1/8) in chunks of 4,
# then 8 of 64 (1/8) in chunks of 2.
SOURCE_FRACTION = 0.125
SOURCE_FIRST_CHUNK = 4


class _SurrogateStep(torch.autograd.Function):
    """Forward: T * 1[z >= T/2]. Backward: the slope of a surrogate that also rises from 0 to T
    around T/2 with slope 1 there: the ramp clamp(z, 0, T) (straight-through) or
    T * sigmoid(4 (z - T/2) / T)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, threshold: float, smooth: bool) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.threshold, ctx.smooth = threshold, smooth
        return (z >= threshold / 2).to(z.dtype) * threshold

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (z,) = ctx.saved_tensors
        threshold = ctx.threshold
        if ctx.smooth:
            s = torch.sigmoid(4 * (z - threshold / 2) / threshold)
            slope = 4 * s * (1 - s)
        else:
            slope = ((z >= 0) & (z <= threshold)).to(grad.dtype)
        return grad * slope, None, None


def hyper_step(z: torch.Tensor, threshold: float, gradient: HyperGradient) -> torch.Tensor:
    """The hyper-activation T * 1[z >= T/2] with the chosen backward pass."""
    if gradient == "zero":  # the source's form: a comparison, so no gradient reaches z
        return (z >= threshold / 2) * threshold
    return _SurrogateStep.apply(z, threshold, gradient == "sigmoid")


def hypo_clamp(z: torch.Tensor, threshold: float) -> torch.Tensor:
    """The hypo-activation clamp(z, 0, T/2): a ReLU that saturates at half the threshold."""
    return z.clamp(0, threshold / 2)


def branch_sizes(in_features: int, hyper_fraction: float, hypo_fraction: float) -> list[int]:
    """Inputs of the hyper, hypo and standard slices, in that order."""
    hyper = round(hyper_fraction * in_features)
    hypo = round(hypo_fraction * in_features)
    return [hyper, hypo, in_features - hyper - hypo]


def layer_chunk(first_chunk: int, middle_layer: int) -> int:
    """The chunk of the middle layer at index `middle_layer` (0 for the first compound layer):
    halved at each layer as in the source (4, 2, 1), never below 1; 0 stays one Linear per
    branch."""
    return first_chunk and max(first_chunk >> middle_layer, 1)


def chunk_sizes(inputs: int, chunk: int) -> list[int]:
    """Near-equal chunks of at most `chunk` inputs (0: the whole slice is one chunk)."""
    if inputs == 0:
        return []
    pieces = 1 if chunk == 0 else math.ceil(inputs / chunk)
    return [len(part) for part in torch.arange(inputs).tensor_split(pieces)]


class DendricLinear(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        hyper_fraction: float = SOURCE_FRACTION,
        hypo_fraction: float = SOURCE_FRACTION,
        threshold: float = 1.0,
        chunk: int = SOURCE_FIRST_CHUNK,
        hyper_gradient: HyperGradient = "straight-through",
    ) -> None:
        super().__init__()
        hyper, hypo, standard = branch_sizes(in_features, hyper_fraction, hypo_fraction)
        if min(hyper, hypo) < 0 or standard < 1:
            raise ValueError(
                f"hyper and hypo fractions {hyper_fraction} + {hypo_fraction} leave no standard "
                f"input of {in_features}; keep their sum below 1"
            )
        if threshold <= 0 or chunk < 0 or hyper_gradient not in HYPER_GRADIENTS:
            raise ValueError(
                f"threshold {threshold} must be > 0, chunk {chunk} >= 0, "
                f"hyper_gradient one of {HYPER_GRADIENTS}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.threshold, self.chunk, self.hyper_gradient = threshold, chunk, hyper_gradient
        self.hyper_chunks = chunk_sizes(hyper, chunk)
        self.hypo_chunks = chunk_sizes(hypo, chunk)
        self.hyper = nn.ModuleList(nn.Linear(n, out_features) for n in self.hyper_chunks)
        self.hypo = nn.ModuleList(nn.Linear(n, out_features) for n in self.hypo_chunks)
        self.standard = nn.Linear(standard, out_features)

    def branch_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every chunk's activated output, hyper chunks first, the standard branch last."""
        pieces = x.split([*self.hyper_chunks, *self.hypo_chunks, self.standard.in_features], -1)
        hyper = pieces[: len(self.hyper)]
        hypo = pieces[len(self.hyper) : -1]
        return [
            *(
                hyper_step(lin(p), self.threshold, self.hyper_gradient)
                for lin, p in zip(self.hyper, hyper, strict=True)
            ),
            *(hypo_clamp(lin(p), self.threshold) for lin, p in zip(self.hypo, hypo, strict=True)),
            self.standard(pieces[-1]),
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.stack(self.branch_outputs(x)).sum(0))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"hyper_chunks={self.hyper_chunks}, hypo_chunks={self.hypo_chunks}, "
            f"standard={self.standard.in_features}, threshold={self.threshold}, "
            f"hyper_gradient={self.hyper_gradient!r}"
        )


class ResidualForm(nn.Module):
    """ReLU(P x + B ReLU(C x + c)): a residual block with a projection shortcut P and a fixed
    +-1 output map B. `residual_form` writes any DendricLinear this way (claim 2)."""

    def __init__(self, shortcut: nn.Linear, branch: nn.Linear, mix: torch.Tensor) -> None:
        super().__init__()
        self.shortcut, self.branch = shortcut, branch
        self.register_buffer("mix", mix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.shortcut(x) + torch.relu(self.branch(x)) @ self.mix.T)


@torch.no_grad()
def residual_form(layer: DendricLinear, steepness: float = 1e4) -> ResidualForm:
    """The same function as `layer`, as a residual block. Every chunk's activation is a
    difference of two ReLUs of its linear map z = W x_chunk + b:

        hypo:  clamp(z, 0, T/2) = ReLU(z) - ReLU(z - T/2)                        (exact)
        hyper: T 1[z >= T/2]    = ReLU(s (z - T/2) + T) - ReLU(s (z - T/2))     (exact except
               for z in (T/2 - T/s, T/2), where the ramp of steepness s replaces the jump)

    and the standard slice's Linear is the shortcut."""
    half, out = layer.threshold / 2, layer.out_features
    like = {"dtype": layer.standard.weight.dtype, "device": layer.standard.weight.device}
    shortcut = nn.Linear(layer.in_features, out, **like)
    shortcut.weight.zero_()
    shortcut.weight[:, -layer.standard.in_features :] = layer.standard.weight
    shortcut.bias.copy_(layer.standard.bias)
    # Each chunk gives two rows of hidden units: ReLU(W x + rising) - ReLU(W x + falling).
    rows, rising, falling = [], [], []
    offset = 0
    for linear in [*layer.hyper, *layer.hypo]:
        is_hyper = len(rows) < len(layer.hyper)
        scale = steepness if is_hyper else 1.0
        weight = torch.zeros(out, layer.in_features, **like)
        weight[:, offset : offset + linear.in_features] = scale * linear.weight
        offset += linear.in_features
        rows.append(weight)
        if is_hyper:
            rising.append(steepness * (linear.bias - half) + 2 * half)
            falling.append(steepness * (linear.bias - half))
        else:
            rising.append(linear.bias.clone())
            falling.append(linear.bias - half)
    branch = nn.Linear(layer.in_features, 2 * out * len(rows), **like)
    branch.weight.copy_(torch.cat([*rows, *rows]))
    branch.bias.copy_(torch.cat([*rising, *falling]))
    identity = torch.eye(out, **like).repeat(1, len(rows))
    return ResidualForm(shortcut, branch, torch.cat([identity, -identity], dim=1))


def dendric_parameters(
    in_features: int, out_features: int, hyper_fraction: float, hypo_fraction: float, chunk: int
) -> int:
    """Parameters of a DendricLinear: every weight once, one bias vector per branch Linear."""
    hyper, hypo, _ = branch_sizes(in_features, hyper_fraction, hypo_fraction)
    linears = len(chunk_sizes(hyper, chunk)) + len(chunk_sizes(hypo, chunk)) + 1
    return (in_features + linears) * out_features


class ResidualBlock(nn.Module):
    """ReLU(x + W2 ReLU(W1 x)): a basic ResNet block without normalisation."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.outer(torch.relu(self.inner(x))))


class MLP(nn.Module):
    """Flattened image -> Linear(in, width) + ReLU -> (depth - 1) middle layers -> Linear to the
    classes. The middle layers are Linear + ReLU (plain), DendricLinear (compound: the source
    kept its first layer a plain Linear too) or residual blocks (residual)."""

    def __init__(
        self, arch: Arch, width: int, depth: int, in_features: int, classes: int, **dendric: object
    ) -> None:
        super().__init__()
        self.arch = arch
        self.stem = nn.Linear(in_features, width)
        first_chunk = dendric.pop("chunk", SOURCE_FIRST_CHUNK)

        def middle(index: int) -> nn.Module:
            if arch == "plain":
                return nn.Sequential(nn.Linear(width, width), nn.ReLU())
            if arch == "compound":
                chunk = layer_chunk(first_chunk, index)  # type: ignore[arg-type]
                return DendricLinear(width, width, chunk=chunk, **dendric)  # type: ignore[arg-type]
            return ResidualBlock(width)

        self.middle = nn.Sequential(*(middle(index) for index in range(depth - 1)))
        self.head = nn.Linear(width, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.middle(torch.relu(self.stem(images.flatten(1)))))


def mlp_parameters(
    arch: Arch,
    width: int,
    depth: int,
    in_features: int,
    classes: int,
    hyper_fraction: float = SOURCE_FRACTION,
    hypo_fraction: float = SOURCE_FRACTION,
    chunk: int = SOURCE_FIRST_CHUNK,
) -> int:
    """`MLP`'s parameter count in closed form (the width solver tries thousands of widths);
    `chunk` is the first compound layer's, halved at each later one."""
    outer = (in_features + 1) * width + (width + 1) * classes
    if arch == "plain":
        return outer + (depth - 1) * (width + 1) * width
    if arch == "residual":
        return outer + (depth - 1) * 2 * (width + 1) * width
    return outer + sum(
        dendric_parameters(width, width, hyper_fraction, hypo_fraction, layer_chunk(chunk, index))
        for index in range(depth - 1)
    )


def matched_width(
    arch: Arch, plain_width: int, depth: int, in_features: int, classes: int, **dendric: float
) -> int:
    """The width at which `arch` has the parameter count nearest to the plain MLP of
    `plain_width` (the count grows with the width, so the nearest is next to the crossing)."""
    target = mlp_parameters("plain", plain_width, depth, in_features, classes)

    def count(width: int) -> int:
        return mlp_parameters(arch, width, depth, in_features, classes, **dendric)  # type: ignore[arg-type]

    low, high = 1, plain_width  # every arch has at least the plain MLP's parameters per width
    while low < high:  # smallest width with count >= target
        mid = (low + high) // 2
        low, high = (mid + 1, high) if count(mid) < target else (low, mid)
    return min((low - 1, low), key=lambda w: abs(count(w) - target) if w >= 1 else math.inf)
