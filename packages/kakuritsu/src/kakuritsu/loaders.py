"""Batches from a map-style Dataset too big for memory (kakuritsu's ImageFolder and FakeData
inputs), with the same sharding and interface as `BatchSource`, so the runtime's loop and
evaluation serve both."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from mnistlab.batches import eval_indices, shard_indices, steps_per_epoch


class LoaderBatches:
    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device | str = "cpu",
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 2,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.workers = workers

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self), self.world_size, self.batch_size)

    def _loader(self, index: torch.Tensor) -> DataLoader:
        return DataLoader(
            Subset(self.dataset, index.tolist()),
            batch_size=self.batch_size,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def train_epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index = shard_indices(len(self), self.seed, epoch, self.rank, self.world_size)
        for images, labels in self._loader(index):
            yield images.to(self.device, non_blocking=True), labels.to(self.device)

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        index, valid = eval_indices(len(self), self.rank, self.world_size)
        for start, (images, labels) in zip(
            range(0, len(index), self.batch_size), self._loader(index), strict=True
        ):
            mask = valid[start : start + self.batch_size].to(self.device)
            yield images.to(self.device, non_blocking=True), labels.to(self.device), mask
