"""The shared runtime on the toy study (toy.py): run folder, resume equivalence, refusals, NaN
stop, and the faults every study shares (interruptions, a full disk, the lock, broken
checkpoints), on the toy and on a toy whose model is `checkpointed` instead of prepared."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from toy import TOY, TOY_CHECKPOINTED, ToyConfig, train_toy

from mnistlab.cli import UsageError
from mnistlab.entry import Terminated, guarded_main
from mnistlab.run import Run
from mnistlab.run_folder import complete_checkpoints
from mnistlab.study import Study
from mnistlab.testing import cpu_ddp_launch, run_cli, smoke


@pytest.fixture(params=[False, True], ids=["toy", "toy-checkpointed"])
def make_config(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., ToyConfig]:
    """Toy configs in tmp_path, for the toy and for the toy that hands its model to the run as
    `checkpointed=` (as rmdl does)."""
    return lambda **overrides: config(tmp_path, checkpointed=request.param, **overrides)


@pytest.fixture(params=[TOY, TOY_CHECKPOINTED], ids=["toy", "toy-checkpointed"])
def study(request: pytest.FixtureRequest) -> Study:
    return request.param


def config(tmp_path: Path, **overrides) -> ToyConfig:
    return ToyConfig(out_dir=tmp_path, tracker="none", **overrides)


def test_run_folder_holds_config_metrics_summary_and_checkpoints(tmp_path: Path) -> None:
    summary = train_toy(config(tmp_path, run_name="a", log_every=4))
    run_dir = tmp_path / "toy" / "a"
    assert json.loads((run_dir / "config.json").read_text())["lr"] == 0.1
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines if "acc" in line] == [1, 2, 3]
    assert any("train/loss" in line for line in lines)
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved == summary
    assert saved["world_size"] == 1 and saved["ranks_agree"] and len(saved["fingerprint"]) == 64
    assert saved["samples_per_s"] > 0 and saved["metrics"]["acc"] > 0.5  # it learns the cue
    assert [c.name for c in complete_checkpoints(run_dir)] == ["epoch-0002", "epoch-0003"]


def test_resumed_run_ends_with_the_same_fingerprint_as_an_uninterrupted_one(tmp_path: Path):
    straight = train_toy(config(tmp_path, run_name="straight"))
    train_toy(config(tmp_path, run_name="killed", epochs=1))  # "killed" after epoch 1
    resumed = train_toy(config(tmp_path, epochs=3, resume=str(tmp_path / "toy" / "killed")))
    assert resumed["fingerprint"] == straight["fingerprint"]
    assert resumed["run_dir"] == str(tmp_path / "toy" / "killed")
    other_seed = train_toy(config(tmp_path, run_name="s1", seed=1))
    assert other_seed["fingerprint"] != straight["fingerprint"]  # the check can fail


def test_resume_ignores_an_unfinished_checkpoint_and_latest_finds_the_newest(tmp_path: Path):
    train_toy(config(tmp_path, run_name="a", epochs=1))
    run_dir = tmp_path / "toy" / "a"
    partial = run_dir / "checkpoints" / "epoch-0002.partial"
    shutil.copytree(run_dir / "checkpoints" / "epoch-0001", partial)
    (partial / "loop.json").unlink()  # a crash mid-write
    summary = train_toy(config(tmp_path, epochs=2, resume="latest"))
    assert summary["epochs"] == 2 and summary["run_dir"] == str(run_dir)


def test_an_existing_run_is_never_overwritten(tmp_path: Path) -> None:
    train_toy(config(tmp_path, run_name="a", epochs=1))
    run_dir = tmp_path / "toy" / "a"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(UsageError, match="already exists; pass --resume"):
        train_toy(config(tmp_path, run_name="a", epochs=1))
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_broken_checkpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    train_toy(config(tmp_path, run_name="a", epochs=1))
    checkpoint = tmp_path / "toy" / "a" / "checkpoints" / "epoch-0001"
    (checkpoint / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UsageError, match="cannot be loaded") as error:
        train_toy(config(tmp_path, epochs=2, resume=str(checkpoint)))
    assert "\n" not in str(error.value)


def test_resume_with_different_hyperparameters_is_refused(tmp_path: Path) -> None:
    train_toy(config(tmp_path, run_name="a", epochs=1))
    with pytest.raises(UsageError, match="--lr differ"):
        train_toy(config(tmp_path, epochs=2, lr=0.5, resume=str(tmp_path / "toy" / "a")))


def test_unwritable_out_dir_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="choose a writable --out-dir"):
        train_toy(ToyConfig(out_dir=blocker, tracker="none"))


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as stop:
        train_toy(config(tmp_path, run_name="a", log_every=2), nan_after_steps=12)  # epoch 2
    assert stop.value.code == 1
    assert "training loss became nan in epoch 2" in capsys.readouterr().out
    run_dir = tmp_path / "toy" / "a"
    assert [c.name for c in complete_checkpoints(run_dir)] == ["epoch-0001"]
    assert not (run_dir / "summary.json").exists()


def test_max_steps_stops_early_without_a_partial_checkpoint(tmp_path: Path) -> None:
    summary = train_toy(config(tmp_path, run_name="a", max_steps=3))
    assert summary["steps"] == 3 and summary["epochs"] == 0
    assert complete_checkpoints(tmp_path / "toy" / "a") == []


def test_a_failing_tracker_never_stops_the_run(tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise ConnectionError("no route to wandb")

    monkeypatch.setattr("accelerate.Accelerator.init_trackers", broken)
    summary = train_toy(ToyConfig(out_dir=tmp_path, run_name="a", tracker="wandb", epochs=1))
    assert summary["epochs"] == 1


def folder_bytes(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_guarded(capsys, *args, **kwargs) -> tuple[int, str]:
    """Exit code and stderr of a toy run behind the study command-line guard."""
    with pytest.raises(SystemExit) as stop:
        guarded_main(lambda: train_toy(*args, **kwargs))
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("signal_number", "code", "name"),
    [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")],
)
def test_an_interruption_says_in_one_line_what_is_kept(
    make_config, tmp_path, capsys, signal_number, code, name
):
    exit_code, err = run_guarded(
        capsys,
        make_config(run_name="a"),
        interrupt_at_step=12,
        signal_number=signal_number,
    )
    run_dir = tmp_path / "toy" / "a"
    assert exit_code == code
    checkpoint = run_dir / "checkpoints" / "epoch-0001"
    assert err.strip() == (
        f"interrupted ({name}): checkpoint {checkpoint} is kept; continue with --resume {run_dir}"
    )
    summary = train_toy(make_config(resume=str(run_dir)))
    assert summary["fingerprint"] == train_toy(make_config(run_name="b"))["fingerprint"]


def test_an_interruption_before_the_first_checkpoint_leaves_nothing(make_config, tmp_path, capsys):
    exit_code, err = run_guarded(capsys, make_config(run_name="a"), interrupt_at_step=3)
    assert exit_code == 130 and "no checkpoint was written yet" in err
    assert not (tmp_path / "toy" / "a").exists()
    assert train_toy(make_config(run_name="a", epochs=1))["epochs"] == 1  # same name again


def test_a_failed_resume_changes_nothing(make_config, tmp_path: Path, capsys) -> None:
    train_toy(make_config(run_name="a", epochs=1))
    run_dir = tmp_path / "toy" / "a"
    (run_dir / "checkpoints" / "epoch-0001" / "optimizer.bin").write_bytes(b"")
    before = folder_bytes(run_dir)
    code, err = run_guarded(capsys, make_config(epochs=4, resume=str(run_dir)))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot be loaded" in err
    assert folder_bytes(run_dir) == before


def test_resuming_a_finished_run_keeps_its_summary(tmp_path: Path) -> None:
    train_toy(config(tmp_path, run_name="a", epochs=2))
    run_dir = tmp_path / "toy" / "a"
    before = folder_bytes(run_dir)
    train_toy(config(tmp_path, epochs=2, resume=str(run_dir)))
    after = folder_bytes(run_dir)
    assert after[run_dir / "summary.json"] == before[run_dir / "summary.json"]


def test_a_resumed_run_does_not_duplicate_metrics_lines(tmp_path: Path) -> None:
    train_toy(config(tmp_path, run_name="a", epochs=2, log_every=4))
    run_dir = tmp_path / "toy" / "a"
    train_toy(config(tmp_path, epochs=2, resume=str(run_dir / "checkpoints" / "epoch-0001")))
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines if "acc" in line] == [1, 2]
    steps = [line["step"] for line in lines if "train/loss" in line]
    assert steps == sorted(set(steps))


def test_a_second_process_on_the_same_run_folder_is_refused(make_config, tmp_path: Path) -> None:
    import fcntl

    train_toy(make_config(run_name="a", epochs=1))
    run_dir = tmp_path / "toy" / "a"
    holder = os.open(run_dir, os.O_RDONLY)  # what a running resume holds
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(UsageError, match="in use by another process"):
            train_toy(make_config(epochs=2, resume=str(run_dir)))
    finally:
        os.close(holder)
    assert train_toy(make_config(epochs=2, resume=str(run_dir)))["epochs"] == 2


# What a full disk raises: Python's OSError, torch.save's stream writer a RuntimeError.
DISK_FULL = {
    "oserror": (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    "torch": (
        RuntimeError(
            "[enforce fail at inline_container.cc:858] . PytorchStreamWriter "
            "failed writing file data/0: file write failed\nframes..."
        ),
        "file write failed",
    ),
}


@pytest.mark.parametrize("raised", list(DISK_FULL))
def test_a_full_disk_keeps_the_last_checkpoint_and_leaves_no_partial(
    make_config, tmp_path, monkeypatch, raised
):
    train_toy(make_config(run_name="a", epochs=1))
    run_dir = tmp_path / "toy" / "a"
    exc, reason = DISK_FULL[raised]

    def full(self, output_dir: str, **kwargs) -> None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "model.safetensors").write_bytes(b"half")
        raise exc

    monkeypatch.setattr("accelerate.Accelerator.save_state", full)
    with pytest.raises(UsageError) as error:
        train_toy(make_config(epochs=2, resume=str(run_dir)))
    message = str(error.value)
    assert reason in message and "MiB" in message and "\n" not in message
    assert f"--resume {run_dir}" in message
    assert [c.name for c in complete_checkpoints(run_dir)] == ["epoch-0001"]
    assert not list((run_dir / "checkpoints").glob("*.partial"))


@pytest.mark.parametrize(
    ("interruption", "exit_code", "name"),
    [(KeyboardInterrupt, 130, "Ctrl-C"), (Terminated, 143, "SIGTERM")],
)
def test_an_interruption_says_in_one_line_which_checkpoint_is_kept(
    study: Study, tmp_path, capsys, monkeypatch, interruption, exit_code, name
) -> None:
    save = Run.save_checkpoint

    def save_then_interrupt(run: Run) -> Path:
        save(run)
        raise interruption  # as if Ctrl-C / SIGTERM arrived right after epoch 1's checkpoint

    monkeypatch.setattr(Run, "save_checkpoint", save_then_interrupt)
    code, _, err = run_cli(study, smoke(study, tmp_path, "a", "--epochs", "2"), capsys)
    run_dir = tmp_path / study.name / "a"
    assert code == exit_code and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"interrupted ({name}): checkpoint {run_dir / 'checkpoints' / 'epoch-0001'} is kept; "
        f"continue with --resume {run_dir}"
    )


def test_a_full_disk_at_the_first_checkpoint_is_one_line_and_leaves_nothing(
    study: Study, tmp_path, capsys, monkeypatch
) -> None:
    def full(self, output_dir: str, **kwargs) -> None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("accelerate.Accelerator.save_state", full)
    code, _, err = run_cli(study, smoke(study, tmp_path, "a", "--epochs", "1"), capsys)
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: cannot write") and "No space left on device" in last
    assert "MiB" in last and "--out-dir" in last
    assert not (tmp_path / study.name / "a").exists(), "a run with no checkpoint leaves nothing"


def test_the_epoch_hook_stops_training_for_good(tmp_path: Path) -> None:
    summary = train_toy(config(tmp_path, run_name="a", epochs=5), stop_after_epoch=2)
    assert summary["epochs"] == 2
    resumed = train_toy(config(tmp_path, epochs=6, resume=str(tmp_path / "toy" / "a")))
    assert resumed["epochs"] == 2 and resumed["fingerprint"] == summary["fingerprint"]


def test_a_silent_ddp_rank_ends_the_run_after_the_timeout(tmp_path: Path) -> None:
    command = [
        *cpu_ddp_launch(29519),
        str(Path(__file__).with_name("silent_rank.py")),
        "--ddp-timeout",
        "5",
        "--tracker",
        "none",
        "--out-dir",
        str(tmp_path),
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode != 0
    assert "error: rank 0: rank 1 of this run stopped responding" in done.stderr
    assert time.perf_counter() - started < 200  # not the silent rank's 300 s
