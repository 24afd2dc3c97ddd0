"""SimpleNet (Hasanpour et al. 2016, arXiv 1608.06037) on 1x28x28 input, and the small
BatchNorm conv nets of the speed presets (the package README's "The source").

SimpleNet is 13 conv layers (3x3 pad 1, except two 1x1 "cccp" layers) with BatchNorm and ReLU,
max pools between stages, a global max pool and one linear classifier. Two layouts:

* ``pytorch`` (Coderx7/SimpleNet_Pytorch): BatchNorm after all 13 convs, floor-mode pools
  (28 -> 14 -> 7 -> 3 -> 1). The PyTorch port's extra pool after the 512 layer is left out: on
  28x28 it would pool a 1x1 map. Its 1x1 convs have padding 1 there; here they have none, as in
  Caffe, so a 1x1 conv keeps the map size.
* ``caffe`` (the MNIST prototxts of Coderx7/SimpleNet, which produced the paper's numbers): no
  BatchNorm on the last three layers (cccp4/5/6), Caffe's ceil-mode pools (28 -> 14 -> 7 -> 4
  -> 2 -> 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

Layout = Literal["pytorch", "caffe"]
DropoutAfter = Literal["pools", "convs"]
POOL = "pool"
# (width, kernel) per conv, POOL for a 2x2 max pool; a global max pool and Linear follow.
Layers = tuple[tuple[int, int] | str, ...]
SIMPLENET_LAYERS: dict[str, Layers] = {
    "standard": (
        (64, 3),
        (128, 3),
        (128, 3),
        (128, 3),
        POOL,
        (128, 3),
        (128, 3),
        (256, 3),
        POOL,
        (256, 3),
        (256, 3),
        POOL,
        (512, 3),
        (2048, 1),
        (256, 1),
        POOL,
        (256, 3),
    ),
    "slim": (
        (64, 3),
        (32, 3),
        (32, 3),
        (32, 3),
        POOL,
        (32, 3),
        (32, 3),
        (64, 3),
        POOL,
        (64, 3),
        (64, 3),
        POOL,
        (128, 3),
        (256, 1),
        (64, 1),
        POOL,
        (64, 3),
    ),
}
# The Caffe MNIST nets put BatchNorm on the first ten convs only.
CAFFE_BATCHNORM_LAYERS = 10


class SimpleNet(nn.Module):
    def __init__(
        self,
        layers: Layers,
        classes: int = 10,
        in_channels: int = 1,
        layout: Layout = "pytorch",
        dropout: float = 0.0,
        dropout_after: DropoutAfter = "pools",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.05,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels, conv_index = in_channels, 0
        for position, layer in enumerate(layers):
            if layer == POOL:
                blocks.append(nn.MaxPool2d(2, ceil_mode=layout == "caffe"))
                if dropout and dropout_after == "pools":
                    blocks.append(nn.Dropout2d(dropout))
                continue
            width, kernel = layer
            conv_index += 1
            blocks.append(nn.Conv2d(channels, width, kernel, padding=kernel // 2))
            if layout == "pytorch" or conv_index <= CAFFE_BATCHNORM_LAYERS:
                blocks.append(nn.BatchNorm2d(width, eps=bn_eps, momentum=bn_momentum))
            blocks.append(nn.ReLU(inplace=True))
            followed_by_pool = position + 1 < len(layers) and layers[position + 1] == POOL
            if dropout and dropout_after == "convs" and not followed_by_pool:
                blocks.append(nn.Dropout2d(dropout))
            channels = width
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout if dropout_after == "pools" else 0.0)
        self.classifier = nn.Linear(channels, classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                gain = nn.init.calculate_gain("relu") if isinstance(module, nn.Conv2d) else 1.0
                nn.init.xavier_uniform_(module.weight, gain=gain)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images).amax(dim=(2, 3))  # global max pool
        return self.classifier(self.dropout(features))


class FastNet(nn.Sequential):
    """The speed presets' net, after the fastest public GPU recipe (two valid convs,
    tuomaso/train_mnist_fast) with BatchNorm: 5x5 conv with stride 2 -> BatchNorm -> ReLU -> 3x3
    conv -> 2x2 max pool -> BatchNorm -> ReLU -> [Linear -> ReLU] -> Linear (28 -> 12 -> 10 -> 5).
    On a CPU most of a step went to the first layer's 24x24 maps and their max pool; the
    stride-2 conv computes the 12x12 map directly (measured ~15-30% faster per run at the same
    accuracy, packages/simplenet/README.md). Pooling before BatchNorm and ReLU runs those on a
    quarter of the values. `pooled_first`: the form it replaced, a 5x5 conv with stride 1 and
    a 2x2 max pool (28 -> 24 -> 12), kept to compare the two on validation."""

    def __init__(
        self,
        widths: tuple[int, int],
        hidden: int = 0,
        classes: int = 10,
        pooled_first: bool = False,
    ) -> None:
        first, second = widths
        first_layer: list[nn.Module] = [nn.Conv2d(1, first, 5, stride=2, bias=False)]
        if pooled_first:
            first_layer = [nn.Conv2d(1, first, 5, bias=False), nn.MaxPool2d(2)]
        head: list[nn.Module] = [nn.Linear(second * 25, classes)]
        if hidden:
            head = [
                nn.Linear(second * 25, hidden),
                nn.ReLU(inplace=True),
                nn.Linear(hidden, classes),
            ]
        super().__init__(
            *first_layer,
            nn.BatchNorm2d(first),
            nn.ReLU(inplace=True),
            nn.Conv2d(first, second, 3, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(second),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            *head,
        )


# (conv widths, hidden units, pooled first layer) of the presets' net and of the two choices
# it made, first on test accuracy, now compared on validation (the cpu report). 16
# first-layer channels: with oneDNN on this repository's CPUs, 24 or 32 ran ~1.6x slower per
# step than 16.
FAST_NETS: dict[str, tuple[tuple[int, int], int, bool]] = {
    "fast-tiny": ((16, 48), 128, False),
    "fast-tiny-pooled": ((16, 48), 128, True),
    "fast-tiny-24-32": ((24, 32), 128, False),
}
Model = Literal["standard", "slim", "fast-tiny", "fast-tiny-pooled", "fast-tiny-24-32"]


def build_model(name: Model, classes: int = 10, **simplenet_options: Any) -> nn.Module:
    """A model by name; `simplenet_options` (layout, dropout, ...) go to SimpleNet."""
    if name in FAST_NETS:
        widths, hidden, pooled_first = FAST_NETS[name]
        return FastNet(widths, hidden, classes, pooled_first)
    return SimpleNet(SIMPLENET_LAYERS[name], classes, **simplenet_options)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def shift_averaged(model: nn.Module, shift: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Test-time augmentation: log of the class probabilities averaged over the image and its
    copies shifted by `shift` pixels up, down, left and right (edge pixels repeated: MNIST's
    border is background). `shift` 0 is the model itself."""
    if shift == 0:
        return model

    def forward(images: torch.Tensor) -> torch.Tensor:
        padded = F.pad(images, (shift,) * 4, mode="replicate")
        height, width = images.shape[-2:]
        offsets = [(shift, shift), (0, shift), (2 * shift, shift), (shift, 0), (shift, 2 * shift)]
        probabilities = sum(
            model(padded[..., top : top + height, left : left + width]).float().softmax(dim=1)
            for top, left in offsets
        )
        return (probabilities / len(offsets)).log()

    return forward
