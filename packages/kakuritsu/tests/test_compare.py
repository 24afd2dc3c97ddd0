from __future__ import annotations

import json
from pathlib import Path

from kakuritsu.config import KakuritsuConfig
from kakuritsu.reproduce import CompareConfig, compare


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
