"""SimpleNet as the source built it: parameter counts, feature-map sizes, the solver's steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simplenet.config import SimpleNetConfig
from simplenet.model import SimpleNet, build_model, parameter_count, shift_averaged
from simplenet.train import (
    CAFFE_MILESTONES,
    build_optimizer,
    multistep_multiplier,
    one_cycle_multiplier,
)

# Parameter counts of the source's nets on 1-channel input (README, "The source").
SOURCE_PARAMETERS = {"standard": 5.50e6, "slim": 311e3}


@pytest.mark.parametrize("layout", ["pytorch", "caffe"])
@pytest.mark.parametrize("name", ["standard", "slim"])
def test_parameter_count_matches_the_source_within_1_percent(name: str, layout: str) -> None:
    count = parameter_count(build_model(name, layout=layout))  # type: ignore[arg-type]
    assert abs(count - SOURCE_PARAMETERS[name]) / SOURCE_PARAMETERS[name] < 0.01, count


def feature_maps(model: SimpleNet) -> list[tuple[str, int, int, int]]:
    """(layer kind, channels, height, width) after every conv and pool, for one 28x28 digit."""
    shapes: list[tuple[str, int, int, int]] = []
    for module in model.features:
        if isinstance(module, nn.Conv2d | nn.MaxPool2d):
            kind = "pool" if isinstance(module, nn.MaxPool2d) else f"conv{module.kernel_size[0]}"
            module.register_forward_hook(
                lambda m, i, out, kind=kind: shapes.append((kind, *out.shape[1:]))
            )
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    return shapes


def test_standard_feature_maps_layer_by_layer_pytorch_layout() -> None:
    """No extra pool after the 512 layer: the last pool takes 3x3 to 1x1."""
    c3 = "conv3"
    assert feature_maps(build_model("standard")) == [  # type: ignore[arg-type]
        (c3, 64, 28, 28),
        (c3, 128, 28, 28),
        (c3, 128, 28, 28),
        (c3, 128, 28, 28),
        ("pool", 128, 14, 14),
        (c3, 128, 14, 14),
        (c3, 128, 14, 14),
        (c3, 256, 14, 14),
        ("pool", 256, 7, 7),
        (c3, 256, 7, 7),
        (c3, 256, 7, 7),
        ("pool", 256, 3, 3),
        (c3, 512, 3, 3),
        ("conv1", 2048, 3, 3),
        ("conv1", 256, 3, 3),
        ("pool", 256, 1, 1),
        (c3, 256, 1, 1),
    ]


def test_slim_feature_maps_caffe_layout_use_ceil_pools() -> None:
    c3 = "conv3"
    assert feature_maps(build_model("slim", layout="caffe")) == [  # type: ignore[arg-type]
        (c3, 64, 28, 28),
        (c3, 32, 28, 28),
        (c3, 32, 28, 28),
        (c3, 32, 28, 28),
        ("pool", 32, 14, 14),
        (c3, 32, 14, 14),
        (c3, 32, 14, 14),
        (c3, 64, 14, 14),
        ("pool", 64, 7, 7),
        (c3, 64, 7, 7),
        (c3, 64, 7, 7),
        ("pool", 64, 4, 4),
        (c3, 128, 4, 4),
        ("conv1", 256, 4, 4),
        ("conv1", 64, 4, 4),
        ("pool", 64, 2, 2),
        (c3, 64, 2, 2),
    ]


def test_caffe_layout_has_batchnorm_on_the_first_ten_convs_only() -> None:
    model = build_model("standard", layout="caffe")
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 10
    assert all(m.eps == 1e-5 and m.momentum == 0.05 for m in norms)
    pytorch = build_model("standard", layout="pytorch")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in pytorch.modules()) == 13


def test_dropout_placement() -> None:
    after_pools = build_model("slim", dropout=0.1, dropout_after="pools")
    after_convs = build_model("slim", dropout=0.1, dropout_after="convs")
    assert sum(isinstance(m, nn.Dropout2d) for m in after_pools.features) == 4
    # 13 convs, 4 of them directly followed by a pool.
    assert sum(isinstance(m, nn.Dropout2d) for m in after_convs.features) == 9


def test_paper_solver_divides_the_lr_by_10_at_the_source_iterations() -> None:
    def paper(step: int) -> float:
        return multistep_multiplier(step, CAFFE_MILESTONES["paper"])

    assert paper(0) == 1.0
    assert paper(4_999) == 1.0
    assert paper(5_000) == pytest.approx(0.1)
    assert paper(29_600) == pytest.approx(1e-4)
    assert paper(60_000) == pytest.approx(1e-6)


def test_slim_solver_is_the_slim_nets_nesterov_sgd_with_its_steps() -> None:
    config = SimpleNetConfig(model="slim", recipe="slim-paper")
    assert (config.lr, config.weight_decay, config.batch_size) == (0.01, 0.005, 100)
    optimizer = build_optimizer(config, build_model("slim"))
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert group["nesterov"] and group["momentum"] == 0.9 and group["weight_decay"] == 0.005
    assert len(optimizer.param_groups) == 1  # Caffe decays every parameter, BatchNorm's too

    def slim(step: int) -> float:
        return multistep_multiplier(step, CAFFE_MILESTONES["slim-paper"])

    assert slim(31_999) == 1.0 and slim(32_000) == pytest.approx(0.1)
    assert slim(54_000) == pytest.approx(1e-3) and slim(74_000) == pytest.approx(1e-4)
    assert config.epochs * 60_000 // config.batch_size > 74_000  # every step is reached


def test_one_cycle_rises_then_falls_to_zero() -> None:
    values = [one_cycle_multiplier(step, 100, 0.2) for step in range(101)]
    assert values[0] == pytest.approx(0.1) and values[20] == pytest.approx(1.0)
    assert max(values) == 1.0 and values[100] == 0.0
    assert values[20:] == sorted(values[20:], reverse=True)


def test_preset_fills_in_only_what_the_command_line_leaves_open() -> None:
    preset = SimpleNetConfig(preset="speedrun")
    assert (preset.model, preset.recipe) == ("fast-tiny", "modern")
    assert SimpleNetConfig(preset="speedrun", epochs=5).epochs == 5
    assert SimpleNetConfig(preset="speedrun", tta=0).tta == 0
    longer = SimpleNetConfig(preset="speedrun-995")
    assert (longer.model, longer.epochs, longer.translate, longer.tta) == ("fast-tiny", 10, 1, 1)
    paper = SimpleNetConfig()
    assert (paper.model, paper.recipe, paper.batch_size, paper.lr) == (
        "standard",
        "paper",
        100,
        0.1,
    )


def test_shift_averaging_averages_probabilities_over_the_five_shifted_copies() -> None:
    images = torch.zeros(2, 1, 28, 28)
    images[0, 0, 10, 10] = 1.0  # one bright pixel: its shifted copies differ
    seen: list[torch.Tensor] = []

    def model(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.clone())
        return batch.flatten(1)[:, :10] * 0 + batch.flatten(1).argmax(1, keepdim=True).float()

    assert shift_averaged(model, 0) is model  # type: ignore[arg-type]
    log_probabilities = shift_averaged(model, 1)(images)  # type: ignore[arg-type]
    assert len(seen) == 5 and all(batch.shape == images.shape for batch in seen)
    bright = sorted(divmod(int(batch[0, 0].argmax()), 28) for batch in seen)
    assert bright == [(9, 10), (10, 9), (10, 10), (10, 11), (11, 10)]
    assert torch.allclose(log_probabilities.exp().sum(1), torch.ones(2))
