"""Kakuritsu end to end: it learns, resumes, runs as real 2-process DDP, refuses bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from kakuritsu.config import KakuritsuConfig
from kakuritsu.study import STUDY
from kakuritsu.train import train
from mnistlab.entry import parse_run_config
from mnistlab.testing import cpu_ddp_launch

REPO = Path(__file__).parents[3]
# Two mc passes: the test split's 16-pass default costs a K head ~20 s of CPU.
QUICK = [
    *("--model", "small", "--tracker", "none", "--train-samples", "2048", "--epochs", "2"),
    *("--mc-samples", "2"),
]


def run_cli(args: list[str]) -> tuple[int, str]:
    """Run the trainer in a subprocess, as a user would; returns (exit code, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "kakuritsu", *args], capture_output=True, text=True, timeout=300
    )
    return done.returncode, done.stderr


def config_from(argv: list[str]) -> KakuritsuConfig:
    return parse_run_config(KakuritsuConfig, argv, "")  # type: ignore[return-value]


def summary_of(out_dir: Path, name: str) -> dict:
    return json.loads((out_dir / "kakuritsu" / name / "summary.json").read_text())


@pytest.mark.parametrize("head", ["K", "D", "W"])
def test_each_head_learns_mnist(data_dir: Path, tmp_path: Path, head: str) -> None:
    """The small backbone, 2 epochs on 12,000 images: 10-20 s per head on the 2-core CPU."""
    argv = [
        *QUICK,
        *("--head", head, "--train-samples", "12000"),
        *("--data-dir", str(data_dir), "--out-dir", str(tmp_path)),
    ]
    summary = train(config_from(argv))
    assert summary["metrics"]["test/deterministic/acc1"] >= 0.93  # chance is 0.10


def test_two_cpu_processes_run_real_ddp_with_identical_ranks(data_dir: Path, tmp_path: Path):
    command = [
        *cpu_ddp_launch(29517),
        "-m",
        "kakuritsu",
        *QUICK,
        "--head",
        "K",
        "--data-dir",
        str(data_dir),
        "--out-dir",
        str(tmp_path),
        "--run-name",
        "ddp",
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = summary_of(tmp_path, "ddp")
    assert summary["world_size"] == 2 and summary["ranks_agree"]
    # Each rank trains on half of each epoch: 2 epochs x ceil(1024 / 64) steps.
    assert summary["steps"] == 2 * 16
    assert summary["metrics"]["test/deterministic/acc1"] > 0.8


def test_evaluate_only_and_switch_and_original_flags(data_dir: Path, tmp_path: Path) -> None:
    base = [*QUICK, "--data-dir", str(data_dir), "--out-dir", str(tmp_path)]
    argv = [
        *base,
        "--run-name",
        "a",
        "-b",
        "32",
        "--print-freq",
        "5",
        "--wd",
        "1e-4",
        "--momentum",
        "0.5",
        "--seed",
        "3",
        "--switch",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
    ]
    summary = train(config_from(argv))
    lines = (tmp_path / "kakuritsu" / "a" / "metrics.jsonl").read_text().splitlines()
    assert any("val/deterministic/acc1" in line for line in lines)  # --switch: p=1 validation
    assert sum('"train/loss"' in line for line in lines) == 2 * 2048 // 32 // 5
    evaluated = train(parse_run_config(KakuritsuConfig, [*base, "-e", "--resume", "latest"], ""))
    modes = ("sampled", "mc", "deterministic", "swapped")
    assert {key for key in evaluated["metrics"] if key.endswith("acc1")} == {
        f"test/{mode}/acc1" for mode in modes
    }
    det = "test/deterministic/acc1"
    assert evaluated["metrics"][det] == pytest.approx(summary["metrics"][det])
    assert len(list((tmp_path / "kakuritsu" / "a").glob("evaluation-*.json"))) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--p", "0"], "--p must be in (0, 1]"),
        (["--p", "1.5"], "--p must be in (0, 1]"),
        (["--lr", "-0.1"], "--lr must be in (0, 1000)"),
        (["--dataset", "cifar"], "invalid choice 'cifar'"),
        (["--epochs", "many"], "--epochs"),
        (["--evaluate"], "--evaluate needs --resume"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args: list[str], message: str) -> None:
    code, stderr = run_cli(args)
    assert code == 2 and stderr.count("\n") == 1 and message in stderr


def test_bad_data_and_paths_exit_2_and_leave_earlier_runs_untouched(data_dir: Path, tmp_path):
    base = [*QUICK, "--max-steps", "2", "--out-dir", str(tmp_path)]
    code, _ = run_cli([*base, "--data-dir", str(data_dir), "--run-name", "good"])
    assert code == 0
    good = tmp_path / "kakuritsu" / "good"
    before = {p: p.read_bytes() for p in good.rglob("*") if p.is_file()}

    corrupt = tmp_path / "corrupt"
    shutil.copytree(data_dir / "MNIST", corrupt / "MNIST")
    labels = corrupt / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-10])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [
        ([*base, "--data-dir", str(corrupt)], "train-labels-idx1-ubyte.gz is corrupt"),
        ([*base, "--data-dir", str(data_dir), "--run-name", "good"], "already exists"),
        ([*base, "--data-dir", str(data_dir), "--out-dir", str(blocker)], "writable --out-dir"),
        (
            [*base, "--data-dir", str(data_dir), "--resume", str(tmp_path / "nope")],
            "no finished checkpoint",
        ),
    ]
    for args, message in cases:
        code, stderr = run_cli(args)
        assert code == 2 and stderr.count("\n") == 1 and message in stderr, stderr
    assert {p: p.read_bytes() for p in good.rglob("*") if p.is_file()} == before


