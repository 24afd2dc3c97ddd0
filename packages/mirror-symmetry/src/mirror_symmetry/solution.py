"""Does a trained network use the paper's solution? And a picture of one network's weights.

The paper's solution (Rumelhart, Hinton & Williams 1986, fig. 1): within each hidden unit the
weights from mirror-image inputs (x1, x6), (x2, x5), (x3, x4) are equal and opposite, the three
pairs' magnitudes stand in the ratio 1:2:4 (so no asymmetric input sums to zero), and the two
hidden units are sign-flipped copies of each other. Each criterion is tested with a tolerance:

  antisymmetric   |w_i + w_mirror(i)| <= 0.2 * (|w_i| + |w_mirror(i)|) / 2 for all 3 pairs, both units
  ratio 1:2:4     the pair magnitudes, sorted, step up by a factor in [2/1.3, 2*1.3] = [1.54, 2.6]
                  twice, in both units
  opposite copies cosine(unit 1 inputs, unit 2 inputs) <= -0.9 and their norms within a factor 1.3
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from mirror_symmetry.setup import HIDDEN, INPUTS
from mirror_symmetry.sim import MirrorNets

ANTISYMMETRY_TOLERANCE = 0.2
RATIO_TOLERANCE = 1.3
COPY_MAX_COSINE = -0.9
COPY_NORM_RATIO = 1.3
_LEFT = [0, 1, 2]
_MIRROR = [5, 4, 3]


@dataclass(frozen=True)
class SolutionShape:
    """Per network [N]: which of the paper's criteria its input-to-hidden weights meet."""

    antisymmetric: Tensor
    ratio_1_2_4: Tensor
    opposite_copies: Tensor
    step_ratios: Tensor  # [N, 2 units, 2]: middle/smallest and largest/middle pair magnitude

    @property
    def paper(self) -> Tensor:
        return self.antisymmetric & self.ratio_1_2_4 & self.opposite_copies


def solution_shape(nets: MirrorNets) -> SolutionShape:
    w1 = nets.W1.double()  # [N, 2, 6]
    left, mirror = w1[..., _LEFT], w1[..., _MIRROR]
    pair_size = (left.abs() + mirror.abs()) / 2  # [N, 2, 3]
    antisymmetric = ((left + mirror).abs() <= ANTISYMMETRY_TOLERANCE * pair_size).all(-1).all(-1)
    ordered = pair_size.sort(-1).values
    step_ratios = ordered[..., 1:] / ordered[..., :-1].clamp_min(1e-12)
    ratio_ok = (step_ratios >= 2 / RATIO_TOLERANCE) & (step_ratios <= 2 * RATIO_TOLERANCE)
    first, second = w1[:, 0], w1[:, 1]
    cosine = torch.nn.functional.cosine_similarity(first, second, dim=-1)
    norms = torch.stack([first.norm(dim=-1), second.norm(dim=-1)], -1)
    norm_ratio = norms.max(-1).values / norms.min(-1).values.clamp_min(1e-12)
    return SolutionShape(
        antisymmetric=antisymmetric,
        ratio_1_2_4=ratio_ok.all(-1).all(-1),
        opposite_copies=(cosine <= COPY_MAX_COSINE) & (norm_ratio <= COPY_NORM_RATIO),
        step_ratios=step_ratios,
    )


def typical_network(shape: SolutionShape, solved: Tensor, solved_at: Tensor) -> int | None:
    """A solved network that uses the paper's solution if any does, the one that took the median
    number of sweeps among those; None when no network is solved."""
    candidates = solved & shape.paper
    if not candidates.any():
        candidates = solved
    if not candidates.any():
        return None
    indices = candidates.nonzero().flatten()
    times = solved_at[indices].double()
    return int(indices[(times - times.median()).abs().argmin()])


def plot_network(nets: MirrorNets, run: int, path: Path, title: str) -> None:
    """Hinton diagram of one network: a square per weight, area proportional to its size, white
    for positive and black for negative."""
    rows = [
        (f"hidden {j + 1}", [*nets.W1[run, j].tolist(), nets.b1[run, j].item()])
        for j in range(HIDDEN)
    ]
    rows.append(("output", [*nets.W2[run, 0].tolist(), nets.b2[run, 0].item()]))
    columns = [*(f"x{i + 1}" for i in range(INPUTS)), "bias"]
    largest = max(abs(w) for _, weights in rows for w in weights)
    figure = Figure(figsize=(8, 3.6))
    axes = figure.subplots()
    axes.set_facecolor("0.55")
    for y, (_, weights) in enumerate(rows):
        # The output unit's inputs are the hidden units, drawn under x1, x2; its bias under "bias".
        xs = range(len(weights) - 1) if y < HIDDEN else range(HIDDEN)
        for x, weight in zip([*xs, INPUTS], weights, strict=True):
            side = 0.8 * (abs(weight) / largest) ** 0.5
            axes.add_patch(
                Rectangle(
                    (x - side / 2, y - side / 2),
                    side,
                    side,
                    facecolor="white" if weight > 0 else "black",
                )
            )
            axes.text(x, y + 0.44, f"{weight:+.2f}", ha="center", va="top", fontsize=7, color="0.1")
    axes.set_xlim(-0.6, INPUTS + 0.6)
    axes.set_ylim(len(rows) - 0.4, -0.6)
    axes.set_xticks(range(INPUTS + 1), columns)
    axes.set_yticks(range(len(rows)), [name for name, _ in rows])
    axes.set_aspect("equal")
    axes.set_title(title, fontsize=9)
    figure.text(
        0.01, 0.01, "output row: h1 under x1, h2 under x2", fontsize=7, color="0.3", va="bottom"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
