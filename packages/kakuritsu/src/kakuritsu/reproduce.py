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
from kakuritsu.model import EVAL_MODES, EvalMode, HeadKind
from kakuritsu.train import train
from mnistlab.classify import Dataset
from mnistlab.cli import parse_config
from mnistlab.config import require
from mnistlab.entry import guarded_main
from mnistlab.stats import paired_differences
from mnistlab.study import Budget, Row, Source, train_or_reuse


def _short_preset() -> KakuritsuConfig:
    """The quick budget's runs and kakuritsu-compare's default: minutes on a CPU."""
    return KakuritsuConfig(model="small", hidden=256, epochs=2, tracker="none")


@dataclass
class CompareConfig:
    heads: tuple[HeadKind, ...] = ("K", "D", "W")
    seeds: tuple[int, ...] = (0, 1, 2)
    datasets: tuple[Dataset, ...] = ("mnist", "fashion-mnist")
    out_dir: Path = Path("runs")
    """The comparison goes to OUT_DIR/kakuritsu-compare/RUN_NAME/ (its runs in runs/)."""
    run_name: str = "default"
    train: KakuritsuConfig = field(default_factory=_short_preset)
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


# The original's only published accuracies: ImageNet top-1 of its ResNet152 heads (frozen
# features) per evaluation mode, from its logs and archive. Its MNIST demo printed none, so
# every row here is "not comparable" with them; they are shown for the direction.
IMAGENET_REF = "UEFI-code/Neuro_myKakuritsu ImageNet logs and archive: ImageNet top-1, not MNIST"
IMAGENET: dict[tuple[HeadKind, EvalMode], float] = {
    ("K", "sampled"): 67.11,
    ("K", "deterministic"): 75.72,
    ("K", "swapped"): 39.09,
    ("D", "sampled"): 36.37,
    ("D", "deterministic"): 73.00,
    ("D", "swapped"): 61.77,
    ("W", "swapped"): 59.63,
}
# W has no noise of its own: its sampled evaluation is its deterministic one.
ROW_MODES: dict[HeadKind, tuple[EvalMode, ...]] = {
    "K": EVAL_MODES,
    "D": EVAL_MODES,
    "W": ("deterministic", "swapped"),
}
# Claims "A beats B" as (head, mode) pairs, each a paired difference over the same seeds.
CLAIMS: tuple[tuple[tuple[HeadKind, EvalMode], tuple[HeadKind, EvalMode]], ...] = (
    (("K", "deterministic"), ("K", "sampled")),
    (("K", "sampled"), ("D", "sampled")),
    (("K", "deterministic"), ("D", "deterministic")),
    (("K", "swapped"), ("D", "swapped")),
)


def budget_config(budget: Budget) -> CompareConfig:
    """quick: the short preset (small backbone, hidden 256, 2 epochs), MNIST, seeds 0-2.
    cpu: the small backbone under the demo's head (hidden 128) and schedule (14 epochs), a
    5,000-image validation split (the test split is evaluated once, at the end), MNIST and
    Fashion-MNIST, heads K, D, W on seeds 0-2. Estimated ~45 min on the 2-core AMD EPYC
    (AVX-512 BF16, no AMX): 200-step runs measured there at a load of about 1 took 22 ms/step
    for K and 5 ms/step for D (860 steps/epoch), i.e. ~5 min per K run and ~1.2 min per D or
    W run with their evaluations.
    full: the original MNIST demo (demo backbone, 14 epochs, validated on test as the
    original did), MNIST and Fashion-MNIST. The ImageNet setting, the only one with published
    numbers, needs the ImageNet folder and a GPU for days: runnable with `train
    --image-folder`, in no budget."""
    if budget == "quick":
        return CompareConfig(datasets=("mnist",))
    if budget == "cpu":
        return CompareConfig(
            train=KakuritsuConfig(
                model="small", hidden=128, epochs=14, val_size=5000, tracker="none"
            )
        )
    return CompareConfig(train=KakuritsuConfig(tracker="none"))


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    """Every head in every evaluation mode, and the claims as paired rows (see
    `budget_config`). The source's numbers are ImageNet's, so no row is at its setting."""
    config = budget_config(budget)
    return comparison_rows(
        compare(config, folder), config, f"uv run report --budget {budget} --studies kakuritsu"
    )


def comparison_rows(results: dict, config: CompareConfig, command: str) -> list[Row]:
    """`compare`'s results as rows: every head and mode, then the claims, per dataset."""
    train = config.train
    rows = []
    for dataset in config.datasets:
        setting = f"{dataset}, {train.model} backbone, hidden {train.hidden}, {train.epochs} epochs"
        accuracy = {
            (head, mode): [100 * v for v in results[dataset][head][mode]]
            for head in config.heads
            for mode in EVAL_MODES
        }
        for head in config.heads:
            for mode in ROW_MODES[head]:
                imagenet = IMAGENET.get((head, mode))
                rows.append(
                    Row(
                        setting=f"{setting}, head {head}, evaluated {mode}",
                        values=accuracy[head, mode],
                        unit="test accuracy %",
                        higher_is_better=True,
                        command=command,
                        source=None
                        if imagenet is None
                        else Source(imagenet, IMAGENET_REF, stated=f"{imagenet} (ImageNet)"),
                        note="W has no noise: sampled is the same" if head == "W" else "",
                    )
                )
        for better, worse in CLAIMS:
            rows.append(
                Row(
                    setting=setting,
                    values=paired_differences(accuracy[better], accuracy[worse]),
                    unit="test accuracy points, paired by seed",
                    higher_is_better=True,
                    command=command,
                    claim=f"{' '.join(better)} beats {' '.join(worse)}",
                    claim_ref=f"the original's ImageNet top-1: {IMAGENET[better]} vs "
                    f"{IMAGENET[worse]} ({IMAGENET_REF})",
                )
            )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    guarded_main(lambda: compare(parse_config(CompareConfig, argv, __doc__ or "")))


if __name__ == "__main__":
    main()
