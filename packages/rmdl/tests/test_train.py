"""RMDL end to end: a small ensemble learns, its members are rebuilt from their saved specs and
give the saved predictions, `predict` classifies the test split and PNGs, two processes train
the same ensemble as one, bad --members values are refused."""

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

from mnistlab.cli import UsageError
from mnistlab.data import load_split
from mnistlab.testing import cpu_ddp_launch
from rmdl.config import RmdlConfig
from rmdl.ensemble import ENSEMBLE_DIR, PREDICTIONS_FILE, load_member, vote, voters
from rmdl.predict import PredictConfig, member_probabilities, predict
from rmdl.reproduce import ensemble_errors, mix
from rmdl.study import STUDY
from rmdl.train import train

SMALL = [
    "--members",
    "2,1,1",
    "--dnn-layers",
    "1",
    "2",
    "--dnn-units",
    "64",
    "128",
    "--cnn-blocks",
    "3",
    "3",
    "--cnn-filters",
    "8",
    "16",
    "--cnn-dense",
    "32",
    "--rnn-units",
    "16",
    "32",
    "--train-samples",
    "4096",
    "--val-size",
    "512",
    "--epochs",
    "2",
    "--tracker",
    "none",
]
# One thread per process: results are then bit-identical between 1 and 2 processes.
ONE_THREAD = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "WANDB_MODE": "disabled",
    "CUDA_VISIBLE_DEVICES": "",
}


def train_cli(launcher: list[str], out_dir: Path, name: str, data_dir: Path) -> dict:
    args = [*SMALL, "--out-dir", str(out_dir), "--run-name", name, "--data-dir", str(data_dir)]
    done = subprocess.run(
        [*launcher, "-m", "rmdl", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=ONE_THREAD,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out_dir / "rmdl" / name / "summary.json").read_text())


