"""Each arch learns MNIST on a short CPU run, at the plain MLP's parameter count."""

from __future__ import annotations

from pathlib import Path

import pytest

from compound_relu.config import CompoundConfig
from compound_relu.train import train


@pytest.mark.parametrize("arch", ["plain", "compound", "residual"])
def test_each_arch_learns_mnist(data_dir: Path, tmp_path: Path, arch: str) -> None:
    """1 epoch on 12k samples, width 64: a few seconds per arch on an idle 2-core CPU."""
    config = CompoundConfig(
        arch=arch,
        width=64,
        epochs=1,
        train_samples=12_000,
        tracker="none",
        data_dir=data_dir,
        out_dir=tmp_path,
    )
    metrics = train(config)["metrics"]
    assert metrics["test/acc1"] >= 0.88
    assert abs(metrics["model/parameters"] - 55_050) <= 0.01 * 55_050  # plain 784-64-64-10
