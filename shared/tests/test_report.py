"""`uv run report`: the verdict rules, provenance and staleness, one failing study, the rows
of studies not recomputed, and README sections that are written from rows."""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mnistlab import report as report_module
from mnistlab import study as study_module
from mnistlab.dispatch import installed_studies
from mnistlab.report import ROWS, ReportConfig, load_rows, readme_sections, report
from mnistlab.rows import Row, Source

REPO = Path(__file__).resolve().parents[2]
FAST_STUDY = "mirror-symmetry"  # the quickest real reproduction at budget quick


def good_row(**changes) -> Row:
    values = {
        "setting": "s",
        "values": [1.0, 2.0, 1.5],
        "unit": "test error %",
        "source": Source(1.4, "paper table 1"),
        "at_source_setting": True,
        "tolerance": 0.2,
        "higher_is_better": False,
        "command": "uv run report",
    }
    return Row(**{**values, **changes})


# -- section 2: verdict rules ------------------------------------------------------------------
def test_overlapping_intervals_match_and_separated_ones_are_better_or_worse() -> None:
    assert good_row().verdict == "matches"
    assert good_row(values=[0.50, 0.52, 0.51]).verdict == "better"
    assert good_row(values=[3.0, 3.1, 3.05]).verdict == "worse"
    assert good_row(values=[3.0, 3.1, 3.05], higher_is_better=True).verdict == "better"
    # Far from the source, but our interval is wide enough to reach its tolerance band.
    assert good_row(values=[0.0, 2.5, 5.0]).verdict == "matches"
    assert good_row(source=None).verdict == "not comparable"


def test_a_row_away_from_the_sources_setting_never_gets_better_or_worse() -> None:
    for values in ([0.5, 0.52, 0.51], [3.0, 3.1, 3.05], [1.4, 1.41, 1.39]):
        assert good_row(values=values, at_source_setting=False).verdict == (
            "not comparable (not the source's setting)"
        )


def test_a_bound_is_satisfied_or_violated_never_worse() -> None:
    bound = Source(100 / 90, "2021 report", kind="bound", stated="< 1/90")
    zero = good_row(values=[0.0], trials=1000, source=bound, higher_is_better=True)
    assert zero.interval == (0.0, pytest.approx(0.383, abs=1e-3))
    assert zero.verdict == "bound satisfied"
    assert good_row(values=[5.0], trials=1000, source=bound).verdict == "bound violated"
    assert good_row(values=[1.0], trials=1000, source=bound).verdict == "inconclusive"


def test_a_source_number_with_its_own_sample_size_gets_a_wilson_interval() -> None:
    one_in_a_hundred = Source(1.0, "report", kind="sampled", stated="1 of ~100", trials=100)
    assert one_in_a_hundred.interval(0.0)[1] == pytest.approx(5.45, abs=0.01)
    row = good_row(values=[3.0], trials=1000, source=one_in_a_hundred, higher_is_better=True)
    assert row.verdict == "matches"  # 3% of 1,000 nets lies inside 1 of 100's wide interval
    assert good_row(values=[30.0], trials=1000, source=one_in_a_hundred).verdict == "worse"


def test_a_claim_is_a_paired_difference_with_its_interval() -> None:
    claim = {"source": None, "claim": "predsim beats global", "unit": "test error % points"}
    crossing_zero = good_row(values=[-0.2, 0.1, -0.05], **claim)
    low, high = crossing_zero.interval
    assert low < 0 < high and crossing_zero.verdict == "inconclusive"
    # Lower error is better: a negative difference supports the claim.
    assert good_row(values=[-0.20, -0.25, -0.22], **claim).verdict == "supported"
    assert good_row(values=[0.20, 0.25, 0.22], **claim).verdict == "contradicted"
    assert good_row(values=[0.3], **claim).verdict == "inconclusive (n=1)"
    elsewhere = good_row(values=[-0.20, -0.25, -0.22], at_source_setting=False, **claim)
    assert elsewhere.verdict == "direction: supports"
    assert "+0.01" in good_row(values=[0.0, 0.01, 0.02], **claim).ours


