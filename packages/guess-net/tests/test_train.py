"""Short CPU runs: the guess net predicts the classifier's errors better than chance, border
training switches routing on at its epoch, and the hard set is hard for the reference."""

from __future__ import annotations

import json
from pathlib import Path

from guess_net.config import GuessNetConfig
from guess_net.reference import hard_mask, reference_true_class_probability
from guess_net.train import train


def test_border_run_learns_guesses_and_routes_from_its_epoch(data_dir: Path, tmp_path: Path):
    config = GuessNetConfig(
        border=True,
        epochs=2,
        train_samples=4096,
        val_size=1000,
        batch_size=64,
        tracker="none",
        data_dir=data_dir,
        out_dir=tmp_path,
        run_name="border",
    )
    summary = train(config)
    metrics = summary["metrics"]
    assert metrics["test/acc1"] > 0.5  # chance: 0.1
    assert metrics["test/guess_auroc"] > 0.65  # chance is 0.5
    assert metrics["test/hard_acc1"] < metrics["test/acc1"]
    lines = (tmp_path / "guess-net" / "border" / "metrics.jsonl").read_text().splitlines()
    routed = [e["val/routed"] for e in map(json.loads, lines) if "val/routed" in e]
    assert routed[0] == 0.0  # phase 1: main half only
    assert 0 < routed[1] < 1  # phase 2: only the flagged samples
    assert 0 < metrics["test/routed"] < 1


def test_hard_set_is_the_references_least_confident_tenth(data_dir: Path) -> None:
    p_true = reference_true_class_probability("mnist", data_dir)
    mask = hard_mask("mnist", data_dir, 0.1)
    assert int(mask.sum()) == len(p_true) // 10
    assert p_true[mask].max() <= p_true[~mask].min()
    # A real reference: most test samples right, the hard tenth mostly wrong.
    assert (p_true > 0.5).float().mean() > 0.88
    assert (p_true[mask] > 0.5).float().mean() < 0.4