@pytest.fixture(scope="module")
def one_process(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """2 epochs of 4096 samples: two DNNs, a CNN and an RNN."""
    return train_cli([sys.executable], tmp_path_factory.mktemp("runs"), "one", data_dir)


def test_small_ensemble_learns_and_reports_both_votes(one_process: dict) -> None:
    metrics = one_process["metrics"]
    assert metrics["members"] == 4
    assert metrics["test/vote/acc1"] >= 0.85 and metrics["test/average/acc1"] >= 0.85
    assert metrics["test/vote/acc1"] >= metrics["test/best_member/acc1"] - 0.01
    index = json.loads((Path(one_process["run_dir"]) / ENSEMBLE_DIR / "ensemble.json").read_text())
    assert [row["name"] for row in index["members"]] == ["dnn-0", "dnn-1", "cnn-0", "rnn-0"]
    assert metrics["dead_members"] == sum(row["dead"] for row in index["members"])
    assert 0 <= metrics["test/vote/ties_percent"] <= 100 * 2 / 4  # a tie needs two 2-2 splits


def test_members_rebuilt_from_their_specs_give_the_saved_predictions(one_process, data_dir):
    folder = Path(one_process["run_dir"]) / ENSEMBLE_DIR
    saved = torch.load(folder / PREDICTIONS_FILE)
    test = load_split("mnist", "test", data_dir)
    images = test.images.float() / 255.0
    for position, name in enumerate(["dnn-0", "dnn-1", "cnn-0", "rnn-0"]):
        rebuilt = member_probabilities([load_member(folder, name)], images)[0]
        torch.testing.assert_close(rebuilt, saved["test_probabilities"][position])
        assert torch.equal(rebuilt.argmax(1), saved["test_probabilities"][position].argmax(1))


def test_predict_classifies_the_test_split_and_pngs(one_process, data_dir, tmp_path, capsys):
    run_dir = Path(one_process["run_dir"])
    saved = torch.load(run_dir / ENSEMBLE_DIR / PREDICTIONS_FILE)
    index = json.loads((run_dir / ENSEMBLE_DIR / "ensemble.json").read_text())
    alive = voters(torch.tensor([row["val_acc1"] for row in index["members"]]), index["dead_below"])
    expected = vote(saved["test_probabilities"], alive)
    out = tmp_path / "test.csv"
    result = predict(PredictConfig(run_dir, out=out, data_dir=data_dir))
    assert torch.equal(result["vote"], expected["vote"])
    assert len(out.read_text().splitlines()) == 1 + 10_000
    folder = tmp_path / "pngs"
    folder.mkdir()
    test = load_split("mnist", "test", data_dir)
    for i in range(5):
        Image.fromarray(test.images[i, 0].numpy()).save(folder / f"{i}.png")
    capsys.readouterr()
    result = predict(PredictConfig(run_dir, images=folder))
    assert torch.equal(result["vote"], expected["vote"][:5])
    assert torch.equal(result["members"], saved["test_probabilities"][:, :5].argmax(dim=2))
    assert len(capsys.readouterr().out.splitlines()) == 1 + 5


def test_predict_on_a_run_without_its_weights_is_one_line(one_process, tmp_path: Path):
    """As on a committed run: specs and index kept, weights not."""
    kept = tmp_path / "run"
    shutil.copytree(Path(one_process["run_dir"]) / ENSEMBLE_DIR, kept / ENSEMBLE_DIR)
    for weights in (kept / ENSEMBLE_DIR).glob("*.pt"):
        weights.unlink()
    with pytest.raises(UsageError, match="describes the ensemble but lacks its weights"):
        predict(PredictConfig(kept))


def test_a_runs_nested_errors_are_kept_so_a_clone_rebuilds_the_rows(one_process, tmp_path):
    ensembles = {"one per kind": mix(1, 1, 1), "two dnns": mix(2, 0, 0)}
    run = tmp_path / "run"
    shutil.copytree(one_process["run_dir"], run, ignore=shutil.ignore_patterns("checkpoints"))
    results, members = ensemble_errors(run, ensembles)
    assert results["two dnns"]["members"] == 2 and len(members) == 4
    for saved in (run / ENSEMBLE_DIR).glob("*.pt"):  # what a commit keeps: no tensors
        saved.unlink()
    assert ensemble_errors(run, ensembles) == (results, members)
    with pytest.raises(UsageError, match="keeps neither its members' test predictions"):
        ensemble_errors(run, {"one cnn": mix(0, 1, 0)})


def test_a_small_lstm_member_learns_mnist_in_a_short_run(data_dir: Path, tmp_path: Path):
    """2 epochs of 2,048 images: with torch's default LSTM init this member stayed at chance
    (11.3% test accuracy); with Keras's it reached 42.8%."""
    config = RmdlConfig(
        members="0,0,1",
        rnn_units=(16, 16),
        optimizers=("rmsprop",),
        lr=3.0,
        train_samples=2048,
        val_size=512,
        epochs=2,
        batch_size=32,
        tracker="none",
        data_dir=data_dir,
        out_dir=tmp_path,
    )
    summary = train(config)
    assert summary["metrics"]["test/vote/acc1"] >= 0.3  # chance is 0.1
    assert summary["metrics"]["dead_members"] == 0


@pytest.mark.slow
def test_two_processes_train_the_same_ensemble_as_one(one_process, data_dir, tmp_path):
    """Each process trains its own members (0 and 2, or 1 and 3) on all the data; the result is
    bit-identical to one process."""
    launcher = cpu_ddp_launch(29533)
    two = train_cli(launcher, tmp_path, "two", data_dir)
    assert two["world_size"] == 2 and two["ranks_agree"]
    assert two["fingerprint"] == one_process["fingerprint"]
    assert two["metrics"] == one_process["metrics"]


@pytest.mark.parametrize("members", ["3,3", "0,0,0", "1,x,1", "-1,2,2", "1000,0,0"])
def test_bad_members_exit_2_with_one_line(members: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        STUDY.main(["--members", members, "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())