@pytest.mark.parametrize(
    "changes",
    [
        {"values": []},
        {"values": [math.nan]},
        {"command": ""},
        {"source": Source(1.0, "")},
        {"source": Source(1.0, "r", kind="sampled")},
        {"tolerance": -1},
        {"trials": 10},  # a rate over networks is one value
        {"claim": "a beats b"},  # with a source number
    ],
)
def test_malformed_rows_are_refused(changes: dict) -> None:
    with pytest.raises(ValueError):
        good_row(**changes).check()


def test_rows_survive_their_json() -> None:
    row = good_row(source=Source(1.1, "r", kind="bound", stated="< 1.1"))
    assert Row.from_json(json.loads(json.dumps(row.to_json()))) == row


# -- fake studies on disk, so their code can be fingerprinted and edited -------------------------
def write_study(root: Path, name: str, body: str) -> str:
    """A study package `<name>_pkg` under `root` whose `reproduce` runs `body`."""
    package = root / f"{name}_pkg"
    package.mkdir(parents=True)
    header = (
        "from mnistlab.config import RunConfig\n"
        "from mnistlab.rows import Row, Source\n"
        "from mnistlab.study import Study\n\n"
        f"class Config(RunConfig):\n    study = {name!r}\n\n"
        "def reproduce(budget, folder):\n"
    )
    footer = f"\nSTUDY = Study(Config, print, {name!r}, reproduce=reproduce)\n"
    body = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    (package / "__init__.py").write_text(header + body + "\n" + footer)
    return f"{name}_pkg:STUDY"


GOOD_BODY = """
    (folder / "curve.png").write_bytes(b"\\x89PNG")
    return [Row("s", [1.0, 2.0, 1.5], "test error %", False, "uv run report",
                source=Source(1.4, "paper table 1"), at_source_setting=True, tolerance=0.2)]
"""


@pytest.fixture
def fake_studies(tmp_path, monkeypatch):
    """Register fake studies: `add(name, body)`; returns the report config to run them with."""
    code = tmp_path / "code"
    code.mkdir()
    monkeypatch.syspath_prepend(str(code))
    registry: dict[str, str] = {}

    def load(name: str):
        module = registry[name].split(":")[0]
        sys.modules.pop(module, None)
        importlib.invalidate_caches()
        return importlib.import_module(module).STUDY

    monkeypatch.setattr(report_module, "installed_studies", lambda: dict(registry))
    monkeypatch.setattr(report_module, "load_study", load)

    def add(name: str, body: str = GOOD_BODY) -> Path:
        registry[name] = write_study(code, name, body)
        importlib.invalidate_caches()
        return code / f"{name}_pkg" / "__init__.py"

    add.config = lambda **kw: ReportConfig(  # type: ignore[attr-defined]
        out=tmp_path / "REPORT.md", work_dir=tmp_path / "reports", **kw
    )
    return add


def test_a_failing_study_is_one_line_and_the_others_go_on(fake_studies, capsys) -> None:
    fake_studies("broken", "raise RuntimeError('no such data\\nline two')")
    fake_studies("fine")
    config = fake_studies.config()
    with pytest.raises(SystemExit) as stop:
        report(config)
    assert stop.value.code != 0  # after writing the report
    text = config.report_path.read_text()
    assert "| broken | (reproduction failed) |" in text and "no such data" in text
    assert "| fine | s (test error %) | yes | 1.50 ± 0.50 (95% CI 0.26 to 2.74, n=3) |" in text
    assert "1.4 (paper table 1) | matches |" in text
    assert "![curve](reports/cpu/fine/curve.png)" in text
    out = capsys.readouterr().out
    assert "Traceback" not in out and "[broken] failed: RuntimeError: no such data" in out
    assert "Traceback" in (config.work_dir / "cpu" / "broken" / "failure.log").read_text()


def test_an_interrupted_report_says_that_its_finished_runs_are_kept(fake_studies, capsys):
    fake_studies("stopped", "raise KeyboardInterrupt")
    config = fake_studies.config()
    with pytest.raises(SystemExit) as stop:
        report_module.main(["--out", str(config.out), "--work-dir", str(config.work_dir)])
    assert stop.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("interrupted (Ctrl-C): the report was not written; the runs that")
    assert err.endswith("and the same command continues from them") and "\n" not in err
    assert not config.report_path.exists()


