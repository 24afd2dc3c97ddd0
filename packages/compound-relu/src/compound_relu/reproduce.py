"""The evaluation the source never ran: compound vs plain vs residual MLPs at equal parameter
count, several seeds, MNIST and Fashion-MNIST, deciding the author's two claims:

1. mid-layer non-linearities of this kind help little: compound - plain accuracy, paired by
   seed (same validation carve and batch order), with its 95% interval;
2. chunked compounds reduce to a residual net: algebraically (each compound layer rewritten as
   a residual block, the share of outputs the rewrite misses) and in accuracy (compound -
   residual, paired by seed).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import textwrap
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from compound_relu.config import CompoundConfig
from compound_relu.train import STEEPNESSES, train
from mnistlab.classify import Dataset
from mnistlab.study import Budget, Row, train_or_reuse

DATASETS: tuple[Dataset, ...] = ("mnist", "fashion-mnist")
SEEDS = (0, 1, 2, 3, 4)
ARMS: dict[str, dict[str, str]] = {
    "plain": {"arch": "plain"},
    "residual": {"arch": "residual"},
    "compound, straight-through": {"arch": "compound", "hyper_gradient": "straight-through"},
    "compound, sigmoid surrogate": {"arch": "compound", "hyper_gradient": "sigmoid"},
    "compound, zero gradient (source)": {"arch": "compound", "hyper_gradient": "zero"},
}
MAIN_COMPOUND = "compound, straight-through"
MARGIN_PP = 0.5
"""A difference whose 95% interval lies within ±MARGIN_PP accuracy points counts as 'little'."""
# Two-sided 95% Student t quantiles (standard table), by degrees of freedom.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def budget_config(budget: Budget) -> CompoundConfig:
    """quick: 3 epochs on 12k samples, small MLPs (minutes on 2 CPU cores for 50 runs);
    full: width 256, 3 hidden layers, 20 epochs on the whole training split."""
    if budget == "quick":
        return CompoundConfig(width=64, depth=2, epochs=3, train_samples=12_000, tracker="none")
    return CompoundConfig(width=256, depth=3, epochs=20, tracker="none")


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean of a - b over paired seeds and the half-width of its 95% t interval."""
    differences = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return mean, math.inf
    t = T_975[len(differences) - 2] if len(differences) - 1 <= len(T_975) else 1.96
    return mean, t * statistics.stdev(differences) / math.sqrt(len(differences))


def decide(mean: float, half_width: float) -> str:
    """Direction when the 95% interval excludes 0; size when it lies within ±MARGIN_PP."""
    low, high = mean - half_width, mean + half_width
    small = low >= -MARGIN_PP and high <= MARGIN_PP
    if low > 0 or high < 0:
        direction = "higher" if low > 0 else "lower"
        return f"{direction}, by < {MARGIN_PP} pp" if small else direction
    return f"equal within ±{MARGIN_PP} pp" if small else "inconclusive"


def run_arms(base: CompoundConfig, folder: Path) -> dict[str, dict[str, list[dict]]]:
    """Every (dataset, arm, seed) run's summary, trained or reused."""
    summaries: dict[str, dict[str, list[dict]]] = {}
    for dataset in DATASETS:
        for arm, overrides in ARMS.items():
            for seed in SEEDS:
                name = f"{dataset}-{overrides['arch']}-{overrides.get('hyper_gradient', '')}"
                config = dataclasses.replace(
                    base,
                    dataset=dataset,
                    seed=seed,
                    **overrides,  # type: ignore[arg-type]
                    out_dir=folder / "runs",
                    run_name=f"{name.rstrip('-')}-s{seed}",
                )
                summary = train_or_reuse(train, config)
                summaries.setdefault(dataset, {}).setdefault(arm, []).append(summary)
    return summaries


def accuracy(summaries: list[dict]) -> list[float]:
    return [100 * s["metrics"]["test/acc1"] for s in summaries]


def mismatch(summaries: list[dict], steepness: float) -> list[float]:
    return [100 * s["metrics"][f"test/rewrite_mismatch/s{steepness:.0e}"] for s in summaries]


