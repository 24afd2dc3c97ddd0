"""The smallest whole study, the template to copy for a new one: a config, a `train` that
reads top to bottom, and its registration. The shared tests run the runtime on it
(test_runtime.py); `train_toy`'s keyword arguments only let them inject faults."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mnistlab.batches import BatchSource
from mnistlab.config import RunConfig
from mnistlab.data import Split
from mnistlab.loop import fit
from mnistlab.run import Run
from mnistlab.study import Budget, Row, Study

DESCRIPTION = "Toy study: a small MLP learns where a bright band sits in random images."


@dataclass
class ToyConfig(RunConfig):
    study: ClassVar[str] = "toy"
    epochs: int = 3
    lr: float = 0.1
    checkpointed: bool = False
    """Hand the model to the run as `checkpointed=` instead of preparing it (as rmdl does with
    its ensemble)."""


def toy_split(n: int = 512) -> Split:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (n,), generator=generator)
    images = torch.randint(0, 60, (n, 1, 28, 28), generator=generator, dtype=torch.uint8)
    for row in range(3):  # a learnable cue: a bright band whose height encodes the label
        images[torch.arange(n), 0, labels * 6 + 2 + row, :] = 255
    return Split(images, labels)


def train_toy(
    config: ToyConfig,
    nan_after_steps: int | None = None,
    interrupt_at_step: int | None = None,
    stop_after_epoch: int | None = None,
    signal_number: int = signal.SIGINT,
    impossible_allocation_at_step: int | None = None,
) -> dict:
    with Run(config) as run:
        train = BatchSource(toy_split(), 64, run.device, seed=config.seed, translate=1)
        test = BatchSource(toy_split(256), 100, run.device)
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 4)
        ).to(run.device)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, 0.5)
        if config.checkpointed:
            optimizer, scheduler = run.prepare(optimizer, scheduler, checkpointed=[model])
        else:
            model, optimizer, scheduler = run.prepare(model, optimizer, scheduler)
        calls = [0]

        def loss_fn(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            if calls[0] == interrupt_at_step:
                os.kill(os.getpid(), signal_number)  # as Ctrl-C or a scheduler would
            if calls[0] == impossible_allocation_at_step:
                torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: the allocator refuses it
            loss = F.cross_entropy(model(images), labels)
            return loss * float("nan") if nan_after_steps and calls[0] > nan_after_steps else loss

        def evaluate() -> dict[str, float]:
            return run.evaluate(test, lambda x, y: {"acc": (model(x).argmax(1) == y).float()})

        metrics = fit(
            run,
            model=model,
            optimizers=[optimizer],
            schedulers=[scheduler],
            train=train,
            loss_fn=loss_fn,
            evaluate=evaluate,
            epochs=config.epochs,
            on_epoch_end=lambda epoch, train_loss, metrics: epoch == stop_after_epoch,
        )
        return run.finish(metrics, model)


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    """The toy has no source to compare with."""
    return []


TOY = Study(ToyConfig, train_toy, DESCRIPTION, reproduce=reproduce)
TOY_CHECKPOINTED = Study(
    ToyConfig, train_toy, DESCRIPTION, reproduce=reproduce, smoke_args=("--checkpointed",)
)

if __name__ == "__main__":  # `accelerate launch toy.py FLAGS` (the DDP test of test_runtime.py)
    TOY.main()
