"""The local-loss machinery without data: gradient isolation, the similarity matrix, the
original's initialisation and per-loss choices, and the lr schedule's timing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from local_loss.config import LocalLossConfig
from local_loss.model import FeedbackAlignmentLinear, LocalBlock, LocalLossNet, similarity_matrix
from local_loss.train import build_optimizer

LOCAL_LOSSES = ("pred", "sim", "predsim", "bio-predsim")
SMALL = {"hidden": 32, "feat_mult": 1 / 16}  # vgg8b with 8..32 channels: fast on a CPU


def small_net(net: str, loss: str, **overrides) -> LocalLossNet:
    torch.manual_seed(0)
    return LocalLossNet(LocalLossConfig(net=net, loss=loss, **{**SMALL, **overrides}))


def batch(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(size, 1, 28, 28, generator=generator)
    return images, torch.arange(size) % 10


def gradients(loss: torch.Tensor, module: nn.Module) -> list[torch.Tensor | None]:
    parameters = [p for p in module.parameters() if p.requires_grad]
    return list(torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True))


def is_zero(grads: list[torch.Tensor | None]) -> bool:
    return all(g is None or not g.any() for g in grads)


@pytest.mark.parametrize("net", ["mlp", "vgg8b"])
@pytest.mark.parametrize("loss", LOCAL_LOSSES)
def test_a_hidden_block_learns_only_from_its_own_loss(net: str, loss: str) -> None:
    model = small_net(net, loss)
    local, output = model.split_losses(*batch())
    blocks = model.blocks
    for k, block in enumerate(blocks):
        assert not is_zero(gradients(local[k], block)), "a block must learn from its own loss"
        assert is_zero(gradients(output, block)), f"block {k} got gradient from the output CE"
        for above in range(k + 1, len(blocks)):
            assert is_zero(gradients(local[above], block)), f"block {k} got block {above}'s error"


def test_global_backprop_reaches_every_block() -> None:
    """The contrast that shows the isolation test can fail: backprop feeds every block."""
    model = small_net("vgg8b", "global")
    images, labels = batch()
    loss = model(images, labels)
    assert all(not is_zero(gradients(loss, block)) for block in model.blocks)


@pytest.mark.parametrize("classes", [2, 10])
def test_similarity_of_one_hot_labels_is_one_within_and_minus_one_over_c_minus_1_across(
    classes: int,
) -> None:
    labels = torch.tensor([0, 1, 1, 0, classes - 1, 1])
    similarity = similarity_matrix(nn.functional.one_hot(labels, classes).float())
    same = labels[:, None] == labels[None, :]
    expected = torch.where(same, 1.0, -1.0 / (classes - 1))
    torch.testing.assert_close(similarity, expected)


def test_similarity_of_conv_maps_uses_per_channel_spatial_std() -> None:
    maps = torch.randn(5, 8, 4, 4)
    expected = similarity_matrix(maps.flatten(2).std(dim=2))
    torch.testing.assert_close(similarity_matrix(maps), expected)
    assert torch.allclose(similarity_matrix(maps).diagonal(), torch.ones(5))


@pytest.mark.parametrize("loss", LOCAL_LOSSES)
def test_local_modes_start_the_output_layer_and_decoders_at_zero(loss: str) -> None:
    model = small_net("vgg8b", loss)
    assert not model.output.weight.any()
    for block in model.blocks:
        if hasattr(block, "decoder"):
            assert not block.decoder.weight.any()
    assert small_net("vgg8b", "global").output.weight.any()


def test_the_losses_choose_the_originals_nonlinearity_dropout_and_beta() -> None:
    for loss, kind in [
        ("global", nn.ReLU),
        ("pred", nn.ReLU),
        ("sim", nn.LeakyReLU),
        ("predsim", nn.LeakyReLU),
        ("bio-predsim", nn.LeakyReLU),
    ]:
        assert all(isinstance(b.nonlin, kind) for b in small_net("vgg8b", loss).blocks), loss
    vgg = small_net("vgg8b", "predsim")
    assert [type(b.dropout) for b in vgg.blocks] == [nn.Dropout2d] * 6 + [nn.Dropout]
    assert vgg.blocks[0].dropout.p == 0.2 and small_net("mlp", "pred").blocks[0].dropout.p == 0.1
    assert LocalLossConfig(loss="predsim").beta == 0.99
    assert LocalLossConfig(loss="bio-predsim").beta == 0.01
    fashion = LocalLossConfig(loss="bio-predsim", dataset="fashion-mnist")
    assert (fashion.dropout, fashion.epochs, fashion.milestones) == (
        0.025,
        200,
        (100, 150, 175, 188),
    )
    assert fashion.flip and fashion.translate == 2 and not LocalLossConfig().flip


def test_the_nets_have_the_papers_parameter_counts() -> None:
    for net, millions in [("mlp", 2.9), ("vgg8b", 7.3)]:
        model = LocalLossNet(LocalLossConfig(net=net, loss="global"))
        assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == millions


def test_conv_decoders_see_at_most_dim_in_decoder_features() -> None:
    model = LocalLossNet(LocalLossConfig(net="vgg8b", loss="pred", dim_in_decoder=1024))
    features = [b.decoder.in_features for b in model.blocks]
    assert features == [1024, 1024, 1024, 1024, 1024, 1024, 1024]
    x = torch.randn(2, 1, 28, 28)
    for layer in model.layers:  # the pooled map really has that many features
        if isinstance(layer, LocalBlock):
            h = layer.activation(x)
            assert layer.pool(h).flatten(1).shape[1] == layer.decoder.in_features
            x = layer.dropout(h)
        else:
            x = layer(x)


def test_bio_targets_and_feedback_are_fixed_buffers() -> None:
    model = small_net("mlp", "bio-predsim")
    block = model.blocks[0]
    assert block.target_projection.shape == (128, 10)
    assert all("feedback" not in n and "projection" not in n for n, _ in model.named_parameters())
    fixed = {n: b.clone() for n, b in model.named_buffers() if "feedback" in n or "projection" in n}
    optimizer, _ = build_optimizer(model, LocalLossConfig(loss="bio-predsim", **SMALL))
    for _ in range(3):
        loss = model(*batch())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(b, fixed[n]) for n, b in model.named_buffers() if n in fixed)


def test_feedback_alignment_sends_the_error_through_the_fixed_matrix() -> None:
    layer = FeedbackAlignmentLinear(6, 4)
    nn.init.normal_(layer.weight)
    x = torch.randn(3, 6, requires_grad=True)
    upstream = torch.randn(3, 4)
    layer(x).backward(upstream)
    torch.testing.assert_close(x.grad, upstream @ layer.feedback)
    torch.testing.assert_close(layer.weight.grad, upstream.T @ x.detach())
    assert not torch.allclose(x.grad, upstream @ layer.weight.detach())


@pytest.mark.parametrize("net", ["mlp", "vgg8b"])
@pytest.mark.parametrize("loss", ("global", *LOCAL_LOSSES))
def test_every_loss_trains_a_few_steps_on_both_nets(net: str, loss: str) -> None:
    config = LocalLossConfig(net=net, loss=loss, lr=1e-3, dropout=0.0, **SMALL)
    torch.manual_seed(0)
    model = LocalLossNet(config)
    optimizer, _ = build_optimizer(model, config)
    images, labels = batch(32)
    losses = []
    for _ in range(5):
        loss_value = model(images, labels)
        optimizer.zero_grad()
        loss_value.backward()
        optimizer.step()
        losses.append(loss_value.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_one_grouped_adam_steps_as_the_originals_adam_per_block() -> None:
    """Training runs one fused Adam with a param group per block; the original steps one Adam
    per block right after that block's own backward. Three steps of each end at the same
    weights."""
    config = LocalLossConfig(loss="predsim", dropout=0.0, **SMALL)
    ours, original = (
        small_net("mlp", "predsim", dropout=0.0),
        small_net("mlp", "predsim", dropout=0.0),
    )
    optimizer, _ = build_optimizer(ours, config)
    per_block = [torch.optim.Adam(group, lr=config.lr) for group in original.parameter_groups()]
    images, labels = batch(32)
    for _ in range(3):
        optimizer.zero_grad()
        ours(images, labels).backward()
        optimizer.step()
        for block_optimizer in per_block:
            block_optimizer.zero_grad()
        original.backward_blockwise(images, labels)
        for block_optimizer in per_block:
            block_optimizer.step()
    for (name, a), b in zip(ours.named_parameters(), original.parameters(), strict=True):
        # BatchNorm cancels the encoder's bias, so its gradient is round-off, which Adam's
        # normalisation scales up to steps of lr size: not comparable, and without effect.
        if not name.endswith("encoder.bias"):
            torch.testing.assert_close(a, b, msg=name)
    assert not torch.equal(
        ours.blocks[0].encoder.weight, small_net("mlp", "predsim").blocks[0].encoder.weight
    )


@pytest.mark.filterwarnings("ignore:Detected call of")  # no optimizer steps needed here
def test_the_lr_drops_from_the_epoch_after_each_milestone() -> None:
    """The original sets lr * 0.25 ** bisect_right(milestones, epoch - 1) before epoch `epoch`:
    epochs 1-50 at 5e-4, 51-75 at 1.25e-4, ..., 95-100 at 5e-4 / 256."""
    config = LocalLossConfig(net="mlp", loss="predsim", hidden=8)
    optimizer, scheduler = build_optimizer(LocalLossNet(config), config)
    assert len(optimizer.param_groups) == 4  # three blocks and the output layer
    lr_in_epoch = {}
    for epoch in range(1, config.epochs + 1):
        lr_in_epoch[epoch] = {group["lr"] for group in optimizer.param_groups}
        scheduler.step()  # fit steps schedulers once after each epoch
    assert all(len(lrs) == 1 for lrs in lr_in_epoch.values()), "blocks must share the schedule"
    lr = {epoch: lrs.pop() for epoch, lrs in lr_in_epoch.items()}
    for epoch, drops in [
        (1, 0),
        (50, 0),
        (51, 1),
        (75, 1),
        (76, 2),
        (89, 2),
        (90, 3),
        (94, 3),
        (95, 4),
        (100, 4),
    ]:
        assert lr[epoch] == pytest.approx(5e-4 * 0.25**drops), epoch


@pytest.mark.parametrize("loss", ["predsim", "bio-predsim"])
def test_the_blockwise_backward_gives_the_summed_losses_gradients(loss: str) -> None:
    model = small_net("vgg8b", loss)
    images, labels = batch()
    torch.manual_seed(2)  # the same dropout masks in both
    model(images, labels).backward()
    summed = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(2)
    model.backward_blockwise(images, labels)
    for expected, parameter in zip(summed, model.parameters(), strict=True):
        torch.testing.assert_close(parameter.grad, expected)
