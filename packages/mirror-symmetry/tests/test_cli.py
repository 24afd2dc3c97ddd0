"""The commands end to end: train, reproduce, and their one-line refusals of bad options."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mirror_symmetry import cli, reproduce


def test_train_writes_summary_metrics_and_figures(tmp_path):
    cli.main(
        [
            "--runs", "48",
            "--sweeps", "1425",
            "--log-every", "100",
            "--tracker", "none",
            "--out-dir", str(tmp_path),
            "--run-name", "e2e",
        ]
    )  # fmt: skip
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


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--lr", "-1"], "--lr"),
        (["--momentum", "1.5"], "--momentum"),
        (["--runs", "0"], "--runs"),
        (["--symmetric-weight", "0"], "--symmetric-weight"),
        (["--activation", "swish"], "--activation"),
        (["--resume", "latest"], "--resume"),
        (["--mixed-precision", "bf16"], "--mixed-precision"),
        (["--backend", "kernel", "--dtype", "float64"], "--backend"),
        (["--backend", "fast"], "--backend"),
    ],
)
def test_bad_options_exit_2_with_one_line(argv, flag, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--tracker", "none", "--out-dir", str(tmp_path)])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error
    assert flag in error
    assert not (tmp_path / "mirror-symmetry").exists()


def test_python_dash_m_refuses_a_bad_option_with_exit_code_2():
    result = subprocess.run(
        [sys.executable, "-m", "mirror_symmetry", "--init-range", "-0.3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--init-range" in result.stderr


def test_reproduce_writes_a_table_for_each_variant_and_reduction(tmp_path):
    reproduce.main(
        [
            "--runs", "8",
            "--max-steps", "30",
            "--variants", "paper", "silu",
            "--backend", "eager",
            "--tracker", "none",
            "--out-dir", str(tmp_path),
            "--run-name", "table",
        ]
    )  # fmt: skip
    run_dir = tmp_path / "mirror-symmetry" / "table"
    table = (run_dir / "table.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| paper") or line.startswith("| plain")]
    assert len(rows) == 4
    assert [row.split("|")[2].strip() for row in rows] == ["sum", "mean", "sum", "mean"]
    assert all(row.split("|")[3].strip() == "30" for row in rows)
    results = json.loads((run_dir / "results.json").read_text())["rows"]
    assert [(r["variant"], r["loss_reduction"]) for r in results] == [
        ("paper", "sum"),
        ("paper", "mean"),
        ("silu", "sum"),
        ("silu", "mean"),
    ]
    assert (run_dir / "solved_over_time.png").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["metrics"]) == {"paper/sum", "paper/mean", "silu/sum", "silu/mean"}


def test_reproduce_refuses_an_unknown_variant(capsys):
    with pytest.raises(SystemExit) as exit_:
        reproduce.main(["--variants", "adam", "--tracker", "none"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: ")