def test_every_row_records_what_produced_it(fake_studies) -> None:
    fake_studies("fine")
    config = fake_studies.config()
    report(config)
    (row,) = json.loads((config.work_dir / "cpu" / "fine" / ROWS).read_text())
    record = row["provenance"]
    assert {"code", "commit", "dirty", "machine", "date", "minutes"} <= record.keys()
    assert {"cpu", "amx", "gpu", "torch"} <= record["machine"].keys()
    assert len(record["code"]) == 16
    assert "1 rows fresh, 0 stale" in config.report_path.read_text()


RUNS_BODY = """
    import json
    cpu = {"cpu": "CPU X", "cores": 2, "amx": True, "gpu": None, "torch": "2.9"}
    for name, summary in (
        ("a-s0", {"wall_time_s": 90.0}),  # from before runs named their machine
        ("a-s1", {"wall_time_s": 150.0, "machine": cpu, "threads": 1}),
    ):
        run = folder / "runs" / "fine" / name
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps(summary))
    (folder / "runs" / "fine" / "killed").mkdir()  # no summary: not a finished run
    return [Row("s", [1.0, 2.0, 1.5], "test error %", False, "uv run report")]
"""


def test_provenance_shows_the_training_time_and_machines_of_the_runs_it_used(fake_studies):
    fake_studies("fine", RUNS_BODY)
    config = fake_studies.config()
    report(config)
    (line,) = [x for x in config.report_path.read_text().splitlines() if x.startswith("| fine |")][
        -1:
    ]
    # (90 + 150) s, though the report itself took ~0 min; one run names its machine
    assert line.endswith("| 4.0 (2 runs; CPU X, 2 cores, AMX, no GPU, torch 2.9, 1 threads ×1) |")


REUSE_BODY = """
    import json
    run = folder / "runs" / "fine" / "a-s0"
    if not (run / "summary.json").is_file():  # trained once, reused after
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"wall_time_s": 60.0}))
    return [Row("s", [1.0, 2.0, 1.5], "test error %", False, "uv run report")]
"""


def test_rows_recomputed_from_reused_runs_keep_where_the_runs_were_measured(fake_studies):
    fake_studies("fine", REUSE_BODY)
    config = fake_studies.config()
    report(config)
    rows_file = config.work_dir / "cpu" / "fine" / ROWS
    raw = json.loads(rows_file.read_text())
    record = raw[0]["provenance"]
    assert record["trained"] == {k: record[k] for k in ("machine", "date", "minutes")}
    cpu = {"cpu": "CPU Y", "cores": 2, "amx": False, "gpu": None, "torch": "2.9"}
    elsewhere = {"machine": cpu, "date": "2026-01-01 00:00", "minutes": 42.0}
    for row in raw:  # as if another machine had trained the runs
        row["provenance"]["trained"] = elsewhere
    rows_file.write_text(json.dumps(raw))
    report(fake_studies.config(again=True))  # recomputes the rows, trains nothing
    assert json.loads(rows_file.read_text())[0]["provenance"]["trained"] == elsewhere
    line = [x for x in config.report_path.read_text().splitlines() if x.startswith("| fine |")][-1]
    assert "| CPU Y, 2 cores, no AMX, no GPU, torch 2.9 | 2026-01-01 00:00 | 42.0 |" in line


def test_a_row_whose_code_changed_turns_stale_until_recomputed(fake_studies) -> None:
    source = fake_studies("fine")
    config = fake_studies.config()
    report(config)
    rows_file = config.work_dir / "cpu" / "fine" / ROWS
    stamp = rows_file.stat().st_mtime_ns
    report(config)  # same code: reused, fresh
    assert rows_file.stat().st_mtime_ns == stamp
    assert (
        "stale" not in config.report_path.read_text().split("## Provenance")[0].split("|---|")[-1]
    )
    source.write_text(source.read_text() + "\n# an edit\n")
    report(config)  # reused, but marked
    text = config.report_path.read_text()
    assert rows_file.stat().st_mtime_ns == stamp
    assert "0 rows fresh, 1 stale" in text and "matches; stale: measured on" in text
    report(fake_studies.config(again=True))
    assert "1 rows fresh, 0 stale" in config.report_path.read_text()


