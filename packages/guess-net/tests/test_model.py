"""The architecture: equal parameter counts across arms, and routing that sends exactly the
flagged samples (and only them) through the reserved half."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from guess_net.config import GuessNetConfig
from guess_net.model import GuessNetVAE, parameter_count
from guess_net.reproduce import ARMS
from guess_net.train import build_model, training_loss
from mnistlab.cli import UsageError


def arm_config(options: dict) -> GuessNetConfig:
    return dataclasses.replace(GuessNetConfig(tracker="none"), **options)


def test_every_arm_has_the_baselines_parameter_count() -> None:
    counts = {arm: parameter_count(build_model(arm_config(o), 10)) for arm, o in ARMS.items()}
    baseline = counts["baseline"]
    # Same module for baseline, focal and parallel border training: exactly equal.
    assert counts["focal-lin"] == counts["focal-source"] == counts["border-parallel"] == baseline
    # The conditional form pays for its modulation nets with reserved units: no larger, and
    # short by less than one first-layer unit.
    assert baseline - 1000 < counts["border-conditional"] <= baseline


@pytest.mark.parametrize("hidden", [(64, 32), (512, 128, 32)])
def test_conditional_form_falls_short_by_less_than_one_reserved_unit(hidden: tuple) -> None:
    parallel = parameter_count(build_model(arm_config({"hidden": hidden}), 10))
    conditional = build_model(arm_config({"hidden": hidden, "reserved": "conditional"}), 10)
    trim = hidden[0] - hidden[0] // 2 - conditional.reserved[0].norm.num_features
    one_unit_less = GuessNetVAE(hidden=hidden, reserved="conditional", reserved_trim=trim + 1)
    unit_cost = parameter_count(conditional) - parameter_count(one_unit_less)
    assert 0 <= parallel - parameter_count(conditional) < unit_cost


def perturbed_model(reserved: str) -> GuessNetVAE:
    """A model whose reserved heads and modulation nets are no longer at their zero start."""
    torch.manual_seed(0)
    model = GuessNetVAE(hidden=(32, 16), reserved=reserved)  # type: ignore[arg-type]
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("reserved_heads") or "modulation" in name:
                parameter.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("reserved", ["parallel", "conditional"])
def test_routing_sends_exactly_the_flagged_samples_through_the_reserved_half(
    reserved: str,
) -> None:
    model = perturbed_model(reserved).eval()
    x = torch.rand(16, 784)
    flagged = torch.arange(16) % 3 == 0
    routed = model(x, flagged, decode=False)
    main_only = model(x, "none", decode=False)
    everyone = model(x, "all", decode=False)
    assert torch.equal(routed.routed.bool(), flagged)
    torch.testing.assert_close(routed.z_mean[~flagged], main_only.z_mean[~flagged])
    torch.testing.assert_close(routed.z_mean[flagged], everyone.z_mean[flagged])
    assert not torch.allclose(routed.z_mean[flagged], main_only.z_mean[flagged])


@pytest.mark.parametrize("reserved", ["parallel", "conditional"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_reserved_half_learns_only_from_flagged_samples(reserved: str, mode: str) -> None:
    """Through the latent code and the classifier exactly; in training mode the decoder's
    BatchNorm batch statistics also mix flagged samples into every reconstruction (as in the
    source), so there the reconstruction is left out."""
    model = perturbed_model(reserved).train(mode == "train")
    x = torch.rand(16, 784)
    flagged = torch.arange(16) % 4 == 0
    for rows, expect_gradient in ((~flagged, False), (flagged, True)):
        model.zero_grad()
        out = model(x, flagged)
        assert out.recon is not None
        loss = out.logits[rows].square().sum() + out.z_mean[rows].sum() + out.z_logvar[rows].sum()
        if mode == "eval":
            loss = loss + out.recon[rows].sum()
        loss.backward()
        norms = [
            p.grad.abs().sum().item() for p in model.reserved_parameters() if p.grad is not None
        ]
        assert (sum(norms) > 0) == expect_gradient


def test_guess_route_flags_samples_the_guess_net_scores_below_the_threshold() -> None:
    model = perturbed_model("parallel").eval()
    x = torch.rand(64, 784)
    model.flag_threshold.fill_(torch.sigmoid(model(x, "none", decode=False).guess_logit).median())
    out = model(x, "guess", decode=False)
    expected = torch.sigmoid(out.guess_logit) < model.flag_threshold
    assert torch.equal(out.routed.bool(), expected)
    assert 0 < int(expected.sum()) < 64  # the test sees both kinds of sample
    torch.testing.assert_close(out.z_mean, model(x, expected, decode=False).z_mean)


def test_guess_net_reads_detached_activations() -> None:
    model = perturbed_model("parallel").train()
    out = model(torch.rand(16, 784), "all")
    model.zero_grad()
    out.guess_logit.sum().backward()
    encoder = [*model.main.parameters(), *model.reserved.parameters()]
    assert all(p.grad is None for p in encoder)
    assert model.guesser.weight.grad is not None


def test_conditional_batch_norm_modulates_per_sample_from_z_mean() -> None:
    fresh = GuessNetVAE(hidden=(32, 16), reserved="conditional").eval()
    norm = fresh.reserved[0].norm
    h, condition = torch.randn(8, norm.num_features), torch.randn(8, 8)
    plain = torch.nn.functional.batch_norm(
        h, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps
    )
    torch.testing.assert_close(norm(h, condition), plain)  # zero start: a plain BatchNorm
    with torch.no_grad():
        norm.modulation[-1].weight.normal_()
    same_input = h[:1].expand(2, -1)
    modulated = norm(same_input, torch.randn(2, 8))
    assert not torch.allclose(modulated[0], modulated[1])


def test_ge2e_on_latent_codes_trains_its_scale_and_the_encoder() -> None:
    config = arm_config({"ge2e_weight": 0.1, "hidden": (32, 16)})
    model = build_model(config, 10)
    x, labels = torch.rand(40, 784), torch.arange(40) % 10
    training_loss(config, model, x, labels, epoch_index=0).backward()
    assert model.ge2e is not None and model.ge2e.w.grad is not None
    assert model.ge2e.w.grad.abs().item() > 0


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_the_decoder_output_is_sigmoid_or_linear(output: str) -> None:
    torch.manual_seed(0)
    model = GuessNetVAE(decoder_output=output).eval()
    with torch.no_grad():
        model.decoder[-1].bias.fill_(-5.0)  # pre-activations far below 0
        recon = model(torch.rand(4, 784), route="none", decode=True).recon
    assert recon is not None and recon.shape == (4, 784)
    if output == "sigmoid":
        assert ((recon > 0) & (recon < 1)).all()
    else:
        assert (recon < 0).any()


def test_a_latent_too_large_for_memory_is_named_in_the_refusal() -> None:
    config = arm_config({"latent": 100_000_000_000})
    with pytest.raises(UsageError, match="--latent 100000000000 needs about"):
        build_model(config, 10)
