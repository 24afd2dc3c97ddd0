"""`uv run --package compound-relu train`: one MLP (plain, compound or residual) at the plain
MLP's parameter count."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from compound_relu.config import IN_FEATURES, CompoundConfig
from compound_relu.model import MLP, mlp_parameters
from mnistlab.classify import classification_metrics, mnist_sources, prefixed
from mnistlab.loop import fit
from mnistlab.resources import check_memory
from mnistlab.run import Run

DESCRIPTION = (
    "Compound ReLU (DendricLinear: hyper step, hypo clamp and linear branches, summed, then "
    "ReLU) vs plain and residual MLPs at equal parameter count."
)


def build_model(config: CompoundConfig, classes: int) -> MLP:
    width = config.arch_width
    parameters = mlp_parameters(
        config.arch, width, config.depth, IN_FEATURES, classes, **config.dendric_shape
    )  # type: ignore[arg-type]
    # Weights, gradients and Adam's two moments, in float32.
    check_memory(
        16 * parameters,
        f"--width {config.width} --depth {config.depth}",
        "choose a smaller --width or --depth",
    )
    dendric = {
        **config.dendric_shape,
        "threshold": config.threshold,
        "hyper_gradient": config.hyper_gradient,
    }
    return MLP(config.arch, width, config.depth, IN_FEATURES, classes, **dendric)


def train(config: CompoundConfig) -> dict[str, Any]:
    with Run(config) as run:
        data = mnist_sources(config, run)
        model = build_model(config, data.classes)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        model, optimizer = run.prepare(model, optimizer)

        def loss_fn(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(model(images), labels)

        def validate() -> dict[str, float]:
            return prefixed("val", run.evaluate(data.val, classification_metrics(model)))

        fit(
            run,
            model=model,
            optimizers=[optimizer],
            train=data.train,
            loss_fn=loss_fn,
            evaluate=validate,
            epochs=config.epochs,
        )
        model.eval()
        metrics = prefixed("test", run.evaluate(data.test, classification_metrics(model)))
        unwrapped = run.accelerator.unwrap_model(model)
        metrics["model/width"] = unwrapped.stem.out_features
        metrics["model/parameters"] = sum(p.numel() for p in unwrapped.parameters())
        return run.finish(metrics, model)
