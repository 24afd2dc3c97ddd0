"""Ctrl-C or SIGTERM while a command is still importing torch: one line, no traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

ENTRY_POINTS = {
    "train": "from mnistlab.launch import train; train()",
    "report": "from mnistlab.launch import report; report()",
    "python -m simplenet": "import runpy; runpy.run_module('simplenet', run_name='__main__')",
}


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_an_interruption_during_start_up_is_one_line(entry, signum, code, tmp_path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY_POINTS[entry], "--help"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"MNISTLAB_STUDY": "simplenet", "PATH": "/usr/bin:/bin"},
    )
    time.sleep(0.5)  # well inside `import torch`, which takes seconds
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted (")