def test_recomputing_one_study_keeps_the_others_rows(fake_studies) -> None:
    fake_studies("one")
    fake_studies("two")
    report(fake_studies.config())
    report(fake_studies.config(studies="two", again=True))
    text = fake_studies.config().report_path.read_text()
    assert "| one | s (test error %)" in text and "| two | s (test error %)" in text


def test_a_one_study_report_keeps_the_line_of_every_study_not_measured_yet(fake_studies) -> None:
    fake_studies("one")
    fake_studies("later")
    report(fake_studies.config(studies="one"))
    text = fake_studies.config().report_path.read_text()
    assert "| one | s (test error %)" in text
    assert "| later | (not measured at this budget yet) |" in text


def test_unreadable_rows_are_that_studys_failure(fake_studies) -> None:
    fake_studies("one")
    fake_studies("two")
    config = fake_studies.config()
    report(config)
    rows_file = config.work_dir / "cpu" / "one" / ROWS
    rows_file.write_text(rows_file.read_text()[:50])  # truncated
    with pytest.raises(SystemExit):
        report(config)
    text = config.report_path.read_text()
    assert "| one | (reproduction failed) |" in text and "is unreadable" in text
    assert "| two | s (test error %)" in text


@pytest.mark.parametrize("studies", [",", " , "])
def test_an_empty_study_list_is_refused(studies, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        report_module.main(["--studies", studies])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: --studies")


def test_unknown_studies_are_refused_in_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        report_module.main(["--studies", "nope"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: --studies: unknown nope")


@pytest.mark.parametrize("flag", ["--out", "--work-dir"])
def test_an_unwritable_output_is_refused_before_any_training(
    fake_studies, tmp_path, flag, capsys
) -> None:
    fake_studies("fine", "raise AssertionError('must not run')")
    plain_file = tmp_path / "a-file"
    plain_file.write_text("")
    paths = {"--out": str(tmp_path / "REPORT.md"), "--work-dir": str(tmp_path / "reports")}
    paths[flag] = str(plain_file / "below")  # nothing can be created below a plain file
    with pytest.raises(SystemExit) as stop:
        report_module.main([arg for pair in paths.items() for arg in pair])
    assert stop.value.code == 2
    assert "cannot be written" in capsys.readouterr().err
    assert not (tmp_path / "reports" / "cpu").exists()


def test_a_dry_run_builds_every_setting_and_writes_nothing(fake_studies) -> None:
    fake_studies("fine")
    config = fake_studies.config(dry_run=True)
    report(config)
    assert not config.report_path.exists() and not config.work_dir.exists()


# -- sections 4 and 5: evidence in the repository, one source for every number -----------------
def committed_results(budget: str) -> list:
    folder = REPO / "reports" / budget
    installed = installed_studies()
    results = []
    for name in sorted({p.parent.name for p in folder.glob(f"*/{ROWS}")} | set(installed)):
        fingerprint = None
        if name in installed:
            fingerprint = report_module.study_fingerprint(installed[name].split(":")[0])
        rows = folder / name / ROWS
        results.append(
            load_rows(name, rows, fingerprint)
            if rows.is_file()
            else report_module.StudyRows(name, error="no rows")
        )
    return results


def test_readme_numbers_are_the_committed_rows() -> None:
    """Every README section between report markers is what `uv run report` writes from the
    committed cpu rows: a number typed by hand, or a stale render, fails here."""
    results = committed_results("cpu")
    for readme, text in readme_sections(results, REPO, "cpu").items():
        assert readme.read_text() == text, f"{readme} differs from its rows: run `uv run report`"


def test_every_study_readme_has_a_report_section() -> None:
    for readme in sorted(REPO.glob("packages/*/README.md")):
        assert "<!-- report:cpu -->" in readme.read_text(), readme
    assert "<!-- report:headlines -->" in (REPO / "README.md").read_text()


REPORTS_LIMIT_MB = 20


def committed_report_files() -> list[Path]:
    """The files under reports/ that git tracks (a running budget's checkpoints sit beside them
    in a working tree, ignored); every file there when this is no git checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "reports"], cwd=REPO, capture_output=True, check=True
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return [p for p in (REPO / "reports").rglob("*") if p.is_file()]
    return [REPO / name for name in listed.split("\0") if name and (REPO / name).is_file()]


COMMITTED_CPU = sorted(p.parent.name for p in (REPO / "reports" / "cpu").glob(f"*/{ROWS}"))


@pytest.mark.parametrize("study", COMMITTED_CPU)
def test_the_committed_runs_rebuild_the_committed_rows(study, tmp_path, monkeypatch) -> None:
    """The next session, or a reader, has the committed files only: a study's reproduction run
    on a copy of them must give its committed rows again without training anything."""
    if study not in installed_studies():
        pytest.skip(f"{study} is not installed")
    committed = REPO / "reports" / "cpu" / study
    for path in committed_report_files():
        if path.is_relative_to(committed):
            copy = tmp_path / path.relative_to(committed)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(path.read_bytes())

    def not_committed(config) -> None:
        raise AssertionError(f"run {config.run_name} is not committed: the rows would train it")

    reproduction = report_module.load_study(study).reproduce  # imports the study's modules
    real = study_module.train_or_reuse
    module = installed_studies()[study].split(":")[0].split(".")[0]
    for name, loaded in list(sys.modules.items()):  # every module of the study that reuses runs
        if name.split(".")[0] == module and hasattr(loaded, "train_or_reuse"):
            monkeypatch.setattr(loaded, "train_or_reuse", lambda _, c: real(not_committed, c))
    monkeypatch.chdir(tmp_path)  # nothing may be read through the repository's own reports/
    rows = reproduction("cpu", tmp_path)
    expected = [Row.from_json(raw) for raw in json.loads((committed / ROWS).read_text())]
    assert [row.to_json() for row in rows] == [row.to_json() for row in expected]


def test_committed_evidence_stays_small_and_holds_no_weights() -> None:
    files = committed_report_files()
    assert files  # the committed cpu runs and rows
    assert sum(p.stat().st_size for p in files) < REPORTS_LIMIT_MB * 2**20
    heavy = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".pkl")]
    assert not heavy, heavy


# Slow: ~40 s on the AMD EPYC, 140 s on a Xeon without AMX; the report's logic is tested on
# fake studies above, and mirror-symmetry's own suite runs its quick reproduction.
@pytest.mark.slow
@pytest.mark.skipif(FAST_STUDY not in installed_studies(), reason="needs mirror-symmetry")
def test_report_quick_writes_every_row_of_a_real_study(tmp_path: Path) -> None:
    config = ReportConfig(
        budget="quick",
        studies=FAST_STUDY,
        out=tmp_path / "REPORT.md",
        work_dir=tmp_path / "reports",
    )
    report(config)
    result = load_rows(
        FAST_STUDY,
        tmp_path / "reports" / "quick" / FAST_STUDY / ROWS,
        report_module.study_fingerprint("mirror_symmetry"),
    )
    assert len(result.rows) >= 2 and not result.error and not result.stale
    table = [line for line in config.report_path.read_text().splitlines() if line.startswith("| ")]
    assert sum(line.startswith(f"| {FAST_STUDY} |") for line in table) == len(result.rows) + 1


def test_a_benchmarks_output_is_kept_with_its_machine(tmp_path) -> None:
    from mnistlab.bench import record

    script = tmp_path / "bench_toy.py"
    script.write_text("print('ours 2.0x the baseline')\n")
    text = record(script, ["--quick"], tmp_path / "results").read_text()
    assert text.startswith("# bench_toy.py --quick\n# date: ")
    assert "# machine: " in text and "AMX" in text and text.endswith("ours 2.0x the baseline\n")


@pytest.mark.slow
@pytest.mark.parametrize("budget", ["cpu", "full"])
@pytest.mark.parametrize("study", sorted(installed_studies()))
def test_every_setting_of_a_budget_builds_and_trains_here(study, budget) -> None:
    """So that the day a GPU is lent, the full budget does not fail at a typo."""
    report(ReportConfig(budget=budget, studies=study, dry_run=True))
