"""`uv run --package kakuritsu train`: train one head, then evaluate it in every mode."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torchvision import transforms

from kakuritsu.config import KakuritsuConfig
from kakuritsu.loaders import LoaderBatches
from kakuritsu.model import (
    HEAD_EVAL_MODES,
    DemoBackbone,
    EvalMode,
    Head,
    KakuritsuNet,
    ResNetBackbone,
    SmallBackbone,
)
from mnistlab.batches import Batches
from mnistlab.classify import Sources, classification_metrics, mnist_sources
from mnistlab.cli import UsageError, first_line
from mnistlab.loop import fit
from mnistlab.resources import check_memory
from mnistlab.run import Run

DESCRIPTION = (
    "Kakuritsu probabilistic synapses (K) vs Dropout (D) vs plain (W) heads; every head is "
    "evaluated sampled, Monte-Carlo averaged, deterministic (p=1 / dropout off) and swapped."
)
EVAL_BATCH = 1000


def imagenet_batches(config: KakuritsuConfig, run: Run) -> Sources:
    """(train, validation, test, classes) from an ImageFolder root or fake data."""
    normalize = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    size = config.image_size
    # A lower bound: the input batch and a ResNet stem's 64 maps at half size, kept for the
    # backward pass and BatchNorm (4 copies); the deeper layers need more.
    check_memory(
        config.batch_size * (3 + 4 * 64 / 4) * size * size * 4,
        f"--image-size {size} at --batch-size {config.batch_size}",
        "choose a smaller --image-size or --batch-size",
        run.device,
    )
    if config.dummy:
        shape = (3, size, size)
        train_set = torchvision.datasets.FakeData(
            config.dummy_samples, shape, 1000, transforms.ToTensor()
        )
        val_set = torchvision.datasets.FakeData(
            config.dummy_samples // 10, shape, 1000, transforms.ToTensor(), random_offset=1
        )
    else:
        root = config.image_folder
        assert root is not None
        for split in ("train", "val"):
            if not (root / split).is_dir():
                raise UsageError(f"--image-folder {root} has no {split}/ folder of class folders")
        try:
            train_set = torchvision.datasets.ImageFolder(
                root / "train",
                transforms.Compose(
                    [
                        transforms.RandomResizedCrop(size),
                        transforms.RandomHorizontalFlip(),
                        transforms.ToTensor(),
                        normalize,
                    ]
                ),
            )
            val_set = torchvision.datasets.ImageFolder(
                root / "val",
                transforms.Compose(
                    [
                        transforms.Resize(int(size * 8 / 7)),
                        transforms.CenterCrop(size),
                        transforms.ToTensor(),
                        normalize,
                    ]
                ),
            )
        except FileNotFoundError as exc:  # e.g. a class folder with no images
            raise UsageError(
                f"--image-folder {root}: {first_line(exc)}; give every class "
                "folder at least one image"
            ) from exc
    shard = {
        "seed": config.seed,
        "rank": run.rank,
        "world_size": run.world_size,
        "workers": config.workers,
    }
    train = LoaderBatches(train_set, config.batch_size, run.device, **shard)
    val = LoaderBatches(val_set, config.batch_size, run.device, **shard)
    classes = 1000 if config.dummy else len(train_set.classes)  # type: ignore[attr-defined]
    return Sources(train, val, val, classes)  # type: ignore[arg-type]


def build_model(config: KakuritsuConfig, classes: int) -> KakuritsuNet:
    if config.imagenet_style:
        try:
            backbone = ResNetBackbone(config.arch, config.pretrained, config.freeze_backbone)
        except ValueError as exc:
            raise UsageError(f"--arch {config.arch}: {exc}") from exc
    else:
        backbone = DemoBackbone() if config.model == "demo" else SmallBackbone()
    # Parameters, gradients and two optimizer slots of the head, in float32.
    head_bytes = 16 * config.hidden * (backbone.out_features + classes)
    check_memory(head_bytes, f"--hidden {config.hidden}", "choose a smaller --hidden")
    head = Head(
        config.head, backbone.out_features, config.hidden, classes, config.p, config.dropout
    )
    return KakuritsuNet(backbone, head)


def evaluate_modes(
    run: Run,
    model: torch.nn.Module,
    net: KakuritsuNet,
    source: Batches,
    prefix: str,
    mc_samples: int,
    modes: Sequence[EvalMode] | None = None,
) -> dict[str, float]:
    """Evaluate in each mode (by default every mode of the head); the head returns to its
    training noise afterwards. `model` is `net` as prepared by the run (maybe DDP-wrapped)."""
    results: dict[str, float] = {}
    for mode in modes or HEAD_EVAL_MODES[net.head.kind]:
        net.head.set_eval_mode(mode)
        forward = (
            functools.partial(net.monte_carlo_log_probs, passes=mc_samples)
            if mode == "mc"
            else model
        )
        for name, value in run.evaluate(source, classification_metrics(forward)).items():
            results[f"{prefix}/{mode}/{name}"] = value
    net.head.set_eval_mode("sampled")
    return results


def train(config: KakuritsuConfig) -> dict[str, Any]:
    """Train (or, with --evaluate, only evaluate) one model; returns the summary."""
    with Run(config, evaluate_only=config.evaluate) as run:
        data = (
            imagenet_batches(config, run) if config.imagenet_style else mnist_sources(config, run)
        )
        net = model = build_model(config, data.classes)
        parameters = [p for p in model.parameters() if p.requires_grad]
        if config.optimizer == "adadelta":
            optimizer = torch.optim.Adadelta(parameters, lr=config.lr, weight_decay=config.wd)
        else:
            optimizer = torch.optim.SGD(
                parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.wd
            )
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma)
        model, optimizer, scheduler = run.prepare(model, optimizer, scheduler)

        if config.evaluate:
            results = evaluate_modes(run, model, net, data.test, "test", config.mc_samples)
            if run.is_main:
                run.write_json(f"evaluation-{time.strftime('%Y%m%d-%H%M%S')}.json", results)
            run.print(results)
            return {"metrics": results}

        def validate() -> dict[str, float]:
            return evaluate_modes(
                run, model, net, data.val, "val", config.mc_samples, [config.validation_mode]
            )

        def loss_fn(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(model(images), labels)

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
        final = evaluate_modes(run, model, net, data.test, "test", config.mc_samples)
        return run.finish(final, model)
