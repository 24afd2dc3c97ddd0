"""A run a reproduction starts in-process records the train command that reproduces it."""

import json
import shlex

from toy import ToyConfig, train_toy

from mnistlab.cli import parse_config
from mnistlab.config import to_jsonable
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