def make_image_folder(root: Path, classes: int = 2, per_class: int = 6) -> Path:
    generator = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = torch.randint(0, 256, (40, 40, 3), generator=generator, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("source", ["image-folder", "dummy"])
def test_imagenet_style_pipelines_run_on_tiny_data(tmp_path: Path, source: str) -> None:
    data = (
        ["--image-folder", str(make_image_folder(tmp_path / "images"))]
        if source == "image-folder"
        else ["--dummy", "--dummy-samples", "16"]
    )
    argv = [
        *data,
        "--arch",
        "resnet18",
        "--image-size",
        "32",
        "-b",
        "4",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--hidden",
        "16",
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--tracker",
        "none",
        "--out-dir",
        str(tmp_path / "runs"),
    ]
    summary = train(config_from(argv))
    assert summary["epochs"] == 1
    assert summary["steps"] == (3 if source == "image-folder" else 4)
    # Every mode evaluated exactly the validation images: 12 folder images, 1 fake one.
    images = 12 if source == "image-folder" else 1
    for mode in ("sampled", "mc", "deterministic", "swapped"):
        correct = summary["metrics"][f"test/{mode}/acc1"] * images
        assert correct == pytest.approx(round(correct), abs=1e-4), mode
        assert summary["metrics"][f"test/{mode}/acc5"] >= summary["metrics"][f"test/{mode}/acc1"]


def test_an_image_folder_class_without_images_is_refused_in_one_line(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "images")
    (root / "train" / "empty-class").mkdir()
    code, stderr = run_cli(
        [
            "--image-folder",
            str(root),
            "--arch",
            "resnet18",
            "--tracker",
            "none",
            "--out-dir",
            str(tmp_path / "runs"),
        ]
    )
    assert code == 2 and stderr.count("\n") == 1 and "at least one image" in stderr, stderr
    assert not (tmp_path / "runs").exists()


def test_main_entry_point_prints_help_with_every_field(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        STUDY.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--head",
        "--p",
        "--switch",
        "-e, --evaluate",
        "-b INT, --batch-size INT",
        "--print-freq",
        "--dummy",
        "--arch",
        "--resume",
        "--tracker",
    ):
        assert flag in out, flag
