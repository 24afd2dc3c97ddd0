"""The MNIST-family classification kit: shared options, on-device batch sources, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, NamedTuple

import torch
import torch.nn.functional as F
import tyro

from mnistlab.batches import BatchSource, Normalisation
from mnistlab.config import RunConfig, require
from mnistlab.data import DATASETS, carve_validation, load_split
from mnistlab.run import Run

Dataset = Literal["mnist", "fashion-mnist", "kmnist"]
EVAL_BATCH = 1000


@dataclass
class ClassifierConfig(RunConfig):
    """Options of every study that trains a classifier on an MNIST-family dataset. A study
    changes a default by redeclaring the field (e.g. `epochs: int = 100`)."""

    dataset: Dataset = "mnist"
    """MNIST-family dataset (KMNIST needs a download or its raw files under --data-dir)."""
    epochs: int = 10
    batch_size: Annotated[int, tyro.conf.arg(aliases=("-b",))] = 128
    """Batch size per process."""
    lr: float = 1e-3
    """Learning rate."""
    val_size: int = 5000
    """Seeded validation split carved from train, used for model selection and per-epoch
    metrics; the test split is evaluated once, at the end. 0 validates on test (original
    scripts that did so)."""
    translate: int = 0
    """Random translation of up to N pixels during training (on device)."""
    train_samples: int | None = None
    """Train on only the first N training samples (quick experiments, tests)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        require(self.lr > 0 and self.lr < 1e3, f"--lr must be in (0, 1000), got {self.lr}")
        train_size = DATASETS[self.dataset].train_size
        require(
            0 <= self.val_size < train_size,
            f"--val-size must be between 0 (validate on test) and {train_size - 1}, "
            f"got {self.val_size}",
        )
        require(0 <= self.translate <= 8, f"--translate must be in [0, 8], got {self.translate}")
        require(
            self.train_samples is None or self.train_samples >= 1,
            f"--train-samples must be >= 1, got {self.train_samples}",
        )


class Sources(NamedTuple):
    train: BatchSource
    val: BatchSource
    test: BatchSource
    classes: int


def mnist_sources(
    config: ClassifierConfig,
    run: Run,
    eval_batch: int = EVAL_BATCH,
    *,
    sharded: bool = True,
    standardise: bool = True,
) -> Sources:
    """Train / validation / test splits of `config.dataset`, held on the run's device. With
    --train-samples the validation split is carved first, so a smaller training set never
    changes the validation samples.

    sharded: each process gets a disjoint shard of every epoch (data-parallel training); False
    gives every process the whole splits (e.g. processes that train different models).
    standardise: pixels normalised by the dataset's mean/std; False keeps pixels / 255."""
    info = DATASETS[config.dataset]
    train_split = load_split(config.dataset, "train", config.data_dir)
    test_split = load_split(config.dataset, "test", config.data_dir)
    val_split = test_split
    if config.val_size:
        train_split, val_split = carve_validation(train_split, config.val_size, config.seed)
    if config.train_samples is not None:
        train_split = train_split.subset(torch.arange(min(config.train_samples, len(train_split))))
    norm = Normalisation(info.mean, info.std) if standardise else Normalisation()
    shard = {
        "seed": config.seed,
        "rank": run.rank if sharded else 0,
        "world_size": run.world_size if sharded else 1,
    }
    train = BatchSource(
        train_split, config.batch_size, run.device, norm, translate=config.translate, **shard
    )
    val = BatchSource(val_split, eval_batch, run.device, norm, **shard)
    test = (
        val
        if not config.val_size
        else BatchSource(test_split, eval_batch, run.device, norm, **shard)
    )
    return Sources(train, val, test, info.classes)


PerSample = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def classification_metrics(forward: Callable[[torch.Tensor], torch.Tensor]) -> PerSample:
    """Per-sample loss, top-1 and top-5 correctness of `forward(images)` logits, for
    `Run.evaluate`."""

    def per_sample(images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = forward(images)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        return {
            "loss": F.cross_entropy(logits.float(), labels, reduction="none"),
            "acc1": (top5[:, 0] == labels).float(),
            "acc5": (top5 == labels[:, None]).any(dim=1).float(),
        }

    return per_sample


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}/{name}": value for name, value in metrics.items()}
