"""`uv run report`: run every registered study's reproduction and write REPORT.md.

Each study's rows are kept in `<work-dir>/<budget>/<study>/rows.json` next to its figures and
runs; finished studies are reused and an interrupted study continues from its finished runs.
One study failing is reported in its row and the others go on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mnistlab.cli import first_line, parse_config
from mnistlab.config import require
from mnistlab.dispatch import installed_studies, load_study
from mnistlab.runtime import guarded_main
from mnistlab.study import Budget, Row, Study

ROWS = "rows.json"


@dataclass
class ReportConfig:
    """Reproduce every study against its source and write one REPORT.md."""

    budget: Budget = "quick"
    """quick: minutes per study on a 2-core CPU; full: the source's setting (a GPU where the
    source needed one)."""
    studies: str = ""
    """Comma-separated studies to run (default: every installed study)."""
    out: Path = Path("REPORT.md")
    """The report file; figures are linked relative to it."""
    work_dir: Path = Path("reports")
    """Rows, figures and runs go to WORK_DIR/<budget>/<study>/."""
    again: bool = False
    """Recompute studies whose rows already exist (their finished runs are still reused)."""

    def selected(self, installed: dict[str, str]) -> list[str]:
        names = [s.strip() for s in self.studies.split(",") if s.strip()] or sorted(installed)
        unknown = [n for n in names if n not in installed]
        require(
            not unknown,
            f"--studies: unknown {', '.join(unknown)}; installed: {', '.join(sorted(installed))}",
        )
        return names


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with_cpuinfo = Path("/proc/cpuinfo")
    if with_cpuinfo.is_file():
        for line in with_cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def reproduce_study(name: str, budget: Budget, folder: Path, again: bool) -> list[dict]:
    """The study's rows (as JSON dicts), reused when already computed; a failure (even of
    importing the study) is one row, and the report goes on."""
    rows_path = folder / ROWS
    if rows_path.is_file() and not again:
        print(f"[{name}] reusing {rows_path}", flush=True)
        return json.loads(rows_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    print(f"[{name}] reproducing at budget {budget} in {folder}", flush=True)
    started = time.perf_counter()
    try:
        study: Study = load_study(name)
        rows = study.reproduce(budget, folder)
        for row in rows:
            row.check()
        if not rows:
            raise ValueError("the reproduction returned no rows")
    except (Exception, SystemExit) as exc:
        traceback.print_exc()
        print(f"[{name}] failed: {first_line(exc)}", flush=True)
        return [{"setting": "(reproduction failed)", "error": first_line(exc)}]
    minutes = (time.perf_counter() - started) / 60
    measured = {
        "minutes": round(minutes, 2),
        "machine": machine(),
        "measured": time.strftime("%Y-%m-%d %H:%M"),
    }
    payload = [{**dataclasses.asdict(r), **measured} for r in rows]
    rows_path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"[{name}] {len(rows)} rows in {minutes:.1f} min", flush=True)
    return payload


def markdown(results: dict[str, list[dict]], config: ReportConfig) -> str:
    base = config.out.resolve().parent
    lines = [
        "# mnistlab: every study against its source",
        "",
        f"Budget `{config.budget}`, written {time.strftime('%Y-%m-%d %H:%M')} by "
        f"`uv run report --budget {config.budget}` on {machine()}; reused rows keep the machine "
        "and date they were measured on (last table). "
        "Ours: mean ± std over n seeds (or runs), the last epoch's result, model selection on a "
        "validation split only. Verdict: within the row's tolerance of the source's number, "
        "or better / worse.",
        "",
        "| study | setting | ours | source | verdict | command |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        for raw in rows:
            if "error" in raw:
                lines.append(f"| {name} | {raw['setting']} | — | — | failed: {raw['error']} | |")
                continue
            row = Row(**{f.name: raw[f.name] for f in dataclasses.fields(Row)})
            source = "—" if row.source is None else f"{row.source:g} ({row.source_ref})"
            note = f" — {row.note}" if row.note else ""
            lines.append(
                f"| {name} | {row.setting} ({row.unit}){note} | {row.ours} | {source} | "
                f"{row.verdict} | `{row.command}` |"
            )
    lines += ["", "| study | measured on | when | minutes |", "|---|---|---|---|"]
    for name, rows in results.items():
        first = rows[0]
        lines.append(
            f"| {name} | {first.get('machine', 'not recorded')} | "
            f"{first.get('measured', '—')} | {first.get('minutes', '—')} |"
        )
    lines.append("")
    for name in results:
        folder = config.work_dir / config.budget / name
        figures = sorted(
            f for f in folder.rglob("*.png") if "runs" not in f.relative_to(folder).parts
        )
        if figures:
            lines += [f"## {name}", ""]
            lines += [f"![{f.stem}]({os.path.relpath(f.resolve(), base)})" for f in figures]
            lines.append("")
    return "\n".join(lines)


def report(config: ReportConfig) -> Path:
    names = config.selected(installed_studies())
    results: dict[str, list[dict]] = {}
    for i, name in enumerate(names, 1):
        print(f"== {i}/{len(names)} {name}", flush=True)
        folder = config.work_dir / config.budget / name
        results[name] = reproduce_study(name, config.budget, folder, config.again)
    config.out.write_text(markdown(results, config))
    print(f"report written: {config.out.resolve()}", flush=True)
    return config.out


def main(argv: Sequence[str] | None = None) -> None:
    guarded_main(lambda: report(parse_config(ReportConfig, argv, __doc__ or "")))
