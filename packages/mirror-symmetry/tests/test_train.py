"""The commands end to end: train, the reproduction (table and report rows), and what the\nrefusals say (the study contract checks that they exit 2 with one line)."""

from __future__ import annotations

import json
import re

import pytest

from mirror_symmetry.reproduce import (
    MEAN_LR_FACTORS,
    PAIRED_BLOCKS,
    ReproduceConfig,
    reproduce,
    reproduce_table,
)
from mirror_symmetry.reproduce import main as reproduce_main
from mirror_symmetry.study import STUDY


def test_train_writes_summary_metrics_and_figures(tmp_path):
    STUDY.main(
        [
            "--runs",
            "48",
            "--sweeps",
            "1425",
            "--log-every",
            "100",
            "--tracker",
            "none",
            "--out-dir",
            str(tmp_path),
            "--run-name",
            "e2e",
        ]
    )
    run_dir = tmp_path / "mirror-symmetry" / "e2e"
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = summary["metrics"]
    outcomes = metrics["outcomes"]
    assert set(outcomes) == {"1.0", "0.875", "0.5", "other"}
    assert sum(o["count"] for o in outcomes.values()) == 48
    assert sum(o["fraction"] for o in outcomes.values()) == pytest.approx(1.0)
    for outcome in outcomes.values():
        low, high = outcome["ci95"]
        assert low <= outcome["fraction"] <= high
    assert outcomes["1.0"]["count"] > 0  # about a third of the paper's networks solve it
    assert metrics["sweeps_to_1.0"]["min"] <= metrics["sweeps_to_1.0"]["median"] <= 1425
    assert metrics["run_sweeps_per_s"] > 0
    assert metrics["backend"] == "kernel"  # auto, on a CPU with a C compiler
    assert summary["fingerprint"]
    assert (run_dir / "outcomes.png").stat().st_size > 0
    assert (run_dir / "weights.png").stat().st_size > 0
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged] == [*range(0, 1425, 100), 1425]
    assert all(
        sum(entry[f"fraction/{name}"] for name in outcomes) == pytest.approx(1.0)
        for entry in logged
    )


@pytest.mark.parametrize("argv", STUDY.bad_args, ids=" ".join)
def test_each_refusal_names_its_flag(argv, capsys, tmp_path):
    """The study contract checks that these exit 2 with one line; the line must name the flag."""
    with pytest.raises(SystemExit) as exit_:
        STUDY.main([*argv, "--tracker", "none", "--out-dir", str(tmp_path)])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert argv[0] in error


def test_a_size_that_cannot_fit_is_refused_with_the_estimate_and_the_limit(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        STUDY.main(["--runs", "1000000000", "--out-dir", str(tmp_path)])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert re.fullmatch(
        r"error: --runs 1000000000 x --sweeps 1425 \(backend auto\) needs about 9\d\d\.\d GiB "
        r"but [\d.]+ GiB is available; lower --runs",
        error,
    )
    with pytest.raises(SystemExit):
        STUDY.main(["--runs", "64", "--sweeps", "1000000000", "--log-every", "1"])
    assert capsys.readouterr().err.strip().endswith("raise --log-every or lower --sweeps")


def test_reproduce_writes_a_table_for_each_variant_and_reduction(tmp_path):
    reproduce_table(
        ReproduceConfig(
            runs=8,
            max_steps=30,
            variants=("paper", "silu"),
            backend="eager",
            tracker="none",
            out_dir=tmp_path,
            run_name="table",
        )
    )
    run_dir = tmp_path / "mirror-symmetry" / "table"
    table = (run_dir / "table.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| paper")]
    per_variant = 1 + len(MEAN_LR_FACTORS)  # the sum loss, the mean loss at each lr
    assert len(rows) == 2 * per_variant
    assert [row.split("|")[2].strip() for row in rows[:3]] == ["sum", "mean", "mean"]
    assert [row.split("|")[3].strip() for row in rows[:3]] == ["0.1", "0.1", "0.2"]
    assert all(row.split("|")[4].strip() == "30" for row in rows)
    results = json.loads((run_dir / "results.json").read_text())["rows"]
    assert [(r["variant"], r["loss_reduction"], r["lr_factor"]) for r in results[:3]] == [
        ("paper", "sum", 1),
        ("paper", "mean", 1),
        ("paper", "mean", 2),
    ]
    assert sum(size for _, size in results[0]["solved_blocks"]) == 8
    assert (run_dir / "solved_over_time.png").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["metrics"]) == 2 * per_variant and "silu/mean/lr-x32" in summary["metrics"]


def test_reproduce_refuses_an_unknown_variant(capsys):
    with pytest.raises(SystemExit) as exit_:
        reproduce_main(["--variants", "adam", "--tracker", "none"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: ")


def test_quick_reproduction_gives_rate_rows_per_variant_a_paired_claim_and_reuses_its_table(
    tmp_path,
):
    rows = reproduce("quick", tmp_path)
    rates = [row for row in rows if not row.claim]
    # seven variants (the report's five, the paper's setting and the uniform-init SiLU), each as
    # three rows: sum loss, mean at its lr, mean at the best lr
    assert len(rates) == 3 * 7
    for row in rows:
        row.check()
    for row in rates:
        assert row.trials == 1000 and 0 <= row.values[0] <= 100
    at_source = [row for row in rates if row.at_source_setting]
    # the report's five variants with the mean loss; the paper's and uniform-init rows are not
    assert len(at_source) == 2 * 5 and all("loss mean" in row.setting for row in at_source)
    bound = next(row for row in at_source if row.source.kind == "bound")
    assert bound.verdict.startswith("bound")  # a bound is satisfied or violated, never worse
    claims = [row for row in rows if row.claim]
    assert len(claims) == 2 and all(len(row.values) == PAIRED_BLOCKS for row in claims)
    assert (tmp_path / "solved_over_time.png").is_file() and (tmp_path / "table.md").is_file()
    assert reproduce("quick", tmp_path) == rows  # read back from results.json, not recomputed
