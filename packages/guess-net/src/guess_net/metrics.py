"""AUROC of a score against binary outcomes (Mann-Whitney U with tied scores averaged)."""

from __future__ import annotations

import torch


def auroc(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """P(score of a random positive > score of a random negative), ties counting 1/2; NaN when
    either class is empty."""
    positives = positives.bool()
    n_pos = int(positives.sum())
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    values, inverse, counts = torch.unique(scores.double(), return_inverse=True, return_counts=True)
    first_rank = torch.cumsum(counts, 0) - counts + 1  # 1-based rank of each distinct value
    average_rank = first_rank.double() + (counts.double() - 1) / 2
    rank_sum = average_rank[inverse][positives].sum().item()
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
