"""Local losses learn MNIST through the shared loop, with no error crossing block borders."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_loss.config import LocalLossConfig
from local_loss.train import train


@pytest.mark.parametrize(("loss", "bar"), [("predsim", 0.95), ("bio-predsim", 0.93)])
def test_a_short_mlp_run_learns_from_local_losses_alone(
    loss: str, bar: float, data_dir: Path, tmp_path: Path
) -> None:
    """A narrower mlp (256 units) at a higher lr, 20,000 samples, 2 epochs: about 10 s of
    CPU. (With 8,000 samples at the paper's lr even global backprop stays below 95%.)"""
    config = LocalLossConfig(
        loss=loss,
        hidden=256,
        lr=2e-3,
        train_samples=20_000,
        epochs=2,
        milestones=(),
        translate=0,
        val_size=2000,
        data_dir=data_dir,
        out_dir=tmp_path,
        tracker="none",
    )
    summary = train(config)
    assert summary["metrics"]["test/acc1"] >= bar, summary["metrics"]