def mean_std(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def markdown_table(summaries: dict, base: CompoundConfig, budget: Budget) -> str:
    setting = (
        f"width {base.width} reference, depth {base.depth}, {base.epochs} epoch(s), "
        f"{base.train_samples or 'all'} training samples, Adam lr {base.lr}, batch "
        f"{base.batch_size}, fractions hyper {base.hyper_fraction} / hypo "
        f"{base.hypo_fraction}, T {base.threshold}, chunk {base.chunk}"
    )
    lines = [
        f"Budget `{budget}` ({setting}); seeds {list(SEEDS)}; test accuracy % mean ± std; "
        "Δ: paired by seed, mean ± 95% t interval; higher / lower: the interval excludes 0; "
        f"'by < {MARGIN_PP} pp' / 'equal within': the whole interval lies within ±{MARGIN_PP} "
        "pp; inconclusive: neither.",
        "",
        "| dataset | arm | width | parameters | test accuracy % | Δ vs plain (pp) | "
        "Δ vs residual (pp) |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, arms in summaries.items():
        plain, residual = accuracy(arms["plain"]), accuracy(arms["residual"])
        for arm, runs in arms.items():
            ours = accuracy(runs)
            cells = []
            for name, reference in (("plain", plain), ("residual", residual)):
                if arm == name:
                    cells.append("—")
                    continue
                mean, half = paired_difference(ours, reference)
                cells.append(f"{mean:+.2f} ± {half:.2f} ({decide(mean, half)})")
            metrics = runs[0]["metrics"]
            lines.append(
                f"| {dataset} | {arm} | {metrics['model/width']:.0f} | "
                f"{metrics['model/parameters']:.0f} | {mean_std(ours)} | "
                + " | ".join(cells)
                + " |"
            )
    lines += [
        "",
        "Claim 2, algebra: each trained compound layer rewritten as a residual block "
        "ReLU(P x + B ReLU(C x + c)) (hypo = ReLU(z) - ReLU(z - T/2), hyper step = a ramp of "
        "steepness s); share of compound-layer outputs on the test set where the rewrite "
        "differs by more than 1e-6 (float64), % mean ± std over seeds.",
        "",
        "| dataset | arm | " + " | ".join(f"s = {s:.0e}" for s in STEEPNESSES) + " |",
        "|---|---|" + "---|" * len(STEEPNESSES),
    ]
    for dataset, arms in summaries.items():
        for arm, runs in arms.items():
            if ARMS[arm]["arch"] == "compound":
                cells = [mean_std(mismatch(runs, s)) for s in STEEPNESSES]
                lines.append(f"| {dataset} | {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summaries: dict, path: Path) -> None:
    figure = Figure(figsize=(6 * len(summaries), 4))
    axes = figure.subplots(1, len(summaries), squeeze=False)
    for ax, (dataset, arms) in zip(axes[0], summaries.items(), strict=True):
        for i, runs in enumerate(arms.values()):
            values = accuracy(runs)
            ax.bar(
                i,
                statistics.fmean(values),
                0.6,
                yerr=statistics.stdev(values),
                capsize=4,
                color="tab:orange" if i >= 2 else "tab:blue",
                alpha=0.6,
            )
            ax.plot([i] * len(values), values, "k.", markersize=4)
        ax.set_xticks(range(len(arms)), [textwrap.fill(a, 14) for a in arms], fontsize=7)
        ax.set_ylabel("test accuracy (%)")
        low = min(min(accuracy(r)) for r in arms.values())
        high = max(max(accuracy(r)) for r in arms.values())
        ax.set_ylim(low - 0.5 * (high - low) - 0.2, high + 0.3 * (high - low) + 0.2)
        ax.set_title(f"{dataset}: equal parameter count, {len(SEEDS)} seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    """The source published no numbers ('TBU'): every row is 'not comparable'; the notes carry
    the verdicts on the author's two claims."""
    base = budget_config(budget)
    summaries = run_arms(base, folder)
    table = markdown_table(summaries, base, budget)
    (folder / "table.md").write_text(table)
    (folder / "results.json").write_text(
        json.dumps(
            {d: {a: accuracy(r) for a, r in arms.items()} for d, arms in summaries.items()},
            indent=2,
        )
    )
    plot(summaries, folder / "compare.png")
    print(table)
    command = f"uv run report --budget {budget} --studies compound-relu"
    rows = []
    for dataset, arms in summaries.items():
        plain, residual = accuracy(arms["plain"]), accuracy(arms["residual"])
        for arm, runs in arms.items():
            note = ""
            if arm == MAIN_COMPOUND:
                vs_plain = decide(*paired_difference(accuracy(runs), plain))
                vs_residual = decide(*paired_difference(accuracy(runs), residual))
                note = f"vs plain: {vs_plain} (claim 1); vs residual: {vs_residual} (claim 2)"
            rows.append(
                Row(
                    setting=f"{dataset}, {arm}",
                    values=accuracy(runs),
                    unit="test accuracy %",
                    source=None,
                    source_ref="",
                    tolerance=0.0,
                    higher_is_better=True,
                    command=command,
                    note=note,
                )
            )
        rows.append(
            Row(
                setting=f"{dataset}, {MAIN_COMPOUND} layers rewritten as residual blocks (s = 1e6)",
                values=mismatch(arms[MAIN_COMPOUND], 1e6),
                unit="% outputs differing",
                source=None,
                source_ref="",
                tolerance=0.0,
                higher_is_better=False,
                command=command,
                note="claim 2, algebra: 0 means the compound layer is exactly a residual block",
            )
        )
    return rows
