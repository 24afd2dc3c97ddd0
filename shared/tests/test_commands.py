"""What a run's summary records of how it ran: a command that runs it again (from a
reproduction too), and the machine and threads its timings belong to."""

import json
import shlex

import pytest
import torch
from toy import ToyConfig, train_toy

from mnistlab.cli import parse_config
from mnistlab.config import launched_command, to_jsonable
from mnistlab.study import train_or_reuse


def test_an_in_process_run_records_a_train_command_that_reproduces_its_config(tmp_path):
    config = ToyConfig(
        out_dir=tmp_path / "runs",
        run_name="r",
        epochs=1,
        lr=0.05,
        checkpointed=True,
        tracker="none",
    )
    summary = train_or_reuse(train_toy, config)
    args = shlex.split(summary["command"])
    assert args[:5] == ["uv", "run", "--package", "toy", "train"]
    parsed = parse_config(ToyConfig, args[5:], "")
    assert to_jsonable(parsed) == {**to_jsonable(config), "resume": None}
    saved = json.loads((tmp_path / "runs" / "toy" / "r" / "summary.json").read_text())
    assert saved["command"] == summary["command"]


@pytest.mark.parametrize(
    "argv",
    [
        ["/home/me/mnistlab/.venv/bin/python", "/home/me/mnistlab/.venv/bin/train", "--lr", "0.5"],
        ["/usr/bin/python3", "-m", "toy", "--lr", "0.5"],
    ],
)
def test_a_typed_command_is_recorded_without_this_machines_paths(argv) -> None:
    assert launched_command(ToyConfig(), argv) == "uv run --package toy train --lr 0.5"


def test_another_way_in_is_recorded_as_it_was() -> None:
    argv = ["/usr/bin/python3", "/home/me/run_toy.py", "--lr", "0.5"]
    assert launched_command(ToyConfig(), argv) == shlex.join(argv)


def test_a_runs_summary_names_the_machine_and_threads_it_trained_on(tmp_path) -> None:
    summary = train_toy(ToyConfig(out_dir=tmp_path, run_name="r", epochs=1, tracker="none"))
    assert {"cpu", "amx", "gpu", "torch"} <= summary["machine"].keys()
    assert summary["threads"] == torch.get_num_threads()
