"""`uv run report`: run every registered study's reproduction and write its report.

Each study's rows are kept in `<work-dir>/<budget>/<study>/rows.json` next to its figures and
runs, every row with its provenance (code fingerprint, commit, machine, date, minutes). A row is
reused while its code fingerprint equals today's; a row whose code changed is shown "stale"
until `--again` recomputes it (its finished runs are still reused). One study failing is one
line and one "failed" row; the others go on, and the report exits 1 at the end.

The `cpu` report is REPORT.md at the root; at that budget the study READMEs' results sections
and the root README's headline table (between `<!-- report:... -->` markers) are written from
the same rows, so no number is typed twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistlab.cli import UsageError, first_line, parse_config
from mnistlab.config import require
from mnistlab.dispatch import installed_studies, load_study
from mnistlab.entry import Abandoned, guarded_main
from mnistlab.provenance import machine_line, provenance, study_fingerprint
from mnistlab.rows import Budget, Row
from mnistlab.run_folder import SUMMARY
from mnistlab.study import Study, dry_run

ROWS = "rows.json"
FAILURE_LOG = "failure.log"
HEADLINES = "headlines"
END_MARKER = "<!-- /report -->"


@dataclass
class ReportConfig:
    """Reproduce every study against its source and write its report."""

    budget: Budget = "cpu"
    """quick: minutes per study on a 2-core CPU (the CI-sized run of the same code); cpu: the
    smallest setting that answers each source's question, at most 90 minutes per study on 2
    cores; full: the source's setting (a GPU where the source needed one)."""
    studies: str = ""
    """Comma-separated studies to (re)compute (default: every installed study). Every study
    that has rows at this budget is rendered either way."""
    out: Path | None = None
    """The report file (default: REPORT.md for cpu, WORK_DIR/<budget>/REPORT.md otherwise)."""
    work_dir: Path = Path("reports")
    """Rows, figures and runs go to WORK_DIR/<budget>/<study>/."""
    again: bool = False
    """Recompute the selected studies' rows, fresh or stale (finished runs are still reused)."""
    render: bool = False
    """Only re-render the report and the READMEs from the rows already there; compute nothing."""
    dry_run: bool = False
    """Build every setting of the budget and train each for a couple of steps, in a temporary
    folder, on whatever device is present; writes no rows and no report."""

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = (
                Path("REPORT.md")
                if self.budget == "cpu"
                else self.work_dir / self.budget / "REPORT.md"
            )

    @property
    def report_path(self) -> Path:
        assert self.out is not None
        return self.out

    def selected(self, installed: dict[str, str]) -> list[str]:
        if not self.studies:
            return sorted(installed)
        names = [s.strip() for s in self.studies.split(",") if s.strip()]
        require(
            bool(names),
            f"--studies {self.studies!r} names no study; give a comma-separated "
            "list, or leave it out for every study",
        )
        unknown = [n for n in names if n not in installed]
        require(
            not unknown,
            f"--studies: unknown {', '.join(unknown)}; installed: {', '.join(sorted(installed))}",
        )
        return names


@dataclass
class StudyRows:
    """What the report shows for one study."""

    name: str
    rows: list[Row] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    stale: bool = False

    @property
    def measured(self) -> dict[str, Any]:
        """Where, when and how long its runs were measured (rows from before the training
        record was kept: the report that wrote them)."""
        return self.provenance.get("trained") or self.provenance


def study_module(installed: dict[str, str], name: str) -> str:
    return installed[name].split(":", 1)[0]


def load_rows(name: str, rows_path: Path, fingerprint: str | None) -> StudyRows:
    """A study's committed rows; unreadable rows are that study's failure, not the report's."""
    try:
        raw = json.loads(rows_path.read_text())
        rows = [Row.from_json(entry) for entry in raw]
        for row in rows:
            row.check()
        record = raw[0]["provenance"]
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        return StudyRows(
            name,
            error=f"{rows_path} is unreadable ({first_line(exc, 100)}); "
            f"recompute it with --again --studies {name}",
        )
    stale = fingerprint is None or record.get("code") != fingerprint
    return StudyRows(name, rows, record, stale=stale)


