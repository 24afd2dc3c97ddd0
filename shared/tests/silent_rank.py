"""Run under `accelerate launch --num_processes 2`: rank 1 goes silent, rank 0 must give up
after --ddp-timeout with one line instead of waiting forever (test_runtime.py)."""

import time
from dataclasses import dataclass
from typing import ClassVar

from mnistlab.cli import parse_config
from mnistlab.config import RunConfig
from mnistlab.entry import guarded_main
from mnistlab.run import Run


@dataclass
class SilentConfig(RunConfig):
    study: ClassVar[str] = "silent"


def main(config: SilentConfig) -> None:
    with Run(config) as run:
        run.prepare()
        if run.rank == 1:
            time.sleep(300)
        run.accelerator.wait_for_everyone()


if __name__ == "__main__":
    guarded_main(lambda: main(parse_config(SilentConfig, None, "")))
