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
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import torch
from toy import TOY, TOY_CHECKPOINTED, ToyConfig, train_toy

from mnistlab.cli import UsageError
from mnistlab.entry import Abandoned, Terminated, guarded_main
from mnistlab.resources import check_memory, out_of_memory_line
from mnistlab.run import Run
from mnistlab.run_folder import RunFolder, complete_checkpoints
from mnistlab.study import Study, train_or_reuse
from mnistlab.testing import assert_one_line_refusal, cpu_ddp_launch, run_cli, smoke


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


def killed_before_its_first_checkpoint(tmp_path: Path) -> Path:
    """A run folder as `kill -9` in the first epoch leaves it: config.json, metrics.jsonl and a
    checkpoint still under its .partial name."""
    train_toy(config(tmp_path, run_name="a", epochs=1))
    run_dir = tmp_path / "toy" / "a"
    (run_dir / "summary.json").unlink()
    (run_dir / "checkpoints" / "epoch-0001").rename(run_dir / "checkpoints" / "epoch-0001.partial")
    return run_dir


@pytest.mark.parametrize("how", ["--run-name", "--resume"])
def test_a_run_killed_before_its_first_checkpoint_says_to_delete_it(tmp_path, how) -> None:
    """Neither command points at the other (each used to): both say to delete the folder."""
    run_dir = killed_before_its_first_checkpoint(tmp_path)
    options = {"run_name": "a"} if how == "--run-name" else {"resume": str(run_dir)}
    with pytest.raises(UsageError, match="holds no checkpoint") as error:
        train_toy(config(tmp_path, epochs=1, **options))
    assert f"rm -r {run_dir}" in str(error.value) and "pass --resume" not in str(error.value)
    shutil.rmtree(run_dir)  # as told: the same command then starts it again
    assert train_toy(config(tmp_path, run_name="a", epochs=1))["epochs"] == 1


@pytest.mark.parametrize("how", ["--run-name", "--resume"])
def test_a_finished_run_without_its_checkpoints_is_never_called_deletable(tmp_path, how):
    """A committed run keeps config, summary and metrics only: it cannot be resumed, and it is
    a result, not debris (it used to be called a run killed in its first epoch, to delete)."""
    train_toy(config(tmp_path, run_name="a", epochs=1))
    run_dir = tmp_path / "toy" / "a"
    shutil.rmtree(run_dir / "checkpoints")
    options = {"run_name": "a"} if how == "--run-name" else {"resume": str(run_dir)}
    with pytest.raises(UsageError, match="holds a finished run whose checkpoints were not kept"):
        train_toy(config(tmp_path, epochs=1, **options))
    assert (run_dir / "summary.json").is_file()


def test_a_run_still_in_its_first_epoch_is_not_called_deletable(tmp_path: Path) -> None:
    run_dir = killed_before_its_first_checkpoint(tmp_path)
    running = RunFolder(run_dir, checkpoint=run_dir)  # as the process training in it holds it
    running.open()
    try:
        with pytest.raises(UsageError, match="in use by a run still in its first epoch"):
            train_toy(config(tmp_path, run_name="a", epochs=1))
    finally:
        running.release()


def test_resuming_another_studys_run_names_that_study(tmp_path: Path) -> None:
    train_toy(config(tmp_path, run_name="a", epochs=1))
    moved = tmp_path / "simplenet" / "a"
    moved.parent.mkdir()
    (tmp_path / "toy" / "a").rename(moved)
    with pytest.raises(UsageError, match="belongs to the simplenet study, not toy") as error:
        train_toy(config(tmp_path, epochs=2, resume=str(moved)))
    assert f"uv run --package simplenet train --resume {moved}" in str(error.value)


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


def test_an_unfinished_run_resumes_only_for_the_epochs_it_was_started_with(tmp_path: Path):
    train_toy(config(tmp_path, run_name="a", epochs=2))
    run_dir = tmp_path / "toy" / "a"
    (run_dir / "summary.json").unlink()  # as if stopped after its last checkpoint
    with pytest.raises(UsageError, match="--epochs 3 differs from the 2 that the unfinished run"):
        train_toy(config(tmp_path, epochs=3, resume=str(run_dir)))
    assert train_toy(config(tmp_path, epochs=2, resume=str(run_dir)))["epochs"] == 2
    # A finished run can still be extended.
    assert train_toy(config(tmp_path, epochs=3, resume=str(run_dir)))["epochs"] == 3


def test_a_reproduction_never_reuses_a_run_made_for_another_length(tmp_path: Path) -> None:
    train_or_reuse(train_toy, config(tmp_path, run_name="a", epochs=1))
    with pytest.raises(UsageError, match="was made with other epochs; delete it"):
        train_or_reuse(train_toy, config(tmp_path, run_name="a", epochs=2))
    assert train_or_reuse(train_toy, config(tmp_path, run_name="a", epochs=1))["epochs"] == 1


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
    # Python's own Ctrl-C handler, as in a terminal: pytest started as a background job of a
    # non-interactive shell inherits SIGINT ignored, and the self-sent Ctrl-C would be lost.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as stop:
            guarded_main(lambda: train_toy(*args, **kwargs))
    finally:
        signal.signal(signal.SIGINT, previous)
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


