"""Kakuritsu's reproduction: heads x seeds x datasets, each head evaluated in every mode, as a
mean ± std markdown table and a plot (`uv run report`, or `kakuritsu-compare` for any
heads/seeds/datasets). Finished runs are reused, so an interrupted comparison continues."""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from kakuritsu.config import KakuritsuConfig
from kakuritsu.model import EVAL_MODES, HeadKind
from kakuritsu.train import train
from mnistlab.classify import Dataset
from mnistlab.cli import parse_config
from mnistlab.config import require
from mnistlab.runtime import guarded_main
from mnistlab.study import Budget, Row, train_or_reuse


def _cpu_preset() -> KakuritsuConfig:
    return KakuritsuConfig(model="small", hidden=256, epochs=2, tracker="none")


@dataclass
class CompareConfig:
    heads: tuple[HeadKind, ...] = ("K", "D", "W")
    seeds: tuple[int, ...] = (0, 1, 2)
    datasets: tuple[Dataset, ...] = ("mnist", "fashion-mnist")
    out_dir: Path = Path("runs")
    """The comparison goes to OUT_DIR/kakuritsu-compare/RUN_NAME/ (its runs in runs/)."""
    run_name: str = "default"
    train: KakuritsuConfig = field(default_factory=_cpu_preset)
    """Training settings shared by every run (head, seed, dataset and out_dir are set here)."""

    def __post_init__(self) -> None:
        require(bool(self.heads and self.seeds and self.datasets), "give heads, seeds, datasets")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def compare(config: CompareConfig, folder: Path | None = None) -> dict:
    folder = folder or config.out_dir / "kakuritsu-compare" / config.run_name
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for dataset in config.datasets:
        for head in config.heads:
            for seed in config.seeds:
                summary = train_or_reuse(
                    train,
                    dataclasses.replace(
                        config.train,
                        head=head,
                        seed=seed,
                        dataset=dataset,
                        out_dir=folder / "runs",
                        run_name=f"{dataset}-{head}-s{seed}",
                    ),
                )
                cell = results.setdefault(dataset, {}).setdefault(head, {})
                for mode in EVAL_MODES:
                    cell.setdefault(mode, []).append(summary["metrics"][f"test/{mode}/acc1"])
    table = markdown_table(results, config)
    (folder / "table.md").write_text(table)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, folder / "compare.png")
    print(table)
    print(f"written: {folder / 'table.md'}, {folder / 'compare.png'}")
    return results


def markdown_table(results: dict, config: CompareConfig) -> str:
    lines = [
        f"Test accuracy (%), mean ± std over seeds {list(config.seeds)}; every head evaluated "
        "sampled (its own noise), deterministic (K at p=1, dropout off) and swapped (K with "
        f"dropout {config.train.dropout}, D and W with Kakuritsu synapses at p={config.train.p}).",
        "",
        "| dataset | head | " + " | ".join(EVAL_MODES) + " |",
        "|---|---|" + "---|" * len(EVAL_MODES),
    ]
    for dataset, heads in results.items():
        for head, modes in heads.items():
            cells = [
                f"{100 * m:.2f} ± {100 * s:.2f}"
                for m, s in (mean_std(modes[mode]) for mode in EVAL_MODES)
            ]
            lines.append(f"| {dataset} | {head} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    figure = Figure(figsize=(5 * len(results), 3.6))
    axes = figure.subplots(1, len(results), squeeze=False)
    for ax, (dataset, heads) in zip(axes[0], results.items(), strict=True):
        width = 0.8 / len(EVAL_MODES)
        for i, mode in enumerate(EVAL_MODES):
            stats = [mean_std(heads[h][mode]) for h in heads]
            positions = [j + (i - (len(EVAL_MODES) - 1) / 2) * width for j in range(len(heads))]
            ax.bar(
                positions,
                [100 * m for m, _ in stats],
                width,
                yerr=[100 * s for _, s in stats],
                capsize=3,
                label=mode,
            )
        ax.set_xticks(range(len(heads)), list(heads))
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(dataset)
        low = min(100 * min(v) for h in heads.values() for v in h.values())
        ax.set_ylim(max(0.0, low - 5), 100)
    figure.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=3)
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    figure.savefig(path, dpi=120)


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    """quick: the small CPU preset (2 epochs), MNIST; full: the original demo net, 14 epochs,
    MNIST and Fashion-MNIST. The
    source published no MNIST numbers, so every row is 'not comparable'; the question it
    answers is whether sampling at evaluation (the original's behaviour) costs accuracy."""
    config = CompareConfig(datasets=("mnist",))
    if budget == "full":
        config = CompareConfig(train=KakuritsuConfig(tracker="none"))
    results = compare(config, folder)
    command = f"uv run report --budget {budget} --studies kakuritsu"
    return [
        Row(
            setting=f"{dataset}, head {head}, evaluated {mode}",
            unit="test accuracy %",
            values=[100 * v for v in results[dataset][head][mode]],
            source=None,
            source_ref="",
            tolerance=0.0,
            higher_is_better=True,
            command=command,
            note="original: MNIST demo without numbers"
            if head == "K" and mode == "sampled"
            else "",
        )
        for dataset in config.datasets
        for head in config.heads
        for mode in (EVAL_MODES if head == "K" else EVAL_MODES[:2])
    ]


def main(argv: Sequence[str] | None = None) -> None:
    guarded_main(lambda: compare(parse_config(CompareConfig, argv, __doc__ or "")))


if __name__ == "__main__":
    main()
