"""The evaluation modes apply the noise they name, to any trained head, whatever nn's eval()."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kakuritsu.layers import kakuritsu_linear
from kakuritsu.model import Head, HeadKind, KakuritsuNet, Noise

FEATURES, HIDDEN, CLASSES, BATCH = 40, 24, 10, 256


def evaluated_net(kind: HeadKind) -> KakuritsuNet:
    """A net in nn's eval mode, which must not turn any of the evaluation modes' noise off."""
    torch.manual_seed(0)
    return KakuritsuNet(nn.Identity(), Head(kind, FEATURES, HIDDEN, CLASSES)).eval()


def inputs() -> torch.Tensor:
    return torch.randn(BATCH, FEATURES, generator=torch.Generator().manual_seed(1))


def reference_forward(head: Head, x: torch.Tensor, noise: Noise) -> torch.Tensor:
    """The head's two layers written out with the given noise, drawing from the global RNG in
    the same order as the head does."""

    def layer(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if noise == "kakuritsu":
            out = kakuritsu_linear(x, weight, head.p)
            return out if bias is None else out + bias
        out = F.linear(x, weight, bias)
        return F.dropout(out, head.dropout, training=True) if noise == "dropout" else out

    hidden = F.relu(layer(x, head.hidden.weight, head.hidden.bias))
    return layer(hidden, head.out.weight, head.out.bias)


@torch.no_grad()
def test_d_sampled_keeps_dropout_on_after_eval() -> None:
    net = evaluated_net("D")
    net.head.set_eval_mode("sampled")
    logits = net(inputs())
    # Dropout 0.5 on the logits zeroes about half of them; without dropout none is exactly 0.
    assert 0.4 < (logits == 0).float().mean().item() < 0.6
    assert not torch.equal(net(inputs()), logits)
    net.head.set_eval_mode("deterministic")
    assert (net(inputs()) != 0).all() and torch.equal(net(inputs()), net(inputs()))


@pytest.mark.parametrize(
    ("kind", "mode", "noise"),
    [
        ("K", "sampled", "kakuritsu"),
        ("K", "swapped", "dropout"),
        ("D", "sampled", "dropout"),
        ("D", "swapped", "kakuritsu"),
        ("W", "swapped", "kakuritsu"),
        ("W", "swapped-dropout", "dropout"),
        ("K", "deterministic", "none"),
        ("D", "deterministic", "none"),
    ],
)
@torch.no_grad()
def test_each_mode_applies_its_noise(kind: HeadKind, mode: str, noise: Noise) -> None:
    net = evaluated_net(kind)
    net.head.set_eval_mode(mode)  # type: ignore[arg-type]
    torch.manual_seed(2)
    out = net(inputs())
    torch.manual_seed(2)
    assert torch.equal(out, reference_forward(net.head, inputs(), noise))
    if noise != "none":  # and the noise is really drawn: a second pass differs
        assert not torch.equal(net(inputs()), out)


@pytest.mark.parametrize("kind", ["K", "D"])
@pytest.mark.parametrize("passes", [1, 4])
@torch.no_grad()
def test_mc_is_the_mean_softmax_of_sampled_passes_from_the_same_rng_state(
    kind: HeadKind, passes: int
) -> None:
    net = evaluated_net(kind)
    net.head.set_eval_mode("mc")
    torch.manual_seed(3)
    sampled = torch.stack([F.softmax(net(inputs()), dim=1) for _ in range(passes)])
    torch.manual_seed(3)
    mc = net.monte_carlo_log_probs(inputs(), passes)
    torch.testing.assert_close(mc, sampled.mean(dim=0).log())
    if passes == 1:  # one pass is the sampled evaluation itself
        torch.manual_seed(3)
        torch.testing.assert_close(mc, F.log_softmax(net(inputs()), dim=1))