def test_an_interrupted_rank_that_writes_nothing_points_at_rank_0(capsys) -> None:
    def interrupted_on_rank_1() -> None:
        interrupt = KeyboardInterrupt()
        Abandoned("", rank=1, world_size=2, ddp_timeout=600).attach_to(interrupt)
        raise interrupt

    with pytest.raises(SystemExit) as stop:
        guarded_main(interrupted_on_rank_1)
    assert stop.value.code == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted (Ctrl-C): rank 1 of 2; rank 0 says what is kept"
    )


def test_an_interruption_before_the_first_checkpoint_leaves_nothing(make_config, tmp_path, capsys):
    exit_code, err = run_guarded(capsys, make_config(run_name="a"), interrupt_at_step=3)
    assert exit_code == 130 and "no checkpoint was written yet" in err
    assert not (tmp_path / "toy" / "a").exists()
    assert train_toy(make_config(run_name="a", epochs=1))["epochs"] == 1  # same name again


@pytest.mark.parametrize(("step", "kept"), [(3, False), (12, True)])
def test_running_out_of_memory_is_one_line_and_keeps_what_was_saved(
    make_config, tmp_path, capsys, step, kept
):
    code, err = run_guarded(capsys, make_config(run_name="a"), impossible_allocation_at_step=step)
    assert_one_line_refusal(code, err)
    assert "out of memory" in err and "--batch-size" in err
    assert "1048576.0 GiB" in err  # the size the allocator refused
    checkpoint = tmp_path / "toy" / "a" / "checkpoints" / "epoch-0001"
    assert checkpoint.is_dir() == kept  # before the first checkpoint: nothing is left
    assert (tmp_path / "toy" / "a").exists() == kept


def test_a_gpu_out_of_memory_line_names_the_size_and_the_gpu() -> None:
    error = torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79 GiB"
    )
    line = out_of_memory_line(error)
    assert line is not None and "refused 2.00 GiB (GPU has no more free)" in line
    assert out_of_memory_line(RuntimeError("shape mismatch")) is None


