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
    reconstruction_metrics,
    squared_error_per_image,
)
from mnistlab.classify import mnist_sources, prefixed
from mnistlab.loop import fit
from mnistlab.resources import check_memory
from mnistlab.run import Run

DESCRIPTION = (
    "MNIST autoencoder of the 2019 'stuck at ~55' question: summed BCE reported beside its "
    "entropy floor (excess BCE), trained until the question's convergence rule holds."
)


def train(config: AEConfig) -> dict[str, Any]:
    with Run(config) as run:
        # The data's own pixels in [0, 1], not standardised: the model's input and its targets.
        data = mnist_sources(config, run, standardise=False)
        params = parameter_count(config.hidden, config.latent)
        # Parameters, gradients and Adam's two moments, in float32.
        check_memory(
            16 * params,
            f"--hidden {list(config.hidden)} --latent {config.latent}",
            "choose smaller --hidden widths or --latent",
        )
        model = Autoencoder(config.hidden, config.latent, config.decoder)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        convergence = Convergence(config.converge_window, config.converge_tolerance)
        model, optimizer = run.prepare(model, optimizer, checkpointed=[convergence])
        per_image = bce_per_image if config.loss == "bce" else squared_error_per_image

        def loss_fn(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            targets = images.flatten(1)
            return per_image(model(targets), targets).mean()

        def converged(epoch: int, train_loss: float, metrics: dict[str, float]) -> bool:
            # Every epoch's average loss is recorded (and checkpointed), rule on or off.
            stop = convergence.update(train_loss)
            return config.converge_tolerance > 0 and stop

        fit(
            run,
            model=model,
            optimizers=[optimizer],
            train=data.train,
            loss_fn=loss_fn,
            evaluate=lambda: prefixed("val", run.evaluate(data.val, reconstruction_metrics(model))),
            epochs=config.epochs,
            on_epoch_end=converged,
        )
        model.eval()
        metrics = {
            **prefixed("train", run.evaluate(data.train, reconstruction_metrics(model))),
            **prefixed("test", run.evaluate(data.test, reconstruction_metrics(model))),
            "params": float(params),
            "converged": float(run.state.stopped),
            "train_samples": float(len(data.train)),
        }
        if convergence.losses:  # the last full epoch's average training loss (a log's number)
            metrics["train/loss_last_epoch"] = convergence.losses[-1]
        return run.finish(metrics, model)
