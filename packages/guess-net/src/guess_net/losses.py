"""The source's focal-loss variant, which mnistlab.losses (Lin et al.'s form) does not cover.

detshawn/dendric-relu `utils.build_focal_loss` drops alpha, treats the focal weights
w_i = (1 - p_t,i)^gamma as constants (detached) and normalises by their sum, so the loss is a
weighted mean of -log p_t rather than a down-scaled sum; `test.py` ramps gamma in with a sigmoid
of the epoch (`scaling_sigmoid`, centred at 3/5 of the epochs, 20 epochs wide).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def normalised_focal_loss(logits: Tensor, targets: Tensor, gamma: float) -> Tensor:
    """sum_i w_i * (-log p_t,i) / sum_i w_i with w_i = (1 - p_t,i)^gamma detached; no alpha.

    When every weight is 0 (all samples certain) the unnormalised sum, 0, is returned, as in the
    source. With gamma = 0 this is the mean cross-entropy.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    log_p_true = F.log_softmax(logits, dim=1).gather(1, targets.long().unsqueeze(1)).squeeze(1)
    weights = (1.0 - log_p_true.detach().exp()).pow(gamma)
    weighted = -(weights * log_p_true).sum()
    total = weights.sum()
    return torch.where(
        total > 0, weighted / total.clamp_min(torch.finfo(total.dtype).tiny), weighted
    )


def ramped_gamma(gamma: float, epoch: int, epochs: int, width: float = 20.0) -> float:
    """The source's gamma schedule: gamma * sigmoid((epoch - (3/5 * epochs - 1)) * 4 / width),
    with `epoch` counted from 0."""
    offset = 3 / 5 * epochs - 1
    return gamma / (1.0 + math.exp(-(epoch - offset) * 4 / width))
