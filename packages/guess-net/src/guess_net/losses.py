"""Guess-net's losses: focal loss in Lin et al.'s form and in the source's (with its gamma
ramp), the VAE objective and GE2E on the latent code.

Every loss takes tensors on any device and of any floating dtype, stays differentiable, and
raises ``ValueError`` on bad arguments. ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``
(one value per sample, or per embedding for GE2E).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(values: Tensor, reduction: str) -> Tensor:
    _check_reduction(reduction)
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def _sum_per_sample(values: Tensor) -> Tensor:
    """Sum a [B, ...] tensor over everything but the batch dimension."""
    return values.reshape(values.shape[0], -1).sum(dim=1)


def _check_logits(logits: Tensor) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must be [batch, classes], got shape {tuple(logits.shape)}")


def _check_class_targets(logits: Tensor, targets: Tensor) -> None:
    if targets.is_floating_point() or targets.shape != logits.shape[:1]:
        raise ValueError(
            f"class targets must be integers of shape {tuple(logits.shape[:1])}, "
            f"got {targets.dtype} of shape {tuple(targets.shape)}"
        )


def _true_class_log_prob(logits: Tensor, targets: Tensor) -> Tensor:
    """log softmax(logits)[i, targets[i]] for each row i, computed stably."""
    log_probs = F.log_softmax(logits, dim=1)
    return log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)


def focal_loss(
    logits: Tensor,
    targets: Tensor,
    alpha: float | Tensor | None = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Multi-class focal loss (Lin et al. 2017): -alpha_t * (1 - p_t)^gamma * log p_t.

    p_t is the softmax probability of the true class, so well-classified samples are
    down-weighted by (1 - p_t)^gamma. ``alpha`` is one weight for every class (a float), a
    per-class [C] tensor, or None for no weighting; all weights must lie in [0, 1].
    With ``gamma=0`` and ``alpha=None`` this is exactly ``F.cross_entropy``.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    _check_logits(logits)
    _check_class_targets(logits, targets)
    if isinstance(alpha, Tensor):
        if alpha.shape != logits.shape[1:]:
            raise ValueError(
                f"per-class alpha must have shape {tuple(logits.shape[1:])}, "
                f"got {tuple(alpha.shape)}"
            )
        if bool(((alpha < 0) | (alpha > 1)).any()):
            raise ValueError("per-class alpha values must lie in [0, 1]")
    elif alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")

    log_p_true = _true_class_log_prob(logits, targets)
    per_sample = -((1.0 - log_p_true.exp()) ** gamma) * log_p_true
    if isinstance(alpha, Tensor):
        per_sample = per_sample * alpha.to(per_sample)[targets.long()]
    elif alpha is not None:
        per_sample = per_sample * alpha
    return _reduce(per_sample, reduction)


# The focal variant of detshawn/dendric-relu (`utils.build_focal_loss`, `test.py`): no alpha,
# the weights (1 - p_t)^gamma are constants normalised by their sum, gamma ramped in by epoch.
def normalised_focal_loss(logits: Tensor, targets: Tensor, gamma: float) -> Tensor:
    """sum_i w_i * (-log p_t,i) / sum_i w_i with w_i = (1 - p_t,i)^gamma detached; no alpha.

    When every weight is 0 (all samples certain) the unnormalised sum, 0, is returned, as in the
    source. With gamma = 0 this is the mean cross-entropy.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    _check_logits(logits)
    _check_class_targets(logits, targets)
    log_p_true = _true_class_log_prob(logits, targets)
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


class VAELoss(NamedTuple):
    """VAE objective and its two parts, each reduced over the batch the same way."""

    total: Tensor
    reconstruction: Tensor
    kl: Tensor


def vae_loss(
    recon: Tensor,
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    reconstruction: Literal["bce", "mse"] = "bce",
    kl_weight: float = 1.0,
    reduction: Reduction = "mean",
    *,
    recon_is_logits: bool = False,
) -> VAELoss:
    """Negative ELBO of a Gaussian-latent VAE: reconstruction + kl_weight * KL(q(z|x) || N(0, I)).

    The reconstruction term is summed over each sample's features: binary cross-entropy against
    targets ``x`` in [0, 1] (``recon`` holds probabilities, or logits when
    ``recon_is_logits=True``, which is numerically safer), or squared error for ``"mse"``.
    KL = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)) per sample, from [B, latent] ``mu``/``logvar``.
    """
    if reconstruction not in ("bce", "mse"):
        raise ValueError(f"reconstruction must be 'bce' or 'mse', got {reconstruction!r}")
    if recon_is_logits and reconstruction != "bce":
        raise ValueError("recon_is_logits only applies to reconstruction='bce'")
    if kl_weight < 0:
        raise ValueError(f"kl_weight must be >= 0, got {kl_weight}")
    if recon.shape != x.shape:
        raise ValueError(f"recon shape {tuple(recon.shape)} != x shape {tuple(x.shape)}")
    if mu.shape != logvar.shape or mu.shape[:1] != x.shape[:1]:
        raise ValueError(
            f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must be [batch, latent] "
            f"with batch {x.shape[0]}"
        )
    _check_reduction(reduction)

    if reconstruction == "mse":
        elementwise = F.mse_loss(recon, x, reduction="none")
    elif recon_is_logits:
        elementwise = F.binary_cross_entropy_with_logits(recon, x, reduction="none")
    else:
        elementwise = F.binary_cross_entropy(recon, x, reduction="none")
    recon_per_sample = _sum_per_sample(elementwise)
    kl_per_sample = -0.5 * _sum_per_sample(1 + logvar - mu.pow(2) - logvar.exp())
    total_per_sample = recon_per_sample + kl_weight * kl_per_sample
    return VAELoss(
        total=_reduce(total_per_sample, reduction),
        reconstruction=_reduce(recon_per_sample, reduction),
        kl=_reduce(kl_per_sample, reduction),
    )


