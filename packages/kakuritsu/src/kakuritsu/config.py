"""Kakuritsu's options. Defaults reproduce the original MNIST demo (Adadelta 1.0, StepLR 0.7,
14 epochs, batch 64, train p=0.5); the original CLI's flags keep their names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import tyro

from kakuritsu.model import EvalMode, HeadKind
from mnistlab.classify import ClassifierConfig
from mnistlab.config import RESUMABLE_FIELDS, require


@dataclass
class KakuritsuConfig(ClassifierConfig):
    study: ClassVar[str] = "kakuritsu"
    resumable_fields: ClassVar[frozenset[str]] = RESUMABLE_FIELDS | {"evaluate", "workers"}

    head: HeadKind = "K"
    """K: Kakuritsu synapses, D: Linear+Dropout, W: plain Linear."""
    p: float = 0.5
    """Probability that a Kakuritsu synapse is active (no 1/p rescale), in (0, 1]."""
    dropout: float = 0.5
    """Dropout rate of the D head (and of K's 'swapped' evaluation), in [0, 1)."""
    mc_samples: int = 16
    """Sampled passes whose softmax the 'mc' evaluation averages (an estimate of the expected
    prediction over the noise)."""
    hidden: int = 128
    """Width of the head's hidden layer."""
    model: Literal["demo", "small"] = "demo"
    """demo: the original conv32-conv64-maxpool backbone (9216 features); small: two strided
    convs (1600 features), fast on CPU."""
    image_folder: Path | None = None
    """ImageNet-style root with train/ and val/ class folders; uses --arch as backbone."""
    dummy: bool = False
    """Fake ImageNet-shaped data with --arch, for benchmarking (original --dummy)."""
    arch: str = "resnet152"
    """torchvision model for --image-folder / --dummy (its fc is replaced by the head)."""
    pretrained: bool = False
    """Load torchvision's pretrained weights for --arch (downloads once; needs network)."""
    freeze_backbone: bool = False
    """Train only the head on frozen backbone features, as the original did."""
    image_size: int = 224
    """Crop size for --image-folder / --dummy."""
    workers: int = 4
    """DataLoader workers for --image-folder / --dummy (MNIST needs none: it lives on device)."""
    epochs: int = 14
    batch_size: Annotated[int, tyro.conf.arg(aliases=("-b",))] = 64
    """Batch size per process."""
    optimizer: Literal["adadelta", "sgd"] = "adadelta"
    """adadelta (MNIST demo) or sgd (ImageNet recipe: --lr 0.01 --momentum 0.9 --wd 1e-4
    --lr-step 30 --lr-gamma 0.1)."""
    lr: float = 1.0
    momentum: float = 0.9
    """SGD momentum."""
    wd: float = 0.0
    """Weight decay."""
    lr_step: int = 1
    """StepLR: decay every N epochs."""
    lr_gamma: float = 0.7
    """StepLR: decay factor."""
    val_size: int = 0
    """Carve a seeded validation split of this size from train and select on it; 0 validates
    on the test split each epoch, as the original did."""
    switch: bool = False
    """Validate with K at p=1 / dropout off (the original --switch)."""
    evaluate: Annotated[bool, tyro.conf.arg(aliases=("-e",))] = False
    """Only evaluate the checkpoint given with --resume, in every mode."""
    log_every: Annotated[int, tyro.conf.arg(aliases=("--print-freq",))] = 100
    """Log the training loss every N steps (original --print-freq)."""
    dummy_samples: int = 10_000
    """Training samples of --dummy data (validation: a tenth of it)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.p <= 1, f"--p must be in (0, 1], got {self.p}")
        require(0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")
        require(self.wd >= 0, f"--wd must be >= 0, got {self.wd}")
        require(0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}")
        require(self.mc_samples >= 1, f"--mc-samples must be >= 1, got {self.mc_samples}")
        require(self.hidden >= 1, f"--hidden must be >= 1, got {self.hidden}")
        require(self.image_size >= 32, f"--image-size must be >= 32, got {self.image_size}")
        require(self.lr_step >= 1 and self.lr_gamma > 0, "--lr-step must be >= 1, --lr-gamma > 0")
        require(self.workers >= 0, f"--workers must be >= 0, got {self.workers}")
        require(
            self.dummy_samples >= 10, f"--dummy-samples must be >= 10, got {self.dummy_samples}"
        )
        require(not (self.dummy and self.image_folder), "give --dummy or --image-folder, not both")
        require(not self.evaluate or self.resume is not None, "--evaluate needs --resume PATH")

    @property
    def validation_mode(self) -> EvalMode:
        return "deterministic" if self.switch else "sampled"

    @property
    def imagenet_style(self) -> bool:
        return self.dummy or self.image_folder is not None
