from __future__ import annotations

import json
from pathlib import Path

import pytest

from kakuritsu.config import KakuritsuConfig
from kakuritsu.model import HEAD_EVAL_MODES
from kakuritsu.reproduce import CompareConfig, budget_config, compare, comparison_rows


def test_compare_writes_a_mean_std_table_and_a_plot(data_dir: Path, tmp_path: Path) -> None:
    train = KakuritsuConfig(
        model="small",
        epochs=1,
        train_samples=512,
        mc_samples=2,  # the default 16 costs a K head ~20 s on the test split
        tracker="none",
        data_dir=data_dir,
    )
    config = CompareConfig(
        heads=("K", "W"), seeds=(0, 1), datasets=("mnist",), out_dir=tmp_path, train=train
    )
    results = compare(config)
    folder = tmp_path / "kakuritsu-compare" / "default"
    table = (folder / "table.md").read_text()
    assert "| mnist | K |" in table and "| mnist | W |" in table and " ± " in table
    assert (folder / "compare.png").read_bytes()[:4] == b"\x89PNG"
    k_runs = results["mnist"]["K"]["deterministic"]
    assert len(k_runs) == 2 and k_runs[0] != k_runs[1]  # two seeds, two different runs
    saved = json.loads((folder / "results.json").read_text())
    assert set(saved["mnist"]["K"]) == set(HEAD_EVAL_MODES["K"])
    assert set(saved["mnist"]["W"]) == set(HEAD_EVAL_MODES["W"])  # and W with dropout
    w = saved["mnist"]["W"]
    assert w["sampled"] == w["mc"] == w["deterministic"]  # W has no noise

    rerun = compare(config)  # finished runs are reused, not retrained
    assert rerun == results


def test_rows_pair_the_claims_by_seed_and_never_compare_mnist_with_imagenet() -> None:
    config = budget_config("cpu")
    assert config.train.model == "small" and config.train.epochs >= 10
    assert config.train.mc_samples >= 10
    assert set(config.heads) == {"K", "D", "W"} and config.seeds == (0, 1, 2)
    assert set(config.datasets) == {"mnist", "fashion-mnist"}
    # deterministic 2 points above sampled, mc 1 point above deterministic, in every seed
    offset = {"deterministic": 0.02, "mc": 0.03}
    results = {
        dataset: {
            head: {
                mode: [0.90 + 0.01 * seed + offset.get(mode, 0.0) for seed in range(3)]
                for mode in HEAD_EVAL_MODES[head]
            }
            for head in config.heads
        }
        for dataset in config.datasets
    }
    rows = comparison_rows(results, config, "uv run report --budget cpu --studies kakuritsu")
    for row in rows:
        row.check()
        assert not row.at_source_setting and row.verdict.startswith(
            ("not comparable", "direction", "inconclusive")
        )
    claims = {row.claim: row for row in rows if row.claim and row.setting.startswith("mnist")}
    assert set(claims) == {
        "K deterministic beats K sampled",
        "K mc beats K deterministic",
        "K sampled beats D sampled",
        "K mc beats D mc",
        "K deterministic beats D deterministic",
        "K swapped beats D swapped",
    }
    assert claims["K deterministic beats K sampled"].values == pytest.approx([2.0, 2.0, 2.0])
    assert claims["K deterministic beats K sampled"].verdict == "direction: supports"
    assert claims["K mc beats K deterministic"].values == pytest.approx([1.0, 1.0, 1.0])
    assert claims["K sampled beats D sampled"].values == pytest.approx([0.0, 0.0, 0.0])
    swapped = {
        row.setting.split(", head ")[1]: row
        for row in rows
        if "evaluated swapped" in row.setting and row.setting.startswith("mnist")
    }
    # every cross-swap of the source, each with its ImageNet number and marked not comparable
    assert {name: row.source.value for name, row in swapped.items() if row.source} == {
        "K, evaluated swapped": 39.09,
        "D, evaluated swapped": 61.77,
        "W, evaluated swapped": 59.63,
        "W, evaluated swapped-dropout": 38.68,
    }
    assert all(
        row.verdict == "not comparable (not the source's setting)" for row in swapped.values()
    )
    assert all("not comparable" in row.note for row in swapped.values())
    mc_rows = [row for row in rows if row.setting.endswith("evaluated mc")]
    assert len(mc_rows) == 2 * len(config.datasets)  # K and D: W has no noise to average
    assert all(f"over {config.train.mc_samples} passes" in row.note for row in mc_rows)
