"""`uv run --package kakuritsu train`: train one head, then evaluate it in every mode."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torchvision import transforms

from kakuritsu.config import KakuritsuConfig
from kakuritsu.model import (
    EVAL_MODES,
    DemoBackbone,
    EvalMode,
    Head,
    KakuritsuNet,
    ResNetBackbone,
    SmallBackbone,
)
from mnistlab.batches import BatchSource, Normalisation
from mnistlab.cli import UsageError, run_main
from mnistlab.data import DATASETS, carve_validation, load_split
from mnistlab.loaders import LoaderBatches
from mnistlab.runtime import Batches, Run, fit, parse_run_config

DESCRIPTION = (
    "Kakuritsu probabilistic synapses (K) vs Dropout (D) vs plain (W) heads; every head is "
    "evaluated sampled, deterministic (p=1 / dropout off) and swapped."
)
EVAL_BATCH = 1000


def mnist_batches(config: KakuritsuConfig, run: Run) -> tuple[Batches, Batches, Batches, int]:
    """(train, validation, test, classes) for an MNIST-family dataset held on the device."""
    info = DATASETS[config.dataset]
    train_split = load_split(config.dataset, "train", config.data_dir)
    test_split = load_split(config.dataset, "test", config.data_dir)
    if config.train_samples is not None:
        train_split = train_split.subset(torch.arange(min(config.train_samples, len(train_split))))
    val_split = test_split
    if config.val_size:
        train_split, val_split = carve_validation(train_split, config.val_size, config.seed)
    norm = Normalisation(info.mean, info.std)
    shard = {"seed": config.seed, "rank": run.rank, "world_size": run.world_size}
    train = BatchSource(train_split, config.batch_size, run.device, norm,
                        translate=config.translate, **shard)  # fmt: skip
    val = BatchSource(val_split, EVAL_BATCH, run.device, norm, **shard)
    test = val if not config.val_size else BatchSource(test_split, EVAL_BATCH, run.device, norm,
                                                       **shard)  # fmt: skip
    return train, val, test, info.classes


def imagenet_batches(config: KakuritsuConfig, run: Run) -> tuple[Batches, Batches, Batches, int]:
    """(train, validation, test, classes) from an ImageFolder root or fake data."""
    normalize = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    size = config.image_size
    if config.dummy:
        shape = (3, size, size)
        train_set = torchvision.datasets.FakeData(config.dummy_samples, shape, 1000,
                                                  transforms.ToTensor())  # fmt: skip
        val_set = torchvision.datasets.FakeData(config.dummy_samples // 10, shape, 1000,
                                                transforms.ToTensor(), random_offset=1)  # fmt: skip
    else:
        root = config.image_folder
        assert root is not None
        for split in ("train", "val"):
            if not (root / split).is_dir():
                raise UsageError(f"--image-folder {root} has no {split}/ folder of class folders")
        train_set = torchvision.datasets.ImageFolder(root / "train", transforms.Compose([
            transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
            transforms.ToTensor(), normalize]))  # fmt: skip
        val_set = torchvision.datasets.ImageFolder(root / "val", transforms.Compose([
            transforms.Resize(int(size * 8 / 7)), transforms.CenterCrop(size),
            transforms.ToTensor(), normalize]))  # fmt: skip
    shard = {"seed": config.seed, "rank": run.rank, "world_size": run.world_size,
             "workers": config.workers}  # fmt: skip
    train = LoaderBatches(train_set, config.batch_size, run.device, **shard)
    val = LoaderBatches(val_set, config.batch_size, run.device, **shard)
    classes = 1000 if config.dummy else len(train_set.classes)  # type: ignore[attr-defined]
    return train, val, val, classes


def build_model(config: KakuritsuConfig, classes: int) -> KakuritsuNet:
    if config.imagenet_style:
        try:
            backbone = ResNetBackbone(config.arch, config.pretrained, config.freeze_backbone)
        except ValueError as exc:
            raise UsageError(f"--arch {config.arch}: {exc}") from exc
    else:
        backbone = DemoBackbone() if config.model == "demo" else SmallBackbone()
    head = Head(config.head, backbone.out_features, config.hidden, classes, config.p,
                config.dropout)  # fmt: skip
    return KakuritsuNet(backbone, head)


PerSample = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def classification_metrics(model: torch.nn.Module) -> PerSample:
    """Per-sample loss, top-1 and top-5 correctness, for `Run.evaluate`."""

    def per_sample(images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = model(images)
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        return {
            "loss": F.cross_entropy(logits.float(), labels, reduction="none"),
            "acc1": (top5[:, 0] == labels).float(),
            "acc5": (top5 == labels[:, None]).any(dim=1).float(),
        }

    return per_sample


def evaluate_modes(
    run: Run, model: torch.nn.Module, head: Head, source: Batches, prefix: str,
    modes: Sequence[EvalMode] = EVAL_MODES,
) -> dict[str, float]:  # fmt: skip
    """Evaluate in each mode; the head returns to its training noise afterwards."""
    results: dict[str, float] = {}
    for mode in modes:
        head.set_eval_mode(mode)
        for name, value in run.evaluate(source, classification_metrics(model)).items():
            results[f"{prefix}/{mode}/{name}"] = value
    head.set_eval_mode("sampled")
    return results


def train(config: KakuritsuConfig) -> dict[str, Any]:
    """Train (or, with --evaluate, only evaluate) one model; returns the summary."""
    run = Run("kakuritsu", config, evaluate_only=config.evaluate)
    make_batches = imagenet_batches if config.imagenet_style else mnist_batches
    train_batches, val_batches, test_batches, classes = make_batches(config, run)
    model = build_model(config, classes)
    head = model.head
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adadelta":
        optimizer = torch.optim.Adadelta(parameters, lr=config.lr, weight_decay=config.wd)
    else:
        optimizer = torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.wd)  # fmt: skip
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma)
    model, optimizer, scheduler = run.accelerator.prepare(model, optimizer, scheduler)
    run.seed_per_rank()
    run.restore()

    if config.evaluate:
        results = evaluate_modes(run, model, head, test_batches, "test")
        if run.is_main:
            run.write_json(f"evaluation-{time.strftime('%Y%m%d-%H%M%S')}.json", results)
        run.print(results)
        run.close()
        return {"metrics": results}

    def validate() -> dict[str, float]:
        return evaluate_modes(run, model, head, val_batches, "val", [config.validation_mode])

    def loss_fn(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(images), labels)

    fit(run, model=model, optimizers=[optimizer], schedulers=[scheduler], train=train_batches,
        loss_fn=loss_fn, evaluate=validate, epochs=config.epochs)  # fmt: skip
    model.eval()
    final = evaluate_modes(run, model, head, test_batches, "test")
    return run.finish(final, model)


def main(argv: Sequence[str] | None = None) -> None:
    run_main(lambda: train(parse_run_config(KakuritsuConfig, argv, DESCRIPTION, "kakuritsu")))
