"""The contract every registered study passes (lightning-hydra-template style): a study gets
these tests by registering under `mnistlab.studies`; its own tests keep only its science.

Each test runs the study's command line in this process (`Study.main(argv)`), as a user would.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from mnistlab.dispatch import installed_studies, load_study
from mnistlab.runtime import Run, Terminated
from mnistlab.study import Study

STUDIES = sorted(installed_studies())
# Bad values every study must refuse with one line and exit code 2.
COMMON_BAD_ARGS = (
    ("--no-such-flag",),
    ("--seed", "abc"),
    ("--max-steps", "0"),
    ("--log-every", "0"),
    ("--run-name", "a/b"),
    ("--tracker", "tensorboard"),
    ("--ddp-timeout", "0"),
)


def run_cli(study: Study, args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Exit code, stdout, stderr of the study's command line."""
    code = 0
    try:
        study.main(args)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_refusal(code: int, err: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err


@pytest.fixture(params=STUDIES)
def study(request: pytest.FixtureRequest) -> Study:
    return load_study(request.param)


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_is_named_once_by_its_config(name: str) -> None:
    study = load_study(name)
    assert study.name == study.config.study == name  # entry point, config, run folders
    assert study.description and callable(study.reproduce)


def test_help_lists_the_options(study: Study, capsys) -> None:
    code, out, _ = run_cli(study, ["--help"], capsys)
    assert code == 0
    assert study.description.split()[0] in out
    for flag in ("--seed", "--out-dir", "--resume", "--max-steps"):
        assert flag in out


BAD_CASES = [
    (name, args) for name in STUDIES for args in (*COMMON_BAD_ARGS, *load_study(name).bad_args)
]


@pytest.mark.parametrize(
    ("name", "args"), BAD_CASES, ids=[f"{n}:{' '.join(a)}" for n, a in BAD_CASES]
)
def test_bad_values_exit_2_with_one_line(name: str, args: tuple[str, ...], tmp_path: Path, capsys):
    code, _, err = run_cli(load_study(name), [*args, "--out-dir", str(tmp_path)], capsys)
    assert_one_line_refusal(code, err)
    assert not any(tmp_path.iterdir()), "a refused start must leave no run folder"


def test_missing_data_exits_2_and_leaves_no_run_folder(study: Study, tmp_path: Path, capsys):
    if "--data-dir" not in run_cli(study, ["--help"], capsys)[1]:
        pytest.skip("the study reads no dataset")
    # Below a plain file, so that no download can fill it, online or not.
    (tmp_path / "a-file").touch()
    args = [
        *study.smoke_args,
        "--data-dir",
        str(tmp_path / "a-file" / "data"),
        "--out-dir",
        str(tmp_path / "runs"),
        "--tracker",
        "none",
    ]
    code, out, err = run_cli(study, args, capsys)
    if code == 0:  # a simulation that reads no data: nothing to test
        pytest.skip("the study ran without the dataset")
    assert_one_line_refusal(code, err)
    assert "--data-dir" in err
    assert not (tmp_path / "runs").exists(), "a failed start must leave no run folder"


def smoke(study: Study, tmp_path: Path, name: str, *extra: str) -> list[str]:
    return [
        *study.smoke_args,
        "--out-dir",
        str(tmp_path),
        "--run-name",
        name,
        "--tracker",
        "none",
        *extra,
    ]


def test_smoke_run_writes_config_metrics_and_summary(study: Study, data_dir, tmp_path, capsys):
    code, _, err = run_cli(study, smoke(study, tmp_path, "smoke", "--max-steps", "3"), capsys)
    assert code == 0, err
    run_dir = tmp_path / study.name / "smoke"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["max_steps"] == 3
    assert (run_dir / "metrics.jsonl").read_text().strip()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["study"] == study.name and summary["fingerprint"]


def test_resume_after_epoch_1_equals_the_uninterrupted_run(
    study: Study, data_dir, tmp_path, capsys
):
    if not study.resumable:
        pytest.skip(f"{study.name} refuses --resume (tested among its bad values)")
    assert run_cli(study, smoke(study, tmp_path, "straight", "--epochs", "2"), capsys)[0] == 0
    assert run_cli(study, smoke(study, tmp_path, "resumed", "--epochs", "1"), capsys)[0] == 0
    run_dir = tmp_path / study.name / "resumed"
    code, _, err = run_cli(
        study, ["--resume", str(run_dir), "--epochs", "2", "--out-dir", str(tmp_path)], capsys
    )
    assert code == 0, err
    straight = json.loads((tmp_path / study.name / "straight" / "summary.json").read_text())
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["fingerprint"] == straight["fingerprint"]
    assert resumed["epochs"] == 2
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").open()]
    epochs = [json.loads(line).get("epoch") for line in (run_dir / "metrics.jsonl").open()]
    assert len(steps) == len(set(zip(steps, epochs, strict=True))), "duplicated metrics lines"


@pytest.mark.parametrize(
    ("interruption", "exit_code", "name"),
    [(KeyboardInterrupt, 130, "Ctrl-C"), (Terminated, 143, "SIGTERM")],
)
def test_an_interruption_says_in_one_line_which_checkpoint_is_kept(
    study: Study, data_dir, tmp_path, capsys, monkeypatch, interruption, exit_code, name
) -> None:
    if not study.resumable:
        pytest.skip(f"{study.name} writes no checkpoints")
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
    study: Study, data_dir, tmp_path, capsys, monkeypatch
) -> None:
    if not study.resumable:
        pytest.skip(f"{study.name} writes no checkpoints")

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
