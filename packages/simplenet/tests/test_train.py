"""SimpleNet and the speedrun preset learn MNIST (accuracy, not time)."""

from __future__ import annotations

from pathlib import Path

from mnistlab.entry import parse_run_config
from mnistlab.testing import assert_a_length_change_is_refused
from simplenet.config import SimpleNetConfig
from simplenet.study import STUDY
from simplenet.train import train


def run(tmp_path: Path, data_dir: Path, *flags: str) -> dict:
    argv = [*flags, "--tracker", "none", "--data-dir", str(data_dir), "--out-dir", str(tmp_path)]
    return train(parse_run_config(SimpleNetConfig, argv, ""))  # type: ignore[arg-type]


def test_a_short_simplenet_slim_run_learns(data_dir: Path, tmp_path: Path) -> None:
    """Slim SimpleNet, modern recipe, 128 steps on 1,024 digits: far above chance (10%)."""
    summary = run(
        tmp_path,
        data_dir,
        "--model",
        "slim",
        "--recipe",
        "modern",
        "--train-samples",
        "1024",
        "--val-size",
        "1000",
        "--batch-size",
        "16",
        "--epochs",
        "2",
    )
    assert summary["metrics"]["test/acc1"] >= 0.80


def test_speedrun_preset_reaches_98_9_percent_on_one_seed(data_dir: Path, tmp_path: Path) -> None:
    summary = run(tmp_path, data_dir, "--preset", "speedrun", "--seed", "0")
    assert summary["config"]["model"] == "fast-tiny"
    assert summary["metrics"]["test/acc1"] >= 0.989


def test_a_run_is_never_resumed_for_another_length(tmp_path: Path, capsys) -> None:
    """The modern recipe's one-cycle lr is laid out over --epochs."""
    assert_a_length_change_is_refused(STUDY, tmp_path, capsys)
