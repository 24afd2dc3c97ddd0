"""Batches from a whole split held as one normalised tensor on the run's device (`BatchSource`),
and what any data source gives the loop (`Batches`).

No Python per sample: an epoch is one `randperm`, index gathers and tensor-op augmentation.
Every rank draws the same permutation (seeded by seed and epoch) and takes a disjoint,
equal-sized shard of it, so ranks agree on step counts without communicating.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from mnistlab.data import Split


class Batches(Protocol):
    """What the loop and `Run.evaluate` need from a data source (`BatchSource`, a loader)."""

    def steps_per_epoch(self) -> int: ...
    def train_epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]: ...


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of values; different tuples give unrelated streams."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def random_translate(
    images: torch.Tensor, pad: int, fill: float, generator: torch.Generator
) -> torch.Tensor:
    """Shift each image by an independent random offset in [-pad, pad]^2, filling with `fill`.

    Equivalent to torchvision's RandomCrop(size, padding=pad, fill=...) per sample, done as one
    pad and one `gather` of each sample's window from its flattened padded image (on a CPU ~2x
    faster than indexing with four broadcast index tensors, and bitwise the same).
    """
    if pad == 0:
        return images
    batch, channels, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), value=fill)
    padded_width = width + 2 * pad
    offsets = torch.randint(
        0, 2 * pad + 1, (2, batch), generator=generator, device=generator.device
    ).to(images.device)
    rows = torch.arange(height, device=images.device)[:, None] * padded_width
    window = (rows + torch.arange(width, device=images.device)).flatten()
    corner = offsets[0] * padded_width + offsets[1]
    index = (corner[:, None] + window)[:, None, :].expand(batch, channels, height * width)
    return padded.flatten(2).gather(2, index).view(batch, channels, height, width)


def shard_indices(n: int, seed: int, epoch: int, rank: int, world_size: int) -> torch.Tensor:
    """A rank's training indices for `epoch`: a disjoint, equal-sized slice of one permutation
    shared by all ranks, so together they cover all but n mod world_size samples."""
    generator = torch.Generator().manual_seed(derive_seed("order", seed, epoch))
    order = torch.randperm(n, generator=generator)
    per_rank = n // world_size
    return order[rank * per_rank : (rank + 1) * per_rank]


def steps_per_epoch(n: int, world_size: int, batch_size: int) -> int:
    """Training steps per epoch on every rank (each rank holds n // world_size samples)."""
    return -(-(n // world_size) // batch_size)


def eval_indices(n: int, rank: int, world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A rank's evaluation indices (strided), padded so every rank has ceil(n / world_size);
    the second tensor marks the real ones, so gathered results can drop the padding."""
    per_rank = -(-n // world_size)
    index = torch.arange(per_rank) * world_size + rank
    valid = index < n
    return torch.where(valid, index, torch.zeros_like(index)), valid


@dataclass(frozen=True)
class Normalisation:
    mean: float = 0.0
    std: float = 1.0

    @property
    def background(self) -> float:
        """The normalised value of a black (0) pixel, used to fill translated borders."""
        return (0.0 - self.mean) / self.std


class BatchSource:
    """Shuffled (training) or ordered (evaluation) batches of one split, on `device`.

    Images are stored as float32 in [0,1], normalised with `norm` once. `batch_size` is per rank.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device | str = "cpu",
        norm: Normalisation = Normalisation(),
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        translate: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.images = ((split.images.to(self.device).float() / 255.0) - norm.mean) / norm.std
        self.labels = split.labels.to(self.device)
        self.batch_size = batch_size
        self.norm = norm
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.translate = translate

    def __len__(self) -> int:
        """Samples in the split."""
        return len(self.labels)

    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self), self.world_size, self.batch_size)

    def train_epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled, augmented batches of this rank's shard for `epoch`."""
        index = shard_indices(len(self), self.seed, epoch, self.rank, self.world_size)
        index = index.to(self.device)
        # Augmentation must differ across ranks but be reproducible from (seed, epoch, rank).
        generator = torch.Generator(device=self.device)
        generator.manual_seed(derive_seed("augment", self.seed, epoch, self.rank))
        for start in range(0, len(index), self.batch_size):
            batch = index[start : start + self.batch_size]
            images = random_translate(
                self.images[batch], self.translate, self.norm.background, generator
            )
            yield images, self.labels[batch]

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Un-augmented batches of this rank's strided shard, padded to equal length across ranks.

        Yields (images, labels, valid); `valid` marks the real (non-padding) samples, so gathered
        per-sample results can be filtered to exactly the N samples of the split.
        """
        index, valid = eval_indices(len(self), self.rank, self.world_size)
        index, valid = index.to(self.device), valid.to(self.device)
        for start in range(0, len(index), self.batch_size):
            batch = index[start : start + self.batch_size]
            yield self.images[batch], self.labels[batch], valid[start : start + self.batch_size]