class GE2ELoss(nn.Module):
    """Generalized end-to-end loss (Wan et al. 2018) on embeddings shaped [N classes, M, D].

    S_ji,k = w * cos(e_ji, c_k) + b, where c_k is the mean of class k's embeddings except that,
    for the embedding's own class, e_ji is left out of the centroid (the mean of the other M-1).
    ``"softmax"``: L_ji = -S_ji,j + log sum_k exp(S_ji,k).
    ``"contrast"``: L_ji = 1 - sigmoid(S_ji,j) + max_{k != j} sigmoid(S_ji,k).
    The paper sums L_ji over all N*M embeddings (``reduction="sum"``); the default ``"mean"``
    keeps the scale independent of N and M. w (init 10) and b (init -5) are learned; w is
    clamped to at least ``min_w`` in every forward so the similarity scale stays positive.
    """

    def __init__(
        self,
        init_w: float = 10.0,
        init_b: float = -5.0,
        loss_type: Literal["softmax", "contrast"] = "softmax",
        reduction: Reduction = "mean",
        min_w: float = 1e-6,
    ) -> None:
        super().__init__()
        if init_w <= 0:
            raise ValueError(f"init_w must be > 0, got {init_w}")
        if min_w <= 0:
            raise ValueError(f"min_w must be > 0, got {min_w}")
        if loss_type not in ("softmax", "contrast"):
            raise ValueError(f"loss_type must be 'softmax' or 'contrast', got {loss_type!r}")
        _check_reduction(reduction)
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))
        self.loss_type = loss_type
        self.reduction = reduction
        self.min_w = min_w

    def similarity(self, embeddings: Tensor) -> Tensor:
        """Scaled cosine similarity S of shape [N, M, N]: S[j, i, k] = S_ji,k."""
        if embeddings.ndim != 3:
            raise ValueError(
                f"embeddings must be [classes, per_class, dim], got {tuple(embeddings.shape)}"
            )
        num_classes, per_class, _ = embeddings.shape
        if num_classes < 2 or per_class < 2:
            raise ValueError(
                f"GE2E needs >= 2 classes and >= 2 embeddings per class, got N={num_classes}, "
                f"M={per_class}"
            )
        class_sums = embeddings.sum(dim=1, keepdim=True)
        centroids = class_sums.squeeze(1) / per_class
        own_centroids = (class_sums - embeddings) / (per_class - 1)

        cos_to_centroids = F.cosine_similarity(embeddings.unsqueeze(2), centroids, dim=-1)
        cos_to_own = F.cosine_similarity(embeddings, own_centroids, dim=-1)
        own_class = torch.eye(num_classes, dtype=torch.bool, device=embeddings.device)
        cos = torch.where(own_class.unsqueeze(1), cos_to_own.unsqueeze(2), cos_to_centroids)
        return self.w.clamp(min=self.min_w) * cos + self.b

    def forward(self, embeddings: Tensor) -> Tensor:
        """GE2E loss of [N, M, D] embeddings; [N, M] per-embedding values for reduction="none"."""
        similarity = self.similarity(embeddings)
        own_similarity = similarity.diagonal(dim1=0, dim2=2).T  # [N, M]: S_ji,j
        if self.loss_type == "softmax":
            per_embedding = torch.logsumexp(similarity, dim=2) - own_similarity
        else:
            own_class = torch.eye(similarity.shape[0], dtype=torch.bool, device=similarity.device)
            other_similarity = similarity.masked_fill(own_class.unsqueeze(1), float("-inf"))
            hardest_other = torch.sigmoid(other_similarity.amax(dim=2))
            per_embedding = 1 - torch.sigmoid(own_similarity) + hardest_other
        return _reduce(per_embedding, self.reduction)


def group_embeddings_by_class(embeddings: Tensor, labels: Tensor) -> Tensor:
    """Arrange flat [B, D] embeddings into the [N, M, D] layout that ``GE2ELoss`` expects.

    Classes with fewer than 2 samples are dropped; M is the smallest remaining class count and
    each class contributes its first M embeddings in batch order. Classes are sorted by label.
    """
    if embeddings.ndim != 2 or labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"need [B, D] embeddings and [B] labels, got {tuple(embeddings.shape)} and "
            f"{tuple(labels.shape)}"
        )
    classes, counts = labels.unique(return_counts=True)
    usable = counts >= 2
    if int(usable.sum()) < 2:
        raise ValueError("need at least 2 classes with >= 2 samples each")
    per_class = int(counts[usable].min())
    return torch.stack([embeddings[labels == label][:per_class] for label in classes[usable]])
