"""`uv run --package ae-overfit train`: train one autoencoder until the question's convergence
rule (or --epochs) stops it; report BCE, its floor and the excess on train, val and test."""

from __future__ import annotations

from typing import Any

import torch

from ae_overfit.config import AEConfig
from ae_overfit.convergence import Convergence
from ae_overfit.model import (
    Autoencoder,
    bce_per_image,
    parameter_count,
    pixel_targets,
    reconstruction_metrics,
    squared_error_per_image,
)
from mnistlab.classify import mnist_sources, prefixed
from mnistlab.runtime import Run, check_memory, fit

DESCRIPTION = (
    "MNIST autoencoder of the 2019 'stuck at ~55' question: summed BCE reported beside its "
    "entropy floor (excess BCE), trained until the question's convergence rule holds."
)


def train(config: AEConfig) -> dict[str, Any]:
    run = Run(config)
    data = mnist_sources(config, run)
    norm = data.train.norm
    params = parameter_count(config.hidden, config.latent)
    # Parameters, gradients and Adam's two moments, in float32.
    check_memory(
        16 * params,
        f"--hidden {list(config.hidden)} --latent {config.latent}",
        "choose smaller --hidden widths or --latent",
    )
    model = Autoencoder(config.hidden, config.latent)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    convergence = Convergence(config.converge_window, config.converge_tolerance)
    model, optimizer = run.prepare(model, optimizer, checkpointed=[convergence])
    per_image = bce_per_image if config.loss == "bce" else squared_error_per_image

    epoch_loss = torch.zeros((), device=run.device)

    def loss_fn(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = pixel_targets(images, norm)
        loss = per_image(model(targets), targets).mean()
        epoch_loss.add_(loss.detach() / data.train.steps_per_epoch())
        return loss

    def converged(epoch: int, metrics: dict[str, float]) -> bool:
        average = run.accelerator.reduce(epoch_loss.clone(), reduction="mean").item()
        epoch_loss.zero_()
        return config.converge_tolerance > 0 and convergence.update(average)

    fit(
        run,
        model=model,
        optimizers=[optimizer],
        train=data.train,
        loss_fn=loss_fn,
        evaluate=lambda: prefixed(
            "val", run.evaluate(data.val, reconstruction_metrics(model, norm))
        ),
        epochs=config.epochs,
        on_epoch_end=converged,
    )
    model.eval()
    metrics = {
        **prefixed("train", run.evaluate(data.train, reconstruction_metrics(model, norm))),
        **prefixed("test", run.evaluate(data.test, reconstruction_metrics(model, norm))),
        "params": float(params),
        "converged": float(run.state.stopped),
        "train_samples": float(len(data.train)),
    }
    return run.finish(metrics, model)
