"""SimpleNet's reproduction (`uv run report --studies simplenet`).

quick (minutes on a 2-core CPU): the speedrun preset over 3 seeds and a short SimpleNet-slim
run (modern recipe, 4,096 training samples, batch 32, 2 epochs) — a check that both learn, not the
source's setting. full (the source's setting; needs a GPU): the standard and slim nets with the
Caffe solver (114 epochs) and the speedrun preset over 10 seeds.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

from accelerate.state import AcceleratorState
from matplotlib.figure import Figure

from mnistlab.study import Budget, Row, train_or_reuse
from simplenet.config import SimpleNetConfig
from simplenet.train import train

CAFFE_LOG = "Coderx7/SimpleNet, Logs/MNIST (Caffe); studies.md §3"


@dataclasses.dataclass(frozen=True)
class Setting:
    label: str
    name: str  # run-name prefix
    args: dict
    seeds: tuple[int, ...]
    source: float | None = None
    source_ref: str = ""
    note: str = ""


def settings(budget: Budget) -> list[Setting]:
    speedrun_note = "target: mean >= 99.0% with <= 4 s of training on an idle 2-core CPU"
    if budget == "quick":
        return [
            Setting(
                "speedrun preset (fast-tiny, 1 epoch)",
                "speedrun",
                {"preset": "speedrun"},
                (0, 1, 2),
                note=speedrun_note,
            ),
            Setting(
                "SimpleNet slim, modern recipe, 4,096 samples, batch 32, 2 epochs",
                "slim-short",
                {
                    "model": "slim",
                    "recipe": "modern",
                    "train_samples": 4096,
                    "batch_size": 32,
                    "val_size": 1000,
                    "epochs": 2,
                },
                (0,),
                note="a learning check on a CPU budget, not the source's setting",
            ),
        ]
    return [
        Setting(
            "SimpleNet standard, paper recipe (Caffe AdaDelta, 114 epochs)",
            "standard-paper",
            {"model": "standard", "recipe": "paper"},
            (0,),
            99.68,
            CAFFE_LOG,
            "source: last-epoch test accuracy of the standard net without dropout (its "
            "99.75% is one peak picked on test)",
        ),
        Setting(
            "SimpleNet slim, paper recipe (Caffe AdaDelta, 114 epochs)",
            "slim-paper",
            {"model": "slim", "recipe": "paper"},
            (0,),
            99.72,
            CAFFE_LOG,
            "source: reported slim result (Nesterov solver there; selection unknown)",
        ),
        Setting(
            "speedrun preset (fast-tiny, 1 epoch)",
            "speedrun",
            {"preset": "speedrun"},
            tuple(range(10)),
            note=speedrun_note,
        ),
    ]


def train_fresh(config: SimpleNetConfig) -> dict:
    """`train` in a process that may have trained before: Accelerate keeps one state per
    process, fixed by the first run's mixed precision, and a reproduction mixes bf16
    (speedrun) and fp32 runs."""
    AcceleratorState._reset_state(reset_partial_state=True)
    return train(config)


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    command = f"uv run report --budget {budget} --studies simplenet"
    rows, curves = [], {}
    for setting in settings(budget):
        summaries = [
            train_or_reuse(
                train_fresh,
                SimpleNetConfig(
                    **setting.args,
                    seed=seed,
                    out_dir=folder / "runs",
                    run_name=f"{setting.name}-s{seed}",
                    tracker="none",
                ),
            )
            for seed in setting.seeds
        ]
        accuracy = [100 * s["metrics"]["test/acc1"] for s in summaries]
        seconds = [s["train_time_s"] for s in summaries]
        curves[setting.label] = accuracy
        rows.append(
            Row(
                setting=setting.label,
                values=accuracy,
                unit="test accuracy %",
                source=setting.source,
                source_ref=setting.source_ref,
                tolerance=0.1,
                higher_is_better=True,
                command=command,
                note=f"{setting.note}; train time {statistics.fmean(seconds):.1f} s "
                f"mean (max {max(seconds):.1f} s) on {summaries[0]['device_name']}",
            )
        )
    write_outputs(rows, curves, folder)
    return rows


def write_outputs(rows: list[Row], curves: dict[str, list[float]], folder: Path) -> None:
    lines = ["| setting | test accuracy % (mean ± std, n) | source | note |", "|---|---|---|---|"]
    lines += [
        f"| {r.setting} | {r.ours} | {r.source if r.source is not None else '—'} | {r.note} |"
        for r in rows
    ]
    (folder / "table.md").write_text("\n".join(lines) + "\n")
    figure = Figure(figsize=(7, 0.6 + 0.5 * len(curves)))
    ax = figure.subplots()
    for index, values in enumerate(curves.values()):
        ax.scatter(values, [index] * len(values), color="tab:blue")
    ax.set_yticks(range(len(curves)), list(curves))
    ax.axvline(99.0, color="grey", linestyle=":")
    ax.set_xlabel("test accuracy % (one dot per seed)")
    figure.tight_layout()
    figure.savefig(folder / "accuracy.png", dpi=120)
