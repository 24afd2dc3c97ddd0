"""`uv run --package simplenet train`: train SimpleNet (or a speed preset's net) on MNIST,
select on the validation split, evaluate the test split once at the end."""

from __future__ import annotations

import bisect
from typing import Any

import torch
import torch.nn.functional as F

from mnistlab.classify import classification_metrics, mnist_sources, prefixed
from mnistlab.loop import fit
from mnistlab.run import Run
from simplenet.config import SimpleNetConfig
from simplenet.model import build_model, parameter_count, shift_averaged

DESCRIPTION = (
    "SimpleNet (13-layer standard, 5.50M params; slim, 311K) with the source's Caffe solvers "
    "(the standard net's AdaDelta, the slim net's Nesterov SGD) or a modern recipe, and speed presets that reach 99% MNIST accuracy in seconds."
)
# The Caffe solvers' multistep boundaries (iterations), each multiplying the lr by 0.1: the
# standard net's AdaDelta solver and the slim net's Nesterov one.
CAFFE_MILESTONES = {
    "paper": (5_000, 9_500, 22_000, 29_600, 32_000, 37_000),
    "slim-paper": (32_000, 48_000, 54_000, 74_000),
}


def multistep_multiplier(step: int, milestones: tuple[int, ...]) -> float:
    return 0.1 ** bisect.bisect_right(milestones, step)


def one_cycle_multiplier(step: int, total: int, warmup: float) -> float:
    """Linear warm-up from 0.1 to 1 over `warmup` of the steps, then linear decay to 0."""
    rise = max(1, round(warmup * total))
    if step < rise:
        return 0.1 + 0.9 * step / rise
    return max(0.0, (total - step) / max(1, total - rise))


def build_optimizer(config: SimpleNetConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if config.recipe == "paper":
        return torch.optim.Adadelta(
            model.parameters(), lr=config.lr, rho=0.9, eps=1e-3, weight_decay=config.weight_decay
        )
    if config.recipe == "slim-paper":  # Caffe decays every parameter
        return torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=0.9,
            nesterov=True,
            weight_decay=config.weight_decay,
        )
    # No weight decay on BatchNorm and biases (the usual modern choice).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)


def train(config: SimpleNetConfig) -> dict[str, Any]:
    with Run(config) as run:
        data = mnist_sources(config, run)
        model = build_model(
            config.model,
            data.classes,
            layout=config.layout,
            dropout=config.dropout,
            dropout_after=config.dropout_after,
            bn_eps=config.bn_eps,
            bn_momentum=config.bn_momentum,
        )
        run.print(f"{config.model}: {parameter_count(model):,} parameters")
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(config, model)
        model, optimizer = run.prepare(model, optimizer)
        total_steps = config.epochs * data.train.steps_per_epoch()

        def lr_multiplier(step: int) -> float:
            if config.recipe in CAFFE_MILESTONES:
                return multistep_multiplier(step, CAFFE_MILESTONES[config.recipe])
            return one_cycle_multiplier(step, total_steps, config.warmup)

        def loss_fn(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            if config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            return F.cross_entropy(model(images), labels, label_smoothing=config.label_smoothing)

        metrics = classification_metrics(shift_averaged(model, config.tta))
        fit(
            run,
            model=model,
            optimizers=[optimizer],
            train=data.train,
            loss_fn=loss_fn,
            # The lr follows the step count, not an epoch-stepped scheduler.
            lr_at=lambda step: config.lr * lr_multiplier(step),
            evaluate=lambda: prefixed("val", run.evaluate(data.val, metrics)),
            epochs=config.epochs,
        )
        model.eval()
        test = prefixed("test", run.evaluate(data.test, metrics))
        return run.finish(test, model)
