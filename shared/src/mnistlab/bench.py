"""`python -m mnistlab.bench SCRIPT [ARGS...]`: run a benchmark and keep its output.

Benchmarks are not report rows: each prints its own ratios against a baseline measured in the
same run. This runs one, shows its output as it comes, and writes it to
`benchmarks/results/<script name>.txt` under a header with the date, commit and machine (CPU
model and AMX: bf16 timings differ ~1.7x between CPUs with and without it), so a README can cite
the committed file instead of typing the figure.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from mnistlab.provenance import git_state, machine, machine_line

RESULTS = Path("benchmarks") / "results"


def record(script: Path, args: list[str], results: Path = RESULTS) -> Path:
    command = [sys.executable, str(script), *args]
    started = time.strftime("%Y-%m-%d %H:%M")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    if process.wait() != 0:
        raise SystemExit(f"error: {script} exited {process.returncode}; nothing recorded")
    git = git_state(script.resolve().parent)
    dirty = " (dirty tree)" if git["dirty"] else ""
    header = [
        f"# {script.name} {shlex.join(args)}".rstrip(),
        f"# date: {started}; commit: {git['commit']}{dirty}",
        f"# machine: {machine_line(machine())}",
        "",
    ]
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"{script.stem}.txt"
    out.write_text("\n".join(header) + "".join(lines))
    print(f"recorded: {out}", flush=True)
    return out


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m mnistlab.bench SCRIPT [ARGS...]")
    record(Path(sys.argv[1]), sys.argv[2:])


if __name__ == "__main__":
    main()
