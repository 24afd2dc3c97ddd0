"""Statistical and gradient tests of the Kakuritsu layer.

Every tolerance is 5 standard errors of the quantity tested, computed from the distribution the
layer must follow; the generators are seeded, so the tests are deterministic.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kakuritsu.layers import KakuritsuLinear, kakuritsu_linear

SIGMAS = 5.0


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sample_masks(
    batch: int, n_out: int, n_in: int, p: float, generator: torch.Generator, **kwargs: int
) -> torch.Tensor:
    """The layer's masks m[b, j, i] themselves, read off its output.

    With x = 1 and W[j, i] = 2**i in float64, out[b, j] = sum_i m[b, j, i] 2**i is an exact
    integer whose binary digits are the mask (n_in <= 52).
    """
    x = torch.ones(batch, n_in, dtype=torch.float64)
    weight = (2.0 ** torch.arange(n_in, dtype=torch.float64)).expand(n_out, n_in)
    out = kakuritsu_linear(x, weight, p, generator=generator, **kwargs)
    integers = out.to(torch.int64).unsqueeze(-1)
    return ((integers >> torch.arange(n_in)) & 1).bool()


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


@pytest.mark.parametrize("p", [0.5, 0.25, 0.3, 0.9, 0.01])
def test_kept_count_is_binomial(p: float) -> None:
    """x = 1, W = 1: out[b, j] counts the kept synapses, Binomial(in, p) if they are i.i.d."""
    n_in, cells = 1024, 128 * 32
    x, weight = torch.ones(128, n_in), torch.ones(32, n_in)
    counts = kakuritsu_linear(x, weight, p, generator=seeded()).double().flatten()
    binomial_var = n_in * p * (1 - p)
    mean_se = math.sqrt(binomial_var / cells)
    # A truncated p (e.g. floor(256 p) / 256 = 0.296875 for p = 0.3) is more than 5 SE away.
    assert abs(counts.mean().item() - n_in * p) < SIGMAS * mean_se
    var_se = binomial_var * math.sqrt(2 / (cells - 1))
    assert abs(counts.var().item() - binomial_var) < SIGMAS * var_se


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_whole_call_total_is_binomial(p: float) -> None:
    """The number of synapses kept in a whole call is Binomial(B out in, p): its variance over
    calls would grow if any synapses, however far apart, shared or correlated their masks."""
    calls, synapses = 400, 64 * 16 * 48
    x, weight = torch.ones(64, 48), torch.ones(16, 48)
    generator = seeded(5)
    totals = torch.tensor(
        [kakuritsu_linear(x, weight, p, generator=generator).sum().item() for _ in range(calls)],
        dtype=torch.float64,
    )
    binomial_var = synapses * p * (1 - p)
    assert abs(totals.mean().item() - synapses * p) < SIGMAS * math.sqrt(binomial_var / calls)
    var_se = binomial_var * math.sqrt(2 / (calls - 1))
    assert abs(totals.var().item() - binomial_var) < SIGMAS * var_se


@pytest.mark.parametrize("max_chunk_elements", [2**22, 1, 3 * 40 + 5])
@pytest.mark.parametrize("p", [0.5, 0.3])
def test_masks_are_independent_and_uniform(p: float, max_chunk_elements: int) -> None:
    """Every input position keeps its synapses with probability p, and masks are uncorrelated
    across calls, samples, units and inputs, whatever the chunking (1: less than one row of W
    per chunk; 125: three units of a row, the last chunk of a row holding two)."""
    batch, n_out, n_in = 256, 8, 40
    generator = seeded(1)
    first = sample_masks(batch, n_out, n_in, p, generator, max_chunk_elements=max_chunk_elements)
    second = sample_masks(batch, n_out, n_in, p, generator, max_chunk_elements=max_chunk_elements)
    assert first.shape == (batch, n_out, n_in)

    per_input = first.double().mean(dim=(0, 1))
    assert (per_input - p).abs().max() < SIGMAS * math.sqrt(p * (1 - p) / (batch * n_out))

    pairs = {
        "calls": (first, second),
        "samples": (first[:-1], first[1:]),
        "units": (first[:, :-1], first[:, 1:]),
        "inputs": (first[..., :-1], first[..., 1:]),
    }
    for name, (a, b) in pairs.items():
        assert abs(correlation(a, b)) < SIGMAS / math.sqrt(a.numel()), name


@pytest.mark.parametrize("mode", ["exact", "gaussian"])
@pytest.mark.parametrize("p", [0.5, 0.3])
def test_output_moments(mode: str, p: float) -> None:
    """Over many draws the output has mean p (x @ W^T) and variance p (1-p) (x^2 @ (W^2)^T)."""
    draws, batch, n_out, n_in = 400, 8, 32, 64
    generator = seeded(2)
    x = torch.randn(batch, n_in, generator=generator, dtype=torch.float64)
    weight = torch.empty(n_out, n_in, dtype=torch.float64).uniform_(-0.1, 0.1, generator=generator)
    out = kakuritsu_linear(x.repeat(draws, 1), weight, p, mode, generator=generator)
    out = out.view(draws, batch, n_out)

    mean = p * (x @ weight.T)
    var = p * (1 - p) * ((x * x) @ (weight * weight).T)
    cells = batch * n_out
    z = (out.mean(0) - mean) / (var / draws).sqrt()  # ~ N(0, 1) per cell
    assert abs(z.mean().item()) < SIGMAS / math.sqrt(cells)
    assert abs((z * z).mean().item() - 1) < SIGMAS * math.sqrt(2 / cells)
    ratio = out.var(0) / var  # ~ 1 per cell, SE sqrt(2 / (draws - 1)) for a near-normal sum
    assert abs(ratio.mean().item() - 1) < SIGMAS * math.sqrt(2 / ((draws - 1) * cells))


@pytest.mark.parametrize("mode", ["exact", "gaussian"])
@pytest.mark.parametrize("p", [0.5, 0.3])
def test_gradients_are_dense(mode: str, p: float) -> None:
    x = torch.randn(2, 5, 64, requires_grad=True)
    layer = KakuritsuLinear(64, 16, p=p, mode=mode)
    upstream = torch.randn(2, 5, 16)
    out = layer(x)
    assert out.shape == (2, 5, 16)
    grad_x, grad_w = torch.autograd.grad(out, (x, layer.weight), upstream)

    dense_x = x.detach().requires_grad_()
    dense_w = layer.weight.detach().requires_grad_()
    ref_x, ref_w = torch.autograd.grad(F.linear(dense_x, dense_w), (dense_x, dense_w), upstream)
    torch.testing.assert_close(grad_x, ref_x)
    torch.testing.assert_close(grad_w, ref_w)


@pytest.mark.parametrize("mode", ["exact", "gaussian"])
def test_p_one_is_dense(mode: str) -> None:
    layer = KakuritsuLinear(64, 16, p=0.5, mode=mode).eval()
    x = torch.randn(8, 64)
    assert not torch.equal(layer(x), layer(x)), "samples in eval mode too"
    layer.p = 1.0
    assert torch.equal(layer(x), F.linear(x, layer.weight))


@pytest.mark.parametrize("mode", ["exact", "gaussian"])
def test_draws_come_from_the_given_or_global_rng(mode: str) -> None:
    layer = KakuritsuLinear(300, 20, p=0.3, mode=mode, max_chunk_elements=1000)
    x = torch.randn(6, 300)
    assert torch.equal(layer(x, seeded(3)), layer(x, seeded(3)))
    torch.manual_seed(4)
    first, second = layer(x), layer(x)
    torch.manual_seed(4)
    assert torch.equal(layer(x), first)
    assert not torch.equal(first, second)


def test_initialisation_and_repr() -> None:
    layer = KakuritsuLinear(9216, 128, p=0.25, mode="gaussian")
    assert layer.weight.shape == (128, 9216)
    assert layer.weight.abs().max() <= 0.1
    # U(-a, a): std a / sqrt(3); the sample std's relative SE is sqrt(0.8 / (4 n)) (kurtosis 1.8).
    relative_se = math.sqrt(0.8 / (4 * layer.weight.numel()))
    assert layer.weight.std().item() == pytest.approx(0.1 / math.sqrt(3), rel=SIGMAS * relative_se)
    assert repr(layer) == (
        "KakuritsuLinear(in_features=9216, out_features=128, p=0.25, mode='gaussian')"
    )


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, math.nan])
def test_bad_p_raises(p: float) -> None:
    with pytest.raises(ValueError, match="p must be"):
        KakuritsuLinear(4, 3, p=p)
    layer = KakuritsuLinear(4, 3)
    with pytest.raises(ValueError, match="p must be"):
        layer.p = p
    assert layer.p == 0.5
    with pytest.raises(ValueError, match="p must be"):
        kakuritsu_linear(torch.ones(2, 4), layer.weight, p)


def test_bad_mode_and_chunk_raise() -> None:
    with pytest.raises(ValueError, match="mode"):
        KakuritsuLinear(4, 3, mode="approximate")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_chunk_elements"):
        kakuritsu_linear(torch.ones(2, 4), torch.ones(3, 4), 0.5, max_chunk_elements=0)