def reproduce_study(name: str, module: str, budget: Budget, folder: Path) -> StudyRows:
    """Run the study's reproduction; a failure (even of importing the study) is one line, its
    traceback goes to failure.log, and the report goes on."""
    print(f"[{name}] reproducing at budget {budget} in {folder}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAILURE_LOG).unlink(missing_ok=True)
    earlier = previous_training(folder)
    started_at = time.time()
    started = time.perf_counter()
    try:
        study: Study = load_study(name)
        rows = study.reproduce(budget, folder)
        if not rows:
            raise ValueError("the reproduction returned no rows")
        for row in rows:
            row.check()
    except (Exception, SystemExit) as exc:
        (folder / FAILURE_LOG).write_text(traceback.format_exc())
        error = f"{type(exc).__name__}: {first_line(exc)} (traceback: {folder / FAILURE_LOG})"
        print(f"[{name}] failed: {error}", flush=True)
        return StudyRows(name, error=error)
    record = provenance(module, (time.perf_counter() - started) / 60)
    trained_now = any(p.stat().st_mtime >= started_at for p in folder.glob(f"runs/**/{SUMMARY}"))
    record["trained"] = earlier if earlier and not trained_now else training_record(record)
    payload = [{**row.to_json(), "provenance": record} for row in rows]
    (folder / ROWS).write_text(json.dumps(payload, indent=1) + "\n")
    print(f"[{name}] {len(rows)} rows in {record['minutes']:.1f} min", flush=True)
    return StudyRows(name, rows, record)


def training_record(record: dict[str, Any]) -> dict[str, Any]:
    """Where and when a report that trained (some of) its runs measured them."""
    return {key: record.get(key) for key in ("machine", "date", "minutes")}


def previous_training(folder: Path) -> dict[str, Any] | None:
    """The training record of a study's earlier rows: a reproduction that only reuses finished
    runs recomputes the rows with today's code, but the runs were measured there and then."""
    try:
        record = json.loads((folder / ROWS).read_text())[0]["provenance"]
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return None
    return record.get("trained") or training_record(record)


def dry_run_study(name: str, budget: Budget) -> StudyRows:
    """Every setting of `budget` built and trained for a couple of steps in a temporary folder."""
    print(f"[{name}] dry run of budget {budget}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"dry-run-{name}-") as tmp, dry_run():
        try:
            rows = load_study(name).reproduce(budget, Path(tmp))
            for row in rows:
                row.check()
        except (Exception, SystemExit) as exc:
            traceback.print_exc()
            print(f"[{name}] dry run failed: {first_line(exc)}", flush=True)
            return StudyRows(name, error=first_line(exc))
    print(f"[{name}] dry run: {len(rows)} rows built", flush=True)
    return StudyRows(name, rows)


def check_writable(config: ReportConfig) -> None:
    """Refuse unwritable outputs before minutes of training, not after: a file is created and
    removed where each will be written (a permission check alone passes for root)."""
    for path, folder in (
        (config.report_path, config.report_path.parent),
        (config.work_dir, config.work_dir),
    ):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise UsageError(
                f"{path} cannot be written ({exc.strerror or exc}); choose a writable "
                "--out / --work-dir"
            ) from exc


def provenance_cell(result: StudyRows) -> str:
    record = result.provenance
    commit = (record.get("commit") or "unrecorded")[:10]
    dirty = " (dirty tree)" if record.get("dirty") else ""
    return f"{commit}{dirty}, code {record.get('code') or 'unrecorded'}"


def verdict_cell(row: Row, result: StudyRows) -> str:
    if not result.stale:
        return row.verdict
    commit = result.provenance.get("commit")
    return f"{row.verdict}; stale: measured on {commit[:10] if commit else 'an unrecorded commit'}"


def row_cells(row: Row, result: StudyRows) -> list[str]:
    """setting, source's setting, ours, source, verdict: REPORT.md's and the READMEs' cells."""
    setting = f"{row.setting} ({row.unit})"
    if row.claim:
        setting = f"claim: {row.claim}, {setting}"
    note = f" — {row.note}" if row.note else ""
    if row.claim:
        source = row.claim_ref or "—"
    else:
        source = "—" if row.source is None else row.source.shown()
    at_source = "yes" if row.at_source_setting else "no"
    return [f"{setting}{note}", at_source, row.ours, source, verdict_cell(row, result)]


def training_minutes(folder: Path) -> tuple[int, float, Counter[str]]:
    """The finished runs under a study's reproduction folder, their wall minutes summed (what
    training its rows cost, which a report that reused the runs did not spend itself) and the
    machines that trained them, where their summaries name one."""
    seconds, machines = [], Counter[str]()
    for path in sorted(folder.glob(f"runs/**/{SUMMARY}")):
        try:
            summary = json.loads(path.read_text())
            seconds.append(float(summary["wall_time_s"]))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # an unreadable summary is not counted; the rows say what they used
        if isinstance(summary.get("machine"), dict):
            threads = summary.get("threads")
            machines[machine_line(summary["machine"]) + f", {threads} threads"] += 1
    return len(seconds), sum(seconds) / 60, machines


def run_count(runs: int) -> str:
    return f"{runs} run{'s' if runs > 1 else ''}"


def training_cell(folder: Path) -> str:
    runs, minutes, machines = training_minutes(folder)
    if not runs:
        return "—"
    trained_on = "".join(f"; {line} ×{count}" for line, count in machines.items())
    return f"{minutes:.1f} ({run_count(runs)}{trained_on})"


def row_line(name: str, row: Row, result: StudyRows) -> str:
    return f"| {name} | {' | '.join(row_cells(row, result))} | `{row.command}` |"


def markdown(results: list[StudyRows], config: ReportConfig) -> str:
    base = config.report_path.resolve().parent
    measured = [r for r in results if r.rows]
    fresh = sum(len(r.rows) for r in measured if not r.stale)
    stale = sum(len(r.rows) for r in measured if r.stale)
    lines = [
        f"# mnistlab: every study against its source (budget `{config.budget}`)",
        "",
        f"Written by `uv run report --budget {config.budget}`: {fresh} rows fresh, {stale} stale "
        f"(their code changed since they were measured; `--again` recomputes them), "
        f"{sum(bool(r.error) for r in results)} studies failed.",
        "",
        "Ours: the last epoch's result (model selection on a validation split only, test "
        "evaluated once), mean ± std with a 95% t-interval over seeds, or a Wilson interval for "
        "a rate over networks. Verdicts: only a row at the source's setting can match (95% "
        "intervals overlap; the source's is its value ± the row's tolerance where unknown), be "
        "better or worse (separated), or satisfy / violate a bound; other rows are not "
        "comparable. A claim row holds the paired difference over the same seeds: supported / "
        "contradicted / inconclusive, or direction: supports / contradicts away from the "
        "source's setting.",
        "",
        "| study | setting | source's setting | ours | source | verdict | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if result.error:
            lines.append(
                f"| {result.name} | (reproduction failed) | — | — | — | failed: {result.error} | |"
            )
        elif not result.rows:
            command = f"uv run report --budget {config.budget} --studies {result.name}"
            lines.append(
                f"| {result.name} | (not measured at this budget yet) | — | — | — | — "
                f"| `{command}` |"
            )
        lines += [row_line(result.name, row, result) for row in result.rows]
    lines += [
        "",
        "## Provenance",
        "",
        "Commit and code: what computed the rows. Machine, measured and report minutes: the "
        "report that trained the runs (a report that only reuses finished runs keeps them). "
        "Training minutes: the committed runs' wall times summed (runs trained side by side "
        "overlap), with the machines of the runs whose summaries name theirs (those trained "
        "since 2026-12-07); a study's README says where older runs were trained elsewhere.",
        "",
        "| study | commit, code fingerprint | machine | measured | report minutes | "
        "training minutes |",
        "|---|---|---|---|---|---|",
    ]
    for result in measured:
        trained = result.measured
        folder = config.work_dir / config.budget / result.name
        lines.append(
            f"| {result.name} | {provenance_cell(result)} | "
            f"{machine_line(trained.get('machine') or {})} | {trained.get('date', '—')} | "
            f"{trained.get('minutes', '—')} | {training_cell(folder)} |"
        )
    lines.append("")
    for result in measured:
        folder = config.work_dir / config.budget / result.name
        figures = sorted(
            f for f in folder.rglob("*.png") if "runs" not in f.relative_to(folder).parts
        )
        if figures:
            lines += [f"## {result.name}", ""]
            lines += [f"![{f.stem}]({os.path.relpath(f.resolve(), base)})" for f in figures]
            lines.append("")
    return "\n".join(lines)


# -- README sections -------------------------------------------------------------------------
def study_section(result: StudyRows, budget: Budget, folder: Path) -> str:
    """A study README's results table, from its rows (`folder`: its reproduction's)."""
    command = f"uv run report --budget {budget} --studies {result.name}"
    if result.error or not result.rows:
        return f"No `{budget}` rows are committed yet; `{command}` measures them."
    runs, minutes, _ = training_minutes(folder)
    trained = f", its {run_count(runs)} {minutes:.1f} min of training in all" if runs else ""
    measured = result.measured
    lines = [
        f"Budget `{budget}`, written by `uv run report` from "
        f"`reports/{budget}/{result.name}/rows.json` (measured {measured.get('date')} on "
        f"{machine_line(measured.get('machine') or {})}, "
        f"the report {measured.get('minutes')} min{trained}; {provenance_cell(result)}"
        f"{'; STALE: the code changed since' if result.stale else ''}).",
        "",
        "| setting | source's setting | ours | source | verdict |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row_cells(row, result))} |" for row in result.rows]
    return "\n".join(lines)


def headline(result: StudyRows) -> str:
    if result.error or not result.rows:
        return "no `cpu` rows yet"
    row = next((r for r in result.rows if r.claim), result.rows[0])
    what = f"{row.claim}: " if row.claim else f"{row.setting}: "
    return f"{what}{row.ours} {row.unit}, {verdict_cell(row, result)}"


def headline_section(results: list[StudyRows]) -> str:
    lines = ["| study | train | headline (`cpu` budget, from REPORT.md) |", "|---|---|---|"]
    for result in results:
        package = f"[`{result.name}`](packages/{result.name})"
        lines.append(f"| {package} | `uv run --package {result.name} train` | {headline(result)} |")
    return "\n".join(lines)


def replace_section(text: str, key: str, content: str) -> str:
    start = f"<!-- report:{key} -->"
    if start not in text:
        return text
    before, rest = text.split(start, 1)
    _, after = rest.split(END_MARKER, 1)
    return f"{before}{start}\n{content}\n{END_MARKER}{after}"


def readme_sections(results: list[StudyRows], root: Path, budget: Budget) -> dict[Path, str]:
    """Each README under `root` (a checkout) with its report sections rewritten from rows."""
    updated = {}
    root_readme = root / "README.md"
    if root_readme.is_file():
        updated[root_readme] = replace_section(
            root_readme.read_text(), HEADLINES, headline_section(results)
        )
    for result in results:
        readme = root / "packages" / result.name / "README.md"
        if readme.is_file():
            updated[readme] = replace_section(
                readme.read_text(),
                budget,
                study_section(result, budget, root / "reports" / budget / result.name),
            )
    return updated


# -- the command -----------------------------------------------------------------------------
def collect(config: ReportConfig, installed: dict[str, str], names: list[str]) -> list[StudyRows]:
    """The selected studies computed or reused, every other study that has rows, and a line
    for each installed study that has none yet."""
    budget_dir = config.work_dir / config.budget
    with_rows = {p.parent.name for p in budget_dir.glob(f"*/{ROWS}")}
    results = []
    for name in sorted(set(installed) | with_rows):
        folder = budget_dir / name
        module = study_module(installed, name) if name in installed else None
        fingerprint = study_fingerprint(module) if module else None
        has_rows = (folder / ROWS).is_file()
        if name in names and module and not config.render and (config.again or not has_rows):
            print(f"== {name}", flush=True)
            results.append(reproduce_study(name, module, config.budget, folder))
        elif not has_rows:
            results.append(StudyRows(name))  # not measured at this budget yet
        else:
            result = load_rows(name, folder / ROWS, fingerprint)
            state = "stale" if result.stale else "fresh"
            print(
                f"[{name}] {result.error or f'reusing {len(result.rows)} {state} rows'}", flush=True
            )
            results.append(result)
    return results


def report(config: ReportConfig) -> Path:
    installed = installed_studies()
    names = config.selected(installed)
    if config.dry_run:
        failed = [r.name for r in (dry_run_study(n, config.budget) for n in names) if r.error]
        if failed:
            raise SystemExit(f"dry run failed for {', '.join(failed)}")
        print(f"dry run of budget {config.budget}: every setting builds and trains", flush=True)
        return config.report_path
    check_writable(config)
    try:
        results = collect(config, installed, names)
    except KeyboardInterrupt as interrupt:  # what it keeps: the same command goes on from it
        kept = (
            f"the report was not written; the runs that finished, and an unfinished run's last "
            f"checkpoint, are kept under {config.work_dir / config.budget}, and the same "
            "command continues from them"
        )
        Abandoned(kept, 0, 1, 0).attach_to(interrupt)
        raise
    config.report_path.parent.mkdir(parents=True, exist_ok=True)
    config.report_path.write_text(markdown(results, config))
    if config.budget == "cpu":
        for readme, text in readme_sections(results, config.report_path.parent, "cpu").items():
            if readme.read_text() != text:
                readme.write_text(text)
                print(f"updated {readme}", flush=True)
    print(f"report written: {config.report_path.resolve()}", flush=True)
    failed = [r.name for r in results if r.error]
    if failed:
        raise SystemExit(
            f"error: {', '.join(failed)} failed; see their rows in {config.report_path}"
        )
    return config.report_path


def main(argv: Sequence[str] | None = None) -> None:
    guarded_main(lambda: report(parse_config(ReportConfig, argv, __doc__ or "")))
