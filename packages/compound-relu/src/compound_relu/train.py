"""`uv run --package compound-relu train`: one MLP (plain, compound or residual) at the plain
MLP's parameter count; a compound run also measures how exactly its layers are residual blocks."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from compound_relu.config import IN_FEATURES, CompoundConfig
from compound_relu.model import MLP, DendricLinear, mlp_parameters, residual_form
from mnistlab.classify import PerSample, classification_metrics, mnist_sources, prefixed
from mnistlab.loop import fit
from mnistlab.resources import check_memory
from mnistlab.run import Run

DESCRIPTION = (
    "Compound ReLU (DendricLinear: hyper step, hypo clamp and linear branches, summed, then "
    "ReLU) vs plain and residual MLPs at equal parameter count."
)
STEEPNESSES = (1e2, 1e4, 1e6)
"""Ramp steepness s of the residual rewrite of the hyper step (the jump is exact as s -> inf)."""
MISMATCH_TOLERANCE = 1e-6


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


def residual_form_mismatch(model: torch.nn.Module) -> PerSample:
    """Per sample: the share of compound-layer outputs on which the layer and its residual
    rewrite (`residual_form`, float64) differ by more than MISMATCH_TOLERANCE, per steepness."""
    layers = [m for m in model.modules() if isinstance(m, DendricLinear)]
    exact = [copy.deepcopy(layer).double() for layer in layers]
    rewrites = {s: [residual_form(layer, s) for layer in exact] for s in STEEPNESSES}

    def per_sample(images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs: list[torch.Tensor] = []
        hooks = [
            layer.register_forward_pre_hook(lambda _, args: inputs.append(args[0].double()))
            for layer in layers
        ]
        model(images)
        for hook in hooks:
            hook.remove()
        results = {}
        for steepness, forms in rewrites.items():
            differs = [
                (layer(x) - form(x)).abs() > MISMATCH_TOLERANCE
                for layer, form, x in zip(exact, forms, inputs, strict=True)
            ]
            results[f"rewrite_mismatch/s{steepness:.0e}"] = torch.cat(differs, 1).double().mean(1)
        return results

    return per_sample


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
        if config.arch == "compound":
            metrics |= prefixed("test", run.evaluate(data.test, residual_form_mismatch(model)))
        unwrapped = run.accelerator.unwrap_model(model)
        metrics["model/width"] = unwrapped.stem.out_features
        metrics["model/parameters"] = sum(p.numel() for p in unwrapped.parameters())
        return run.finish(metrics, model)
