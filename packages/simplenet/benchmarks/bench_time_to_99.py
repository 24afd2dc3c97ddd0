"""Time to 99.0% MNIST test accuracy: the simplenet speedrun preset vs the PyTorch MNIST example.

Timing protocol (airbench-style), the same for both:
* training time: the clock starts with the data in memory (ours: on the device; the example:
  its torchvision Dataset built) and the model built, and stops after the last optimizer step.
  Evaluation, checkpoints and one-off warm-up/compile are excluded (the preset compiles
  nothing; its first steps' oneDNN set-up is inside the clock).
* ours: `python -m simplenet --preset speedrun` in a subprocess per seed; training time is the
  run's `train_time_s`, "rest" is the run's own wall time minus it (data load, per-epoch
  validation, test evaluation, checkpoints), "process" the whole process timed from outside,
  as a shell would (interpreter start and imports included).
* the example (pytorch/examples mnist/main.py, re-implemented faithfully): its 2-conv Net,
  Adadelta lr 1.0, StepLR(1, gamma 0.7), batch 64, torchvision MNIST through a DataLoader with
  ToTensor + Normalize, no shuffling on a CPU (the example shuffles only with CUDA), seed 1.
  It trains epoch by epoch; after each epoch the test set is evaluated outside the clock, and
  the time to 99% is the training time of the epochs up to the first one at >= 99.0%.
  torchvision's MNIST reads only extracted files, so the raw .gz files of --data-dir /
  $MNISTLAB_DATA are copied to a temporary folder and extracted there by torchvision itself
  (md5-checked, no network).

`--quick` is a smoke run of both paths (one seed of ours; the example on 2,048 samples and
one epoch): its numbers are not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import datasets, transforms

from mnistlab.data import resolve_data_dir
from mnistlab.provenance import machine, machine_line

TARGET = 0.99


class ExampleNet(nn.Module):
    """pytorch/examples mnist/main.py's Net."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def example_datasets(data_dir: Path, scratch: Path) -> tuple[datasets.MNIST, datasets.MNIST]:
    raw = scratch / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (data_dir / "MNIST" / "raw").glob("*.gz"):
        shutil.copy(source, raw / source.name)
    # download=True finds the md5-verified .gz files and only extracts them.
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )
    train = datasets.MNIST(scratch, train=True, download=True, transform=transform)
    test = datasets.MNIST(scratch, train=False, transform=transform)
    return train, test


def run_example(data_dir: Path, quick: bool, max_epochs: int) -> dict:
    """The example's recipe until its test accuracy reaches 99% (or max_epochs)."""
    torch.manual_seed(1)
    with tempfile.TemporaryDirectory() as scratch:
        train_set, test_set = example_datasets(data_dir, Path(scratch))
        if quick:
            train_set = torch.utils.data.Subset(train_set, range(2048))
        shuffle = torch.cuda.is_available()  # the example shuffles only with CUDA
        device = torch.device("cuda" if shuffle else "cpu")
        train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=shuffle)
        test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000)
        model = ExampleNet().to(device)
        optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
        train_seconds, accuracies = 0.0, []
        for _ in range(1 if quick else max_epochs):
            started = time.perf_counter()
            model.train()
            for images, labels in train_loader:
                images, labels = images.to(device), labels.to(device)
                optimizer.zero_grad()
                F.nll_loss(model(images), labels).backward()
                optimizer.step()
            scheduler.step()
            train_seconds += time.perf_counter() - started
            accuracies.append(evaluate(model, test_loader, device))
            print(
                f"  example: epoch {len(accuracies)}  test {100 * accuracies[-1]:.2f}%  "
                f"train {train_seconds:.1f} s",
                flush=True,
            )
            if accuracies[-1] >= TARGET:
                break
    return {"train_s": train_seconds, "epochs": len(accuracies), "acc": accuracies[-1]}


@torch.no_grad()
def evaluate(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device) -> float:
    model.eval()
    correct = sum((model(x.to(device)).argmax(1) == y.to(device)).sum().item() for x, y in loader)
    return correct / len(loader.dataset)  # type: ignore[arg-type]


def run_ours(seed: int, out_dir: Path, data_dir: Path, quick: bool) -> dict:
    command = [
        sys.executable,
        "-m",
        "simplenet",
        "--preset",
        "speedrun",
        "--seed",
        str(seed),
        "--out-dir",
        str(out_dir),
        "--run-name",
        f"s{seed}",
        "--tracker",
        "none",
        "--data-dir",
        str(data_dir),
    ]
    started = time.perf_counter()
    subprocess.run(
        command, check=True, capture_output=True, env={**os.environ, "WANDB_MODE": "disabled"}
    )
    process_s = time.perf_counter() - started
    summary = json.loads((out_dir / "simplenet" / f"s{seed}" / "summary.json").read_text())
    train_s = summary["train_time_s"]
    result = {
        "seed": seed,
        "acc": summary["metrics"]["test/acc1"],
        "train_s": train_s,
        "rest_s": summary["wall_time_s"] - train_s,
        "process_s": process_s,
    }
    print(
        f"  ours: seed {seed}  test {100 * result['acc']:.2f}%  train {train_s:.2f} s  "
        f"rest {result['rest_s']:.1f} s  process {process_s:.1f} s",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run of both paths")
    parser.add_argument("--seeds", type=int, default=10, help="seeds of ours (default 10)")
    parser.add_argument("--example-max-epochs", type=int, default=14, help="the example's 14")
    args = parser.parse_args()
    data_dir = resolve_data_dir(None)
    if not (data_dir / "MNIST" / "raw").is_dir():
        sys.exit(f"error: no MNIST raw files under {data_dir}; set MNISTLAB_DATA")
    # The CPU model and its AMX flag: bf16 timings differ ~1.7x between CPUs with and without.
    print(f"{machine_line(machine())}, {torch.get_num_threads()} threads", flush=True)
    with tempfile.TemporaryDirectory() as out:
        ours = [
            run_ours(seed, Path(out), data_dir, args.quick)
            for seed in range(1 if args.quick else args.seeds)
        ]
    example = run_example(data_dir, args.quick, args.example_max_epochs)
    accuracy = [100 * r["acc"] for r in ours]
    spread = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
    ours_train = ours[0]["train_s"]  # seed 0, the protocol's timed run
    print(
        f"ours (speedrun, seed 0): {ours_train:.2f} s of training; test accuracy over "
        f"{len(ours)} seeds: mean {statistics.fmean(accuracy):.2f} ± {spread:.2f}%, min "
        f"{min(accuracy):.2f}%; rest {ours[0]['rest_s']:.1f} s, process {ours[0]['process_s']:.1f} s"
    )
    print(
        f"example: {example['train_s']:.1f} s of training, {example['epochs']} epoch(s), "
        f"test {100 * example['acc']:.2f}%"
        + (" (did NOT reach 99%)" if example["acc"] < TARGET else "")
    )
    print(
        f"ratio example / ours: {example['train_s'] / ours_train:.1f}x"
        + ("  (--quick: not a measurement)" if args.quick else "")
    )


if __name__ == "__main__":
    main()
