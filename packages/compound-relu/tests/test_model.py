"""DendricLinear's branches, gradients and algebra; equal parameter counts across the MLPs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from compound_relu.model import (
    MLP,
    DendricLinear,
    chunk_sizes,
    hyper_step,
    hypo_clamp,
    layer_chunk,
    matched_width,
    mlp_parameters,
    residual_form,
)
from compound_relu.reproduce import COMPOUND_ARMS, claim_rows

SHAPES = [  # (plain width, depth, hyper fraction, hypo fraction, first chunk)
    (256, 3, 0.125, 0.125, 4),  # the source's sizing, the cpu budget's MLP
    (64, 2, 0.25, 0.25, 8),
    (256, 3, 0.25, 0.25, 8),
    (128, 2, 0.1, 0.4, 0),
    (100, 4, 0.3, 0.0, 3),
    (512, 2, 0.0, 0.0, 8),
]


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("plain_width", "depth", "hyper", "hypo", "chunk"), SHAPES)
def test_every_arch_has_the_plain_parameter_count_within_one_percent(
    plain_width: int, depth: int, hyper: float, hypo: float, chunk: int
) -> None:
    shape = {"hyper_fraction": hyper, "hypo_fraction": hypo, "chunk": chunk}
    target = parameters(MLP("plain", plain_width, depth, 784, 10))
    for arch in ("plain", "compound", "residual"):
        width = matched_width(arch, plain_width, depth, 784, 10, **shape)
        model = MLP(arch, width, depth, 784, 10, **shape)
        count = parameters(model)
        assert count == mlp_parameters(arch, width, depth, 784, 10, **shape)
        assert abs(count - target) <= 0.01 * target, (arch, width, count, target)
        for neighbour in (width - 1, width + 1):  # the nearest width, not just a near one
            other = mlp_parameters(arch, neighbour, depth, 784, 10, **shape)
            assert abs(other - target) >= abs(count - target)


def test_hyper_and_hypo_activation_values_on_hand_made_inputs() -> None:
    z = torch.tensor([-1.0, 0.0, 0.49, 0.5, 0.7, 1.0, 3.0])
    for gradient in ("straight-through", "sigmoid", "zero"):
        assert hyper_step(z, 1.0, gradient).tolist() == [0, 0, 0, 1, 1, 1, 1]
        assert hyper_step(z, 2.0, gradient).tolist() == [0, 0, 0, 0, 0, 2, 2]
    assert hypo_clamp(z, 1.0).tolist() == pytest.approx([0, 0, 0.49, 0.5, 0.5, 0.5, 0.5])
    assert hypo_clamp(z, 4.0).tolist() == pytest.approx([0, 0, 0.49, 0.5, 0.7, 1.0, 2.0])


def test_surrogate_slopes() -> None:
    """Straight-through: the ramp clamp(z, 0, T) (slope 1 on [0, T]); sigmoid: slope 1 at T/2,
    smaller away from it."""
    z = torch.tensor([-0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5], requires_grad=True)
    (slope,) = torch.autograd.grad(hyper_step(z, 2.0, "straight-through").sum(), z)
    assert slope.tolist() == [0, 1, 1, 1, 1, 1, 0]
    (slope,) = torch.autograd.grad(hyper_step(z, 2.0, "sigmoid").sum(), z)
    assert slope[3].item() == pytest.approx(1.0)
    assert (slope[[0, 1, 2, 4, 5, 6]] < 1).all() and (slope > 0).all()
    assert not hyper_step(z, 2.0, "zero").requires_grad  # the source's form has no gradient


def hand_made_layer() -> DendricLinear:
    """8 inputs: 2 hyper (one chunk), 2 hypo (one chunk), 4 standard; every weight 1, bias 0."""
    layer = DendricLinear(8, 1, hyper_fraction=0.25, hypo_fraction=0.25, threshold=1.0, chunk=0)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.ones_like(p) if p.dim() == 2 else torch.zeros_like(p))
    return layer


def test_layer_sums_the_branches_then_applies_relu() -> None:
    layer = hand_made_layer()
    x = torch.tensor(
        [
            [0.3, 0.3, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0],  # hyper 0.6 -> 1; hypo 0.2; standard 0
            [0.2, 0.2, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0],  # hyper 0.4 -> 0; hypo 4 -> 0.5
            [1.0, 0.0, 0.0, 0.0, -1.0, -1.0, 0.0, 0.0],  # 1 + 0 - 2 -> ReLU -> 0
            [0.0, 0.0, -3.0, 0.0, 0.5, 0.25, 0.0, 0.0],  # 0 + 0 + 0.75
        ]
    )
    assert layer(x).squeeze(1).tolist() == pytest.approx([1.2, 0.5, 0.0, 0.75])


@pytest.mark.parametrize("gradient", ["straight-through", "sigmoid", "zero"])
def test_gradient_reaches_the_hyper_weights_only_with_a_surrogate(gradient: str) -> None:
    torch.manual_seed(0)
    layer = DendricLinear(32, 16, threshold=1.0, chunk=4, hyper_gradient=gradient)
    layer(torch.randn(64, 32)).sum().backward()
    hyper = [p.grad for p in layer.hyper.parameters()]
    if gradient == "zero":
        assert all(g is None for g in hyper)
    else:
        assert all(g is not None and g.abs().sum() > 0 for g in hyper)
    for p in [*layer.hypo.parameters(), *layer.standard.parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_chunks_split_each_branch_into_its_own_linears() -> None:
    assert chunk_sizes(16, 8) == [8, 8]
    assert chunk_sizes(10, 4) == [4, 3, 3]
    assert chunk_sizes(10, 0) == [10]
    assert chunk_sizes(0, 8) == []
    layer = DendricLinear(64, 32, hyper_fraction=0.25, hypo_fraction=0.125, chunk=4)
    assert [lin.in_features for lin in layer.hyper] == [4] * 4
    assert [lin.in_features for lin in layer.hypo] == [4] * 2
    assert layer.standard.in_features == 40


def source_chunks(i: int) -> list[int]:
    """The source's hyper (and hypo) chunks of its compound layer i (model/shallownet.py)."""
    return [2 ** (3 - i)] * 2 ** (4 - i)


