"""The hard test set, defined without looking at any arm: the test samples a fixed reference
model (multinomial logistic regression on pixels, trained once on the whole training split
with a fixed seed) gives the lowest probability of their true class."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F

from mnistlab.data import load_split

REFERENCE_SEED = 0
REFERENCE_EPOCHS = 5
REFERENCE_BATCH = 500


def pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 1, 28, 28] -> float [N, 784] in [0, 1]."""
    return images.reshape(len(images), -1).float() / 255.0


@functools.cache
def reference_true_class_probability(dataset: str, data_dir: Path | None) -> torch.Tensor:
    """[N test] probability of the true class under the reference model (CPU, cached)."""
    train = load_split(dataset, "train", data_dir)
    test = load_split(dataset, "test", data_dir)
    x, y = pixels(train.images), train.labels
    weight = torch.zeros(x.shape[1], int(y.max()) + 1, requires_grad=True)
    bias = torch.zeros(weight.shape[1], requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=1e-2)
    order = torch.Generator().manual_seed(REFERENCE_SEED)
    for _ in range(REFERENCE_EPOCHS):
        for batch in torch.randperm(len(y), generator=order).split(REFERENCE_BATCH):
            loss = F.cross_entropy(x[batch] @ weight + bias, y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        probs = torch.softmax(pixels(test.images) @ weight + bias, dim=1)
    return probs.gather(1, test.labels.unsqueeze(1)).squeeze(1)


def hard_mask(dataset: str, data_dir: Path | None, fraction: float) -> torch.Tensor:
    """[N test] bool: the `fraction` of test samples with the lowest reference probability."""
    p_true = reference_true_class_probability(dataset, data_dir)
    count = max(1, round(fraction * len(p_true)))
    mask = torch.zeros(len(p_true), dtype=torch.bool)
    mask[p_true.argsort(stable=True)[:count]] = True
    return mask
