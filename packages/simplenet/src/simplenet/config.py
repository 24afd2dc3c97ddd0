"""SimpleNet's options. Defaults: the standard net with the source's Caffe solver (`--recipe
paper`). A recipe fills in the optimiser settings it was tuned with, a preset a whole model +
recipe; a flag given on the command line overrides both (fields left at None resolve here)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, ClassVar, Literal

import tyro

from mnistlab.classify import ClassifierConfig
from mnistlab.config import RESUMABLE_FIELDS, require
from simplenet.model import DropoutAfter, Layout, Model
from simplenet.precision import fastest_precision

Recipe = Literal["paper", "slim-paper", "modern"]
Preset = Literal["none", "speedrun", "speedrun-995"]

# Values a recipe implies unless a flag says otherwise.
RECIPES: dict[str, dict[str, object]] = {
    # The Caffe MNIST solver: AdaDelta (Caffe's "momentum" 0.9 is rho, "delta" is eps), batch
    # 100, x0.1 at fixed iterations, ~114 epochs of 600 iterations, no augmentation.
    "paper": {
        "epochs": 114,
        "batch_size": 100,
        "lr": 0.1,
        "weight_decay": 0.005,
        "label_smoothing": 0.0,
        "translate": 0,
    },
    # The slim net's Caffe solver (Slim_Version_310KParam_99.72/solver.prototxt): Nesterov SGD
    # lr 0.01, momentum 0.9, wd 0.005, batch 100, x0.1 at iterations 32k/48k/54k/74k. Its
    # max_iter is 234,000, but the lr is 1e-6 after 74,000 and its log stops at 112,400
    # (99.68%); 130 epochs of 600 iterations (78,000) cover every lr step.
    "slim-paper": {
        "epochs": 130,
        "batch_size": 100,
        "lr": 0.01,
        "weight_decay": 0.005,
        "label_smoothing": 0.0,
        "translate": 0,
    },
    # Nesterov SGD, one-cycle (linear warm-up, linear decay to 0), label smoothing, +-2 px
    # shifts: the CIFAR speedrun recipe, which converges in a fraction of the Caffe schedule.
    "modern": {
        "epochs": 30,
        "batch_size": 128,
        "lr": 0.1,
        "weight_decay": 5e-4,
        "label_smoothing": 0.1,
        "translate": 2,
    },
}
SPEEDRUN: dict[str, object] = {
    "model": "fast-tiny",
    "recipe": "modern",
    "epochs": 1,
    "batch_size": 256,
    "lr": 0.2,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "translate": 0,
    "mixed_precision": "auto",
    "channels_last": True,
    "tta": 1,
}
PRESETS: dict[str, dict[str, object]] = {
    "none": {},
    # Mean test accuracy >= 99.0% in under 4 s of training on a 2-core CPU (see the README).
    "speedrun": SPEEDRUN,
    # Mean test accuracy >= 99.5% in under a minute: the same net, 10 epochs with 1 px shifts.
    "speedrun-995": {**SPEEDRUN, "epochs": 10, "translate": 1},
}
DEFAULTS: dict[str, object] = {
    "model": "standard",
    "tta": 0,
    "recipe": "paper",
    "mixed_precision": "no",
    "channels_last": False,
}


@dataclass
class SimpleNetConfig(ClassifierConfig):
    study: ClassVar[str] = "simplenet"
    # The modern recipe's one-cycle lr is laid out over --epochs: a run resumed with another
    # length (even a finished one, extended) would train neither length, so it is refused.
    resumable_fields: ClassVar[frozenset[str]] = RESUMABLE_FIELDS - {"epochs"}

    preset: Preset = "none"
    """speedrun: a small BatchNorm conv net trained for one epoch, >= 99.0% mean test
    accuracy in seconds on a CPU; speedrun-995: the same net for 10 epochs with 1 px
    shifts, >= 99.5% (see the README). Flags given override the preset."""
    model: Model | None = None
    """standard (13 layers, 5.50M params), slim (311K), or the speed presets' fast-tiny
    (162K); fast-tiny-pooled and fast-tiny-24-32 are the choices it made, for comparison
    (default: standard, or the preset's)."""
    layout: Layout = "pytorch"
    """SimpleNet layout: pytorch (BatchNorm on all 13 convs, floor pools 28-14-7-3-1) or caffe
    (the MNIST prototxt: no BatchNorm on the last 3 layers, ceil pools 28-14-7-4-2-1)."""
    dropout: float = 0.0
    """SimpleNet Dropout2d rate (the source's MNIST nets used none), in [0, 1)."""
    dropout_after: DropoutAfter = "pools"
    """Where SimpleNet's dropout goes: after every pool and the global pool, or after every
    conv not followed by a pool (the source's 'dropout after most convs' variant)."""
    bn_eps: float = 1e-5
    """SimpleNet BatchNorm epsilon."""
    bn_momentum: float = 0.05
    """SimpleNet BatchNorm running-average momentum (Caffe's moving_average_fraction 0.95)."""
    recipe: Recipe | None = None
    """paper: the Caffe solver (AdaDelta lr 0.1, rho 0.9, eps 1e-3, wd 0.005, batch 100, x0.1 at
    iterations 5k/9.5k/22k/29.6k/32k/37k, 114 epochs); slim-paper: the slim net's Caffe solver
    (Nesterov SGD lr 0.01, momentum 0.9, wd 0.005, batch 100, x0.1 at iterations
    32k/48k/54k/74k, 130 epochs); modern: Nesterov SGD, one-cycle lr,
    label smoothing 0.1, +-2 px shifts, 30 epochs (default: paper, or the preset's)."""
    epochs: int | None = None  # type: ignore[assignment]
    """Training epochs (default: the recipe's or preset's)."""
    batch_size: Annotated[int | None, tyro.conf.arg(aliases=("-b",))] = None  # type: ignore[assignment]
    """Batch size per process (default: the recipe's or preset's)."""
    lr: float | None = None  # type: ignore[assignment]
    """Base (paper) or peak (modern) learning rate (default: the recipe's or preset's)."""
    weight_decay: float | None = None
    """L2 weight decay (default: the recipe's or preset's)."""
    label_smoothing: float | None = None
    """Cross-entropy label smoothing in [0, 1) (default: the recipe's or preset's)."""
    translate: int | None = None  # type: ignore[assignment]
    """Random shifts of up to N pixels during training (default: the recipe's or preset's)."""
    tta: int | None = None
    """Test-time augmentation for validation and test: average the predictions over the image
    and its copies shifted by N pixels in 4 directions; 0 is off (default: 0, or the preset's).
    Evaluation only: it adds nothing to training time."""
    warmup: float = 0.2
    """modern recipe: fraction of the steps spent warming the learning rate up, in [0, 1)."""
    channels_last: bool | None = None
    """Run convolutions in channels-last memory format (default: off, or the preset's: on a
    CPU it measured ~2x faster for the small nets)."""
    mixed_precision: Literal["no", "fp16", "bf16", "auto"] | None = None  # type: ignore[assignment]
    """Autocast precision (Accelerate) (default: no, or the preset's: auto). auto: bf16 on a GPU;
    on a CPU bf16 or fp32, whichever trains the net faster there, measured once per machine
    (see simplenet.precision); config.json records the one that ran."""

    def __post_init__(self) -> None:
        require(self.preset in PRESETS, f"--preset must be one of {list(PRESETS)}")
        preset = PRESETS[self.preset]
        recipe = self.recipe or preset.get("recipe") or DEFAULTS["recipe"]
        require(recipe in RECIPES, f"--recipe must be one of {list(RECIPES)}")
        for name in (f.name for f in fields(self)):
            if getattr(self, name) is None:
                value = preset.get(name, RECIPES[recipe].get(name, DEFAULTS.get(name)))  # type: ignore[index]
                if value is not None:
                    setattr(self, name, value)
        if self.mixed_precision == "auto":
            self.mixed_precision = fastest_precision(self.model)  # type: ignore[arg-type]
        super().__post_init__()
        require(0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")
        require(self.bn_eps > 0, f"--bn-eps must be > 0, got {self.bn_eps}")
        require(
            0 < self.bn_momentum <= 1, f"--bn-momentum must be in (0, 1], got {self.bn_momentum}"
        )
        require(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}")  # type: ignore[operator]
        require(
            0 <= self.label_smoothing < 1,  # type: ignore[operator]
            f"--label-smoothing must be in [0, 1), got {self.label_smoothing}",
        )
        require(0 <= self.warmup < 1, f"--warmup must be in [0, 1), got {self.warmup}")
        require(0 <= self.tta <= 4, f"--tta must be in [0, 4] pixels, got {self.tta}")  # type: ignore[operator]