def test_the_default_layers_are_sized_as_the_source_sized_its_own() -> None:
    """The source's layers 1 and 2 had 256 and 64 inputs (its encoder 784-256-64-8); ours
    keep its fractions and chunks whatever the width: 1/8 per branch, chunks 4 then 2."""
    assert [layer_chunk(4, index) for index in range(5)] == [4, 2, 1, 1, 1]
    assert layer_chunk(0, 3) == 0
    for index, inputs in enumerate((256, 64)):
        layer = DendricLinear(inputs, 10, chunk=layer_chunk(4, index))
        assert layer.hyper_chunks == layer.hypo_chunks == source_chunks(index + 1)
    mlp = MLP("compound", 256, 3, 784, 10)
    assert [layer.hyper_chunks for layer in mlp.middle] == [[4] * 8, [2] * 16]
    assert [layer.standard.in_features for layer in mlp.middle] == [192, 192]


def test_without_hyper_and_hypo_inputs_the_compound_mlp_is_the_plain_mlp() -> None:
    torch.manual_seed(3)
    compound = MLP("compound", 48, 3, 784, 10, hyper_fraction=0.0, hypo_fraction=0.0)
    torch.manual_seed(3)
    plain = MLP("plain", 48, 3, 784, 10)
    assert parameters(compound) == parameters(plain)
    images = torch.randn(32, 1, 28, 28)
    assert torch.equal(compound(images), plain(images))
    layer = compound.middle[0]
    x = torch.randn(32, 48)
    assert torch.equal(layer(x), F.relu(layer.standard(x)))


@pytest.mark.parametrize("chunk", [8, 2])
def test_a_compound_layer_is_a_residual_block(chunk: int) -> None:
    """Hypo chunks are exactly ReLU(z) - ReLU(z - T/2); hyper steps are steep ReLU pairs,
    exact outside a window of width T/s below T/2, so the mismatch vanishes as s grows."""
    torch.manual_seed(1)
    x = torch.randn(2000, 48, dtype=torch.float64)
    hypo_only = DendricLinear(48, 24, hyper_fraction=0.0, hypo_fraction=0.5, chunk=chunk)
    hypo_only.double()
    assert (hypo_only(x) - residual_form(hypo_only)(x)).abs().max() < 1e-12

    layer = DendricLinear(48, 24, 0.25, 0.25, threshold=2.0, chunk=chunk).double()
    mismatches = []
    for steepness in (1e1, 1e3, 1e6):
        differs = (layer(x) - residual_form(layer, steepness)(x)).abs() > 1e-6
        mismatches.append(differs.double().mean().item())
    assert mismatches[0] > mismatches[1] > mismatches[2] == 0.0
    form = residual_form(layer)
    assert form.mix.shape == (24, 2 * 24 * (len(layer.hyper) + len(layer.hypo)))


def runs(accuracies: list[float]) -> list[dict]:
    return [{"metrics": {"test/acc1": a / 100}} for a in accuracies]


def verdicts(compound: list[float], at_source_setting: bool = True) -> dict[str, list[str]]:
    """The claim rows' verdicts, by claim, when every compound arm has these accuracies
    against plain 97.0-97.4 and residual 98.0-98.4 (5 seeds)."""
    arms = {
        "plain": runs([97.0, 97.1, 97.2, 97.3, 97.4]),
        "residual": runs([98.0, 98.1, 98.2, 98.3, 98.4]),
    } | {arm: runs(compound) for arm in COMPOUND_ARMS}
    found: dict[str, list[str]] = {}
    for row in claim_rows("mnist", arms, "command", at_source_setting):
        row.check()
        found.setdefault(row.claim, []).append(row.verdict)
    return found


def test_claim_2_is_supported_only_when_compound_stays_within_the_margin_of_residual() -> None:
    near_residual = [98.1, 98.1, 98.15, 98.3, 98.45]  # within ±0.1 of residual
    same = verdicts(near_residual)
    assert same == {
        "plain beats compound": ["contradicted"] * 3,
        "compound + 0.5 points beats residual": ["supported"] * 3,
        "residual + 0.5 points beats compound": ["supported"] * 3,
    }
    worse = verdicts([97.0, 97.2, 97.2, 97.3, 97.4])  # about 1 point below residual
    assert worse["compound + 0.5 points beats residual"] == ["contradicted"] * 3
    assert worse["plain beats compound"] == ["inconclusive"] * 3
    noisy = verdicts([97.6, 98.6, 97.9, 98.9, 98.0])  # centred near residual, too wide
    assert noisy["compound + 0.5 points beats residual"] == ["inconclusive"] * 3
    away = verdicts(near_residual, at_source_setting=False)  # the quick budget
    assert away["compound + 0.5 points beats residual"] == ["direction: supports"] * 3
