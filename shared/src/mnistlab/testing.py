"""The contract every study passes (lightning-hydra-template style), run by each study's own
package: its `tests/test_contract.py` is

    from mnistlab.testing import StudyContract
    from my_study.study import STUDY


    class TestContract(StudyContract):
        study = STUDY

and its tests then keep only its science. Each test runs the study's command line in this
process (`Study.main(argv)`), as a user would. The runtime's faults (Ctrl-C, SIGTERM, a full
disk, the lock, broken checkpoints) are the same code for every study: they are tested once, on
the toy studies of shared/tests.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from mnistlab.dispatch import installed_studies, load_study
from mnistlab.study import Study

# Bad values every study must refuse with one line and exit code 2.
COMMON_BAD_ARGS = (
    ("--no-such-flag",),
    ("--seed", "abc"),
    ("--seed", "-1"),
    ("--seed", "4294967296"),
    ("--max-steps", "0"),
    ("--log-every", "0"),
    ("--run-name", "a/b"),
    ("--tracker", "tensorboard"),
    ("--ddp-timeout", "0"),
)


def cpu_ddp_launch(port: int) -> list[str]:
    """`accelerate launch` of two CPU processes on one machine (what the README documents), on
    its own port so that tests running side by side do not meet; the script or `-m MODULE`
    and its flags follow."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(port),
    ]  # fmt: skip


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


def smoke(study: Study, tmp_path: Path, name: str, *extra: str) -> list[str]:
    """The study's smoke run into `tmp_path`, named `name`, without a tracker."""
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


class StudyContract:
    """What every registered study must do; subclass it with `study = STUDY`."""

    study: ClassVar[Study]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "bad_args" in metafunc.fixturenames:
            cases = [*COMMON_BAD_ARGS, *self.study.bad_args]
            metafunc.parametrize("bad_args", cases, ids=[" ".join(c) for c in cases])

    def test_the_study_is_registered_under_its_config_name(self) -> None:
        name = self.study.name
        assert name in installed_studies() and load_study(name) is self.study
        assert self.study.description and callable(self.study.reproduce)

    def test_help_lists_the_options(self, capsys) -> None:
        code, out, _ = run_cli(self.study, ["--help"], capsys)
        assert code == 0
        assert self.study.description.split()[0] in out
        for flag in ("--seed", "--out-dir", "--resume", "--max-steps"):
            assert flag in out

    def test_bad_values_exit_2_with_one_line(self, bad_args, tmp_path: Path, capsys) -> None:
        code, _, err = run_cli(self.study, [*bad_args, "--out-dir", str(tmp_path)], capsys)
        assert_one_line_refusal(code, err)
        assert not any(tmp_path.iterdir()), "a refused start must leave no run folder"

    def test_missing_data_exits_2_and_leaves_no_run_folder(self, tmp_path: Path, capsys) -> None:
        if "--data-dir" not in run_cli(self.study, ["--help"], capsys)[1]:
            pytest.skip("the study reads no dataset")
        # Below a plain file, so that no download can fill it, online or not.
        (tmp_path / "a-file").touch()
        args = [
            *self.study.smoke_args,
            "--data-dir",
            str(tmp_path / "a-file" / "data"),
            "--out-dir",
            str(tmp_path / "runs"),
            "--tracker",
            "none",
        ]
        code, out, err = run_cli(self.study, args, capsys)
        if code == 0:  # a simulation that reads no data: nothing to test
            pytest.skip("the study ran without the dataset")
        assert_one_line_refusal(code, err)
        assert "--data-dir" in err
        assert not (tmp_path / "runs").exists(), "a failed start must leave no run folder"

    def test_smoke_run_writes_config_metrics_and_summary(self, data_dir, tmp_path, capsys):
        study = self.study
        code, _, err = run_cli(study, smoke(study, tmp_path, "smoke", "--max-steps", "3"), capsys)
        assert code == 0, err
        run_dir = tmp_path / study.name / "smoke"
        config = json.loads((run_dir / "config.json").read_text())
        assert config["max_steps"] == 3
        assert (run_dir / "metrics.jsonl").read_text().strip()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["study"] == study.name and summary["fingerprint"]

    def test_resume_after_epoch_1_equals_the_uninterrupted_run(self, data_dir, tmp_path, capsys):
        study = self.study
        if not study.resumable:
            pytest.skip(f"{study.name} refuses --resume (tested among its bad values)")
        assert run_cli(study, smoke(study, tmp_path, "straight", "--epochs", "2"), capsys)[0] == 0
        assert run_cli(study, smoke(study, tmp_path, "resumed", "--epochs", "2"), capsys)[0] == 0
        run_dir = tmp_path / study.name / "resumed"
        # As a run stopped after its first epoch leaves it: no later checkpoint, no summary.
        shutil.rmtree(run_dir / "checkpoints" / "epoch-0002")
        (run_dir / "summary.json").unlink()
        code, _, err = run_cli(
            study, ["--resume", str(run_dir), "--out-dir", str(tmp_path)], capsys
        )
        assert code == 0, err
        assert_same_run(tmp_path / study.name / "straight", run_dir)

    def test_a_finished_run_is_extended_only_where_its_schedule_allows(
        self, data_dir, tmp_path, capsys
    ):
        study = self.study
        if not study.resumable:
            pytest.skip(f"{study.name} refuses --resume (tested among its bad values)")
        if "epochs" not in study.config.resumable_fields:  # its schedule follows the length
            assert_a_length_change_is_refused(study, tmp_path, capsys)
            return
        assert run_cli(study, smoke(study, tmp_path, "short", "--epochs", "1"), capsys)[0] == 0
        run_dir = tmp_path / study.name / "short"
        extend = ["--resume", str(run_dir), "--epochs", "2", "--out-dir", str(tmp_path)]
        code, _, err = run_cli(study, extend, capsys)
        assert code == 0, err
        assert run_cli(study, smoke(study, tmp_path, "straight", "--epochs", "2"), capsys)[0] == 0
        assert_same_run(tmp_path / study.name / "straight", run_dir)


def assert_same_run(straight: Path, resumed: Path) -> None:
    """A resumed (or extended) run ends where the uninterrupted one does, metrics once each."""
    expected = json.loads((straight / "summary.json").read_text())
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["fingerprint"] == expected["fingerprint"]
    assert summary["epochs"] == expected["epochs"]
    lines = [json.loads(line) for line in (resumed / "metrics.jsonl").open()]
    keys = [(line["step"], line.get("epoch")) for line in lines]
    assert len(keys) == len(set(keys)), "duplicated metrics lines"


def assert_a_length_change_is_refused(study: Study, tmp_path: Path, capsys) -> None:
    """For a study whose schedule follows --epochs: a finished 1-epoch run resumed with
    --epochs 2 is refused in one line (an extension would be neither length)."""
    assert run_cli(study, smoke(study, tmp_path, "short", "--epochs", "1"), capsys)[0] == 0
    run_dir = tmp_path / study.name / "short"
    code, _, err = run_cli(
        study, ["--resume", str(run_dir), "--epochs", "2", "--out-dir", str(tmp_path)], capsys
    )
    assert_one_line_refusal(code, err)
    assert "--epochs differ" in err
