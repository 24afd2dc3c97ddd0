"""Training end to end: the convergence rule stops a run through the epoch hook, for good."""

from __future__ import annotations

import json
from pathlib import Path

from ae_overfit.config import AEConfig
from ae_overfit.study import STUDY
from ae_overfit.train import train


def tiny(data_dir: Path, tmp_path: Path, **changes) -> AEConfig:
    settings = {
        "hidden": (16,),
        "latent": 4,
        "train_samples": 256,
        "val_size": 128,
        "batch_size": 64,
        "tracker": "none",
        "data_dir": data_dir,
        "out_dir": tmp_path,
        "run_name": "tiny",
        **changes,
    }
    return AEConfig(**settings)


def test_convergence_stops_the_run_and_a_resume_adds_nothing(data_dir, tmp_path, capsys):
    # A 50% tolerance over 1 epoch converges within a few epochs, far before the cap of 30.
    summary = train(tiny(data_dir, tmp_path, epochs=30, converge_window=1, converge_tolerance=0.5))
    assert summary["metrics"]["converged"] == 1.0
    assert summary["epochs"] < 30
    run_dir = tmp_path / "ae-overfit" / "tiny"
    losses = [
        json.loads(line)["train/loss_epoch"]
        for line in (run_dir / "metrics.jsonl").open()
        if "train/loss_epoch" in line
    ]
    assert abs(losses[-1] - losses[-2]) < 0.5 * losses[-2]  # the rule held at the stop
    STUDY.main(["--resume", str(run_dir), "--out-dir", str(tmp_path)])
    assert "nothing to continue" in capsys.readouterr().out
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == summary["epochs"]


def test_without_the_rule_the_run_uses_every_epoch(data_dir, tmp_path):
    summary = train(tiny(data_dir, tmp_path, epochs=3, converge_tolerance=0.0))
    assert summary["metrics"]["converged"] == 0.0 and summary["epochs"] == 3
    metrics = summary["metrics"]
    for split in ("train", "test"):
        bce, floor, excess = (metrics[f"{split}/{k}"] for k in ("bce", "floor", "excess"))
        assert abs(bce - floor - excess) < 1e-3 and excess > 0