CAP_PROBE = """
import psutil, torch
from mnistlab.resources import memory_capped_at_free_ram
free = psutil.virtual_memory().available + psutil.swap_memory().free
chunks = []
with memory_capped_at_free_ram():
    try:
        for _ in range(free // 2**30 + 64):
            chunks.append(torch.empty(2**30, dtype=torch.uint8))  # reserved, never touched
    except RuntimeError as exc:
        print(len(chunks), free // 2**30, "can't allocate memory" in str(exc))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the cap is Linux's RLIMIT_DATA")
def test_memory_is_capped_at_what_the_machine_has_free() -> None:
    """Linux hands out untouched memory it does not have; under the cap the allocator refuses
    it once it passes what is free, where the kernel's out-of-memory killer would strike later."""
    out = subprocess.run(
        [sys.executable, "-c", CAP_PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    allocated, free_gib, refused = int(out[0]), int(out[1]), out[2] == "True"
    assert refused and allocated <= free_gib + 1


def test_a_failed_resume_changes_nothing(make_config, tmp_path: Path, capsys) -> None:
    train_toy(make_config(run_name="a", epochs=1))
    run_dir = tmp_path / "toy" / "a"
    (run_dir / "checkpoints" / "epoch-0001" / "optimizer.bin").write_bytes(b"")
    before = folder_bytes(run_dir)
    code, err = run_guarded(capsys, make_config(epochs=4, resume=str(run_dir)))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot be loaded" in err
    assert folder_bytes(run_dir) == before


def folder_state(folder: Path) -> dict[Path, tuple[bytes, int]]:
    """Every file's bytes and modification time: what "unchanged" means."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def test_resuming_a_finished_run_changes_none_of_its_files(tmp_path: Path) -> None:
    train_toy(config(tmp_path, run_name="a", epochs=2))
    run_dir = tmp_path / "toy" / "a"
    before = folder_state(run_dir)
    summary = train_toy(config(tmp_path, epochs=2, resume=str(run_dir)))
    assert folder_state(run_dir) == before  # config.json too (its `resume` is not rewritten)
    assert summary == json.loads((run_dir / "summary.json").read_text())


def test_a_checkpoint_missing_a_file_is_refused_naming_the_intact_one(tmp_path, capsys):
    train_toy(config(tmp_path, run_name="a", epochs=2))
    run_dir = tmp_path / "toy" / "a"
    (run_dir / "checkpoints" / "epoch-0002" / "random_states_0.pkl").unlink()
    before = folder_state(run_dir)
    code, err = run_guarded(capsys, config(tmp_path, epochs=3, resume=str(run_dir)))
    assert_one_line_refusal(code, err)
    assert "random_states_0.pkl is missing" in err
    assert f"--resume {run_dir / 'checkpoints' / 'epoch-0001'}" in err
    assert folder_state(run_dir) == before


def test_unfinished_checkpoints_never_count_even_with_a_loop_json(tmp_path: Path) -> None:
    train_toy(config(tmp_path, run_name="a", epochs=1))
    run_dir = tmp_path / "toy" / "a"
    partial = run_dir / "checkpoints" / "epoch-0002.partial"
    shutil.copytree(run_dir / "checkpoints" / "epoch-0001", partial)  # loop.json included
    assert [c.name for c in complete_checkpoints(run_dir)] == ["epoch-0001"]
    with pytest.raises(UsageError, match="no finished checkpoint there"):
        train_toy(config(tmp_path, epochs=2, resume=str(partial)))


def test_a_checkpoint_records_every_file_and_what_it_was_trained_with(tmp_path: Path) -> None:
    train_toy(config(tmp_path, run_name="a", epochs=1))
    checkpoint = tmp_path / "toy" / "a" / "checkpoints" / "epoch-0001"
    record = json.loads((checkpoint / "loop.json").read_text())
    written = {p.name: p.stat().st_size for p in checkpoint.iterdir() if p.name != "loop.json"}
    assert record["files"] == written and "random_states_0.pkl" in written
    assert record["world_size"] == 1 and record["state"]["epoch"] == 1
    assert record["trained_with"]["lr"] == 0.1 and "epochs" not in record["trained_with"]


def test_an_edited_config_json_is_refused_on_resume(tmp_path: Path, capsys) -> None:
    train_toy(config(tmp_path, run_name="a", epochs=1))
    run_dir = tmp_path / "toy" / "a"
    saved = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**saved, "lr": 0.5}))
    before = folder_state(run_dir)
    args = ["--resume", str(run_dir), "--epochs", "2", "--out-dir", str(tmp_path)]
    code, _, err = run_cli(TOY, args, capsys)
    assert_one_line_refusal(code, err)
    assert "was edited" in err and "lr 0.5" in err and "trained with lr 0.1" in err
    assert folder_state(run_dir) == before


def test_resuming_on_another_number_of_processes_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Run, "world_size", property(lambda run: 2))  # as if saved by 2 ranks
    train_toy(config(tmp_path, run_name="a", epochs=1))
    monkeypatch.undo()
    run_dir = tmp_path / "toy" / "a"
    before = folder_state(run_dir)
    code, err = run_guarded(capsys, config(tmp_path, epochs=2, resume=str(run_dir)))
    assert_one_line_refusal(code, err)
    assert "saved by 2 process(es), this run has 1" in err
    assert folder_state(run_dir) == before


def test_fp16_on_the_cpu_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    args = smoke(TOY, tmp_path, "a", "--mixed-precision", "fp16")
    code, _, err = run_cli(TOY, args, capsys)
    assert_one_line_refusal(code, err)
    assert "--mixed-precision bf16 or no" in err
    assert not (tmp_path / "toy").exists()


def test_a_size_line_shows_which_size_is_larger(tmp_path: Path, monkeypatch) -> None:
    free = int(1.01 * 2**20)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(0, 0, free))
    error = RunFolder(tmp_path).disk_error(
        tmp_path / "x", OSError(errno.ENOSPC, "No space left on device"), int(1.04 * 2**20)
    )
    assert "it needs about 1.04 MiB, 1.01 MiB free" in str(error)
    available = int(1.01 * 2**30)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=available))
    with pytest.raises(UsageError, match="needs about 1.04 GiB but 1.01 GiB is available"):
        check_memory(1.04 * 2**30, "--batch-size 9", "lower --batch-size")


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


@pytest.mark.slow
def test_a_ddp_checkpoint_holds_every_rank_and_is_not_resumed_on_one(tmp_path, capsys) -> None:
    command = [
        *cpu_ddp_launch(29521),
        str(Path(__file__).with_name("toy.py")),
        *["--epochs", "1", "--run-name", "a", "--tracker", "none", "--out-dir", str(tmp_path)],
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "toy" / "a"
    record = json.loads((run_dir / "checkpoints" / "epoch-0001" / "loop.json").read_text())
    assert record["world_size"] == 2
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= set(record["files"])
    before = folder_state(run_dir)
    args = ["--resume", str(run_dir), "--epochs", "2", "--out-dir", str(tmp_path)]
    code, _, err = run_cli(TOY, args, capsys)
    assert_one_line_refusal(code, err)
    assert "saved by 2 process(es), this run has 1" in err
    assert folder_state(run_dir) == before


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
