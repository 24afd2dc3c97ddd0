"""`uv run report`: rows from a real study at the quick budget, reuse, and refusal of bad rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mnistlab import report as report_module
from mnistlab.config import RunConfig
from mnistlab.dispatch import installed_studies
from mnistlab.report import ReportConfig, report
from mnistlab.study import Row, Study

FAST_STUDY = "mirror-symmetry"  # its quick reproduction takes seconds


def good_row(**changes) -> Row:
    values = {
        "setting": "s",
        "values": [1.0, 2.0],
        "unit": "test error %",
        "source": 1.4,
        "source_ref": "paper table 1",
        "tolerance": 0.2,
        "higher_is_better": False,
        "command": "uv run report",
    }
    return Row(**{**values, **changes})


def test_verdicts_follow_the_tolerance_and_the_direction() -> None:
    assert good_row().verdict == "matches (±0.2)"
    assert good_row(values=[0.5, 0.7]).verdict == "better"
    assert good_row(values=[3.0]).verdict == "worse"
    assert good_row(higher_is_better=True, values=[3.0]).verdict == "better"
    assert good_row(source=None, source_ref="").verdict == "not comparable"
    assert good_row().ours == "1.50 ± 0.71 (n=2)"


@pytest.mark.parametrize(
    "changes",
    [
        {"values": []},
        {"values": [math.nan]},
        {"command": ""},
        {"source_ref": ""},
        {"tolerance": -1},
    ],
)
def test_malformed_rows_are_refused(changes: dict) -> None:
    with pytest.raises(ValueError):
        good_row(**changes).check()


def test_a_failing_study_is_reported_and_the_others_go_on(tmp_path, monkeypatch) -> None:
    def broken(budget, folder):
        return [good_row(values=[math.inf])]

    def fine(budget, folder):
        (folder / "curve.png").write_bytes(b"\x89PNG")
        return [good_row()]

    studies = {
        name: Study(type(name, (RunConfig,), {"study": name}), print, name, reproduce=reproduce)
        for name, reproduce in (("broken", broken), ("fine", fine))
    }
    monkeypatch.setattr(report_module, "installed_studies", lambda: dict.fromkeys(studies, ""))
    monkeypatch.setattr(report_module, "load_study", studies.__getitem__)
    out = tmp_path / "REPORT.md"
    report(ReportConfig(out=out, work_dir=tmp_path / "reports"))
    text = out.read_text()
    assert "| broken | (reproduction failed) | — | — | failed:" in text
    assert "| fine | s (test error %) | 1.50 ± 0.71 (n=2) | 1.4 (paper table 1) | matches" in text
    assert "![curve](reports/quick/fine/curve.png)" in text


@pytest.mark.skipif(FAST_STUDY not in installed_studies(), reason="needs mirror-symmetry")
def test_report_quick_writes_every_row_of_a_real_study_and_reuses_it(tmp_path: Path) -> None:
    config = ReportConfig(
        studies=FAST_STUDY, out=tmp_path / "REPORT.md", work_dir=tmp_path / "reports"
    )
    report(config)
    rows_file = tmp_path / "reports" / "quick" / FAST_STUDY / "rows.json"
    rows = json.loads(rows_file.read_text())
    assert len(rows) >= 2 and all("error" not in row for row in rows)
    measured = {"minutes", "machine", "measured"}
    for row in rows:
        assert measured <= row.keys()
        Row(**{k: v for k, v in row.items() if k not in measured}).check()
    table = [
        line for line in config.out.read_text().splitlines() if line.startswith(f"| {FAST_STUDY} |")
    ]
    assert len(table) == len(rows) + 1  # its rows, then where and when they were measured
    assert table[-1].startswith(f"| {FAST_STUDY} | {rows[0]['machine']} |")
    assert any("matches" in line or "better" in line or "worse" in line for line in table)
    stamp = rows_file.stat().st_mtime_ns
    report(config)  # finished rows are reused
    assert rows_file.stat().st_mtime_ns == stamp


def test_unknown_studies_are_refused_in_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        report_module.main(["--studies", "nope"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: --studies: unknown nope")
