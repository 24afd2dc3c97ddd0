"""`uv run --package local-loss train`: one net, one loss, the paper's recipe."""

from __future__ import annotations

from typing import Any

import torch

from local_loss.config import LocalLossConfig
from local_loss.model import LocalLossNet
from mnistlab.classify import classification_metrics, mnist_sources, prefixed
from mnistlab.loop import fit
from mnistlab.resources import check_memory
from mnistlab.run import Run

DESCRIPTION = (
    "Local error signals (Nøkland & Eidnes 2019): every hidden block of an mlp or vgg8b learns "
    "from its own pred / sim / predsim loss, or the whole net by backprop (--loss global)."
)


def parameter_estimate(config: LocalLossConfig) -> int:
    """Roughly the net's parameters, counted before building it (linear layers dominate)."""
    width = config.hidden
    first = 784 if config.net == "mlp" else int(512 * config.feat_mult)
    conv = 0 if config.net == "mlp" else int(6.8e6 * config.feat_mult**2)
    linear = first * width + (config.hidden_layers - 1) * width * width
    similarity_maps = (
        config.hidden_layers * width * width if config.loss in ("sim", "predsim") else 0
    )
    return conv + linear + similarity_maps


def build_optimizer(
    model: LocalLossNet, config: LocalLossConfig
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.MultiStepLR]:
    """The original's one Adam per block and one for the output layer, as one Adam with a param
    group each: Adam's state is per parameter, so the updates are the same, and one fused step
    replaces four (benchmarks/speed.py measures it). MultiStepLR is stepped after each epoch: a
    milestone m lowers the lr from epoch m + 1, as the original's
    `lr * decay ** bisect_right(milestones, epoch - 1)`."""
    groups = [{"params": group} for group in model.parameter_groups()]
    optimizer = torch.optim.Adam(groups, lr=config.lr, fused=True)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, list(config.milestones), config.lr_decay
    )
    return optimizer, scheduler


def random_flip(images: torch.Tensor) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2 (torch's global RNG, seeded per run)."""
    flip = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def train(config: LocalLossConfig) -> dict[str, Any]:
    with Run(config) as run:
        data = mnist_sources(config, run)
        # Parameters, gradients and Adam's two moments, in float32.
        check_memory(
            16 * parameter_estimate(config),
            f"--net {config.net} --hidden {config.hidden}",
            "choose a smaller --hidden or --feat-mult",
        )
        model = LocalLossNet(config, data.classes)
        model, optimizer, scheduler = run.prepare(model, *build_optimizer(model, config))

        def loss_fn(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return model(random_flip(images) if config.flip else images, labels)

        def validate() -> dict[str, float]:
            return prefixed("val", run.evaluate(data.val, classification_metrics(model)))

        fit(
            run,
            model=model,
            optimizers=[optimizer],
            schedulers=[scheduler],
            train=data.train,
            loss_fn=loss_fn,
            evaluate=validate,
            epochs=config.epochs,
        )
        model.eval()
        test = prefixed("test", run.evaluate(data.test, classification_metrics(model)))
        test["test/error"] = 100 * (1 - test["test/acc1"])
        return run.finish(test, model)
