"""Networks built from local-loss blocks (Nøkland & Eidnes 2019; README, "The source").

A block is Linear/Conv3x3 -> BatchNorm -> nonlinearity -> Dropout (Dropout2d for conv). In a
local mode it also owns the heads of its loss, computed on the activation *before* dropout:
  sim      MSE(S(f(h)), S(onehot(y))), f a learned bias-free Linear / 3x3 conv
  pred     CE(W_d pool(h), y), W_d zero-initialised, conv maps average-pooled to at most
           dim_in_decoder features
  predsim  (1 - beta) pred + beta sim
  bio-predsim  no backprop inside the loss either: sim on pool(h) itself against S(P onehot(y))
           for a fixed random projection P, pred through a feedback-alignment decoder with BCE
           against the binarised projected targets (P onehot(y) > 0)
The block's output is detached before the next block, so no error crosses block borders; the
output layer learns from the global cross-entropy, scaled by (1 - beta).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from local_loss.config import LocalLossConfig

VGG8B = (128, 256, "M", 256, 512, "M", 512, "M", 512, "M")


def similarity_matrix(h: Tensor) -> Tensor:
    """Adjusted cosine similarity of the batch's rows, [B, B]. Conv maps are first reduced to
    their per-channel standard deviation over space (N x C)."""
    if h.ndim == 4 and h.shape[1] > 3 and h.shape[2] > 1:
        h = h.flatten(2).std(dim=2)
    h = h.flatten(1)
    centred = h - h.mean(dim=1, keepdim=True)
    normalised = centred / (1e-8 + centred.pow(2).sum(dim=1, keepdim=True).sqrt())
    return (normalised @ normalised.T).clamp(-1, 1)


class FeedbackAlignment(torch.autograd.Function):
    """y = x W^T + b whose backward sends the error to x through a fixed random B, not W."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, feedback: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, feedback)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None, Tensor]:
        x, feedback = ctx.saved_tensors
        return grad @ feedback, grad.T @ x, None, grad.sum(0)


class FeedbackAlignmentLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.register_buffer("feedback", torch.empty_like(self.weight).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return FeedbackAlignment.apply(x, self.weight, self.feedback, self.bias)


def decoder_pool(channels: int, size: int, max_features: int) -> tuple[nn.Module, int]:
    """The original's average pooling of a [C, size, size] map to at most `max_features`
    features (C x h x w, halving h and w in turn), and the feature count it leaves."""
    kernel_h = kernel_w = 1
    out_h = out_w = size
    while channels * out_h * out_w > max_features and kernel_h < size:
        kernel_h *= 2
        out_h = math.ceil(size / kernel_h)
        if channels * out_h * out_w > max_features:
            kernel_w *= 2
            out_w = math.ceil(size / kernel_w)
    if kernel_h == kernel_w == 1:
        return nn.Identity(), channels * size * size
    padding = (
        (kernel_h * (out_h - size // kernel_h)) // 2,
        (kernel_w * (out_w - size // kernel_w)) // 2,
    )
    return nn.AvgPool2d((kernel_h, kernel_w), padding=padding), channels * out_h * out_w


class LocalBlock(nn.Module):
    """One hidden block and, in local modes, the heads of its own loss."""

    def __init__(
        self,
        config: LocalLossConfig,
        in_size: int,
        out_size: int,
        classes: int,
        spatial: int | None = None,
    ) -> None:
        """A conv block (3x3, pad 1) when `spatial` (its output's height = width) is given,
        else a linear block; sizes are features or channels."""
        super().__init__()
        self.loss = config.loss
        self.classes = classes
        self.beta = config.beta
        conv = spatial is not None
        self.encoder = (
            nn.Conv2d(in_size, out_size, 3, padding=1) if conv else nn.Linear(in_size, out_size)
        )
        self.norm = nn.BatchNorm2d(out_size) if conv else nn.BatchNorm1d(out_size)
        if config.nonlin == "relu":
            self.nonlin: nn.Module = nn.ReLU()
        else:
            self.nonlin = nn.LeakyReLU(0.01)
        self.dropout = (nn.Dropout2d if conv else nn.Dropout)(config.dropout)
        if config.loss == "global":
            return
        bio = config.loss == "bio-predsim"
        self.pool, features = (
            decoder_pool(out_size, spatial, config.dim_in_decoder)
            if conv
            else (nn.Identity(), out_size)
        )
        if config.loss in ("sim", "predsim"):  # the learned map f before the similarity matrix
            self.similarity_map = (
                nn.Conv2d(out_size, out_size, 3, padding=1, bias=False)
                if conv
                else nn.Linear(out_size, out_size, bias=False)
            )
        if config.loss in ("pred", "predsim", "bio-predsim"):
            outputs = config.target_proj_size if bio else classes
            self.decoder = (
                FeedbackAlignmentLinear(features, outputs) if bio else nn.Linear(features, outputs)
            )
            nn.init.zeros_(self.decoder.weight)
        if bio:  # fixed, never trained: a buffer
            projection = nn.Linear(classes, config.target_proj_size, bias=False).weight.detach()
            self.register_buffer("target_projection", projection)

    def activation(self, x: Tensor) -> Tensor:
        """The block's activation before dropout: what its local loss sees."""
        return self.nonlin(self.norm(self.encoder(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.activation(x))

    def local_loss(self, h: Tensor, labels: Tensor) -> Tensor:
        """This block's loss on its activation `h` (before dropout)."""
        onehot = F.one_hot(labels, self.classes).float()
        if self.loss == "bio-predsim":
            targets = onehot @ self.target_projection.T
            sim = F.mse_loss(similarity_matrix(self.pool(h)), similarity_matrix(targets))
            logits = self.decoder(self.pool(h).flatten(1))
            pred = F.binary_cross_entropy_with_logits(logits, (targets > 0).float())
            return (1 - self.beta) * pred + self.beta * sim
        loss = h.new_zeros(())
        if self.loss in ("sim", "predsim"):
            sim = F.mse_loss(similarity_matrix(self.similarity_map(h)), similarity_matrix(onehot))
            loss = loss + (sim if self.loss == "sim" else self.beta * sim)
        if self.loss in ("pred", "predsim"):
            pred = F.cross_entropy(self.decoder(self.pool(h).flatten(1)), labels)
            loss = loss + (pred if self.loss == "pred" else (1 - self.beta) * pred)
        return loss


class LocalLossNet(nn.Module):
    """mlp or vgg8b from local blocks, then the output layer."""

    def __init__(self, config: LocalLossConfig, classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.local = config.local
        self.global_weight = 1 - config.beta  # the paper scales the output's CE in predsim
        layers: list[nn.Module] = []
        channels, size = 1, image_size
        if config.net == "vgg8b":
            for item in VGG8B:
                if item == "M":
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                else:
                    width = int(item * config.feat_mult)
                    layers.append(LocalBlock(config, channels, width, classes, spatial=size))
                    channels = width
        layers.append(nn.Flatten())
        features = channels * size * size
        for _ in range(config.hidden_layers):
            layers.append(LocalBlock(config, features, config.hidden, classes))
            features = config.hidden
        self.layers = nn.Sequential(*layers)
        self.output = nn.Linear(features, classes)
        if self.local:  # as the original: the output layer starts at zero in local modes
            nn.init.zeros_(self.output.weight)

    @property
    def blocks(self) -> list[LocalBlock]:
        return [layer for layer in self.layers if isinstance(layer, LocalBlock)]

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """The logits; with `labels`, the training loss instead (through forward, so that a
        DDP-wrapped net synchronises its gradients)."""
        if labels is None:
            return self.output(self.layers(images))
        return self.training_loss(images, labels)

    def training_loss(self, images: Tensor, labels: Tensor) -> Tensor:
        """The step's loss: plain CE for global; else the sum of every block's local loss and
        the output's weighted CE. Each block's input is detached, so one backward of the sum
        gives every block exactly the gradient of its own loss."""
        if not self.local:
            return F.cross_entropy(self(images), labels)
        local, output = self.split_losses(images, labels)
        return torch.stack(local).sum() + self.global_weight * output

    def split_losses(self, images: Tensor, labels: Tensor) -> tuple[list[Tensor], Tensor]:
        """Local modes: each block's local loss (bottom to top) and the output layer's CE."""
        x, local = images, []
        for layer in self.layers:
            if isinstance(layer, LocalBlock):
                h = layer.activation(x)
                local.append(layer.local_loss(h, labels))
                x = layer.dropout(h).detach()
            else:
                x = layer(x)
        return local, F.cross_entropy(self.output(x), labels)

    def backward_blockwise(self, images: Tensor, labels: Tensor) -> Tensor:
        """Local modes: the same gradients as `training_loss(...).backward()`, but each block's
        backward runs as soon as its loss exists, so its activations are freed before the next
        block runs: what the method promises for memory. The shared loop does one backward per
        step, so training uses `training_loss`; the memory benchmark measures both. Returns the
        (detached) summed loss."""
        x, total = images, images.new_zeros(())
        for layer in self.layers:
            if isinstance(layer, LocalBlock):
                h = layer.activation(x)
                loss = layer.local_loss(h, labels)
                loss.backward()
                total += loss.detach()
                x = layer.dropout(h.detach())
            else:
                x = layer(x)
        loss = self.global_weight * F.cross_entropy(self.output(x), labels)
        loss.backward()
        return total + loss.detach()

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """One Adam param group each: every block (with its loss heads) and the output layer in
        local modes; the whole net in one group for global."""
        if not self.local:
            return [list(self.parameters())]
        return [list(block.parameters()) for block in self.blocks] + [
            list(self.output.parameters())
        ]
