from __future__ import annotations

import json
from pathlib import Path

import pytest

from kakuritsu.config import KakuritsuConfig
from kakuritsu.model import EVAL_MODES
from kakuritsu.reproduce import CompareConfig, budget_config, compare, comparison_rows


def test_compare_writes_a_mean_std_table_and_a_plot(data_dir: Path, tmp_path: Path) -> None:
    train = KakuritsuConfig(
        model="small", epochs=1, train_samples=512, tracker="none", data_dir=data_dir
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
    assert saved["mnist"]["W"]["sampled"] == saved["mnist"]["W"]["deterministic"]  # W has no noise

    rerun = compare(config)  # finished runs are reused, not retrained
    assert rerun == results


def test_rows_pair_the_claims_by_seed_and_never_compare_mnist_with_imagenet() -> None:
    config = budget_config("cpu")
    results = {
        dataset: {
            head: {
                mode: [0.90 + 0.01 * seed + (mode == "deterministic") * 0.02 for seed in range(3)]
                for mode in EVAL_MODES
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
        "K sampled beats D sampled",
        "K deterministic beats D deterministic",
        "K swapped beats D swapped",
    }
    # seed by seed: deterministic is 2 points above sampled in every seed
    assert claims["K deterministic beats K sampled"].values == pytest.approx([2.0, 2.0, 2.0])
    assert claims["K deterministic beats K sampled"].verdict == "direction: supports"
    assert claims["K sampled beats D sampled"].values == pytest.approx([0.0, 0.0, 0.0])
    swapped = [row for row in rows if row.setting.endswith("evaluated swapped")]
    assert len(swapped) == 3 * len(config.datasets)  # K, D and W cross-swaps
    assert all(row.source is not None for row in swapped)
