"""The evaluation the source never ran: compound vs plain vs residual MLPs at equal parameter
count, 5 seeds, MNIST and Fashion-MNIST, testing the author's two claims as paired rows (the
same seeds, hence the same validation carve and batch order, in every arm):

1. "compound layers in the middle are less efficient than plain layers": plain - compound;
2. "chunked by middle activations they are mostly the same as ResNet": compound - residual,
   whose 95% interval inside ±MARGIN_PP supports the claim (the report's verdicts are for
   "X beats Y"; the note says whether the interval lies inside the margin).

The compound layers take the source's sizes (`model/shallownet.py`: 12.5% of the inputs to each
branch, in chunks of 4, as its first compound layer; its second used chunks of 2). The source's
network was a VAE encoder, not these MLPs, and it published no evaluation, so no budget is the
source's setting: claim rows say "direction: supports / contradicts" or "inconclusive".
The algebraic rewrite of a compound layer as a residual block is checked by tests, not rows.

Budgets (5 seeds x 5 arms x 2 datasets = 50 runs each):
- quick: width 64, depth 2, 3 epochs on 12k samples; minutes on 2 CPU cores.
- cpu: width 256, depth 3 (two middle layers), 10 epochs on the 55k training images with random
  translation by up to 2 pixels, which a plain MLP needs to reach its usual >= 98% on MNIST
  (seed 1: 98.13% test after 10 epochs; without translation it levels off near 97.7%).
  Estimate ~80 min with OMP_NUM_THREADS=1, from 1-2 epoch runs measured while other work
  loaded the 2 cores: ~3-5 s per epoch for plain and residual, ~10 s for a compound MLP (its
  16 small chunk Linears per layer), plus ~25 s per compound run for the float64 rewrite check
  that train.py runs on the test set.
- full: as cpu, 20 epochs.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import textwrap
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from compound_relu.config import CompoundConfig
from compound_relu.train import STEEPNESSES, train
from mnistlab.classify import Dataset
from mnistlab.stats import paired_differences, t_interval
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
COMPOUND_ARMS = tuple(arm for arm, options in ARMS.items() if options["arch"] == "compound")
MARGIN_PP = 0.5
"""Claim 2 ('mostly the same'): the 95% interval of compound - residual lies within ±MARGIN_PP."""
CLAIM_REF = "detshawn/dendric-relu README (the author's claims; never evaluated there)"
# Claim 2 is sameness, which no "X beats Y" verdict states: its row tests a difference.
SAMENESS_REF = "ours, for the author's claim 2 (sameness: read the interval in the note)"
# The source's first compound layer: 32 of 256 inputs to each branch, in chunks of 4.
SOURCE_LAYER = {"hyper_fraction": 0.125, "hypo_fraction": 0.125, "chunk": 4}


def budget_config(budget: Budget) -> CompoundConfig:
    """The shared settings of every run of a budget (see the module docstring)."""
    if budget == "quick":
        return CompoundConfig(
            width=64, depth=2, epochs=3, train_samples=12_000, tracker="none", **SOURCE_LAYER
        )
    epochs = 10 if budget == "cpu" else 20
    return CompoundConfig(
        width=256, depth=3, epochs=epochs, translate=2, tracker="none", **SOURCE_LAYER
    )


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


def within_margin(differences: Sequence[float]) -> bool:
    """Whether the 95% t-interval of the paired differences lies inside ±MARGIN_PP."""
    low, high = t_interval(differences)
    return len(differences) > 1 and low >= -MARGIN_PP and high <= MARGIN_PP


def mean_std(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def difference_cell(differences: Sequence[float]) -> str:
    low, high = t_interval(differences)
    return f"{statistics.fmean(differences):+.2f} (95% CI {low:+.2f} to {high:+.2f})"


def markdown_table(summaries: dict, base: CompoundConfig, budget: Budget) -> str:
    setting = (
        f"width {base.width} reference, depth {base.depth}, {base.epochs} epoch(s), "
        f"{base.train_samples or 'all'} training samples, translate {base.translate}, Adam lr "
        f"{base.lr}, batch {base.batch_size}, fractions hyper {base.hyper_fraction} / hypo "
        f"{base.hypo_fraction}, T {base.threshold}, chunk {base.chunk}"
    )
    lines = [
        f"Budget `{budget}` ({setting}); seeds {list(SEEDS)}; test accuracy % mean ± std; "
        "Δ: paired by seed, mean and 95% t interval, in accuracy points.",
        "",
        "| dataset | arm | width | parameters | test accuracy % | Δ vs plain | Δ vs residual |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, arms in summaries.items():
        for arm, runs in arms.items():
            cells = [
                "—" if arm == other else difference_cell(paired_differences(accuracy(runs), ref))
                for other, ref in (
                    ("plain", accuracy(arms["plain"])),
                    ("residual", accuracy(arms["residual"])),
                )
            ]
            metrics = runs[0]["metrics"]
            lines.append(
                f"| {dataset} | {arm} | {metrics['model/width']:.0f} | "
                f"{metrics['model/parameters']:.0f} | {mean_std(accuracy(runs))} | "
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
        for arm in COMPOUND_ARMS:
            cells = [mean_std(mismatch(arms[arm], s)) for s in STEEPNESSES]
            lines.append(f"| {dataset} | {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summaries: dict, path: Path) -> None:
    figure = Figure(figsize=(6 * len(summaries), 4))
    axes = figure.subplots(1, len(summaries), squeeze=False)
    for ax, (dataset, arms) in zip(axes[0], summaries.items(), strict=True):
        for i, (arm, runs) in enumerate(arms.items()):
            values = accuracy(runs)
            ax.bar(
                i,
                statistics.fmean(values),
                0.6,
                yerr=statistics.stdev(values),
                capsize=4,
                color="tab:orange" if arm in COMPOUND_ARMS else "tab:blue",
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


def claim_rows(dataset: str, arms: dict[str, list[dict]], command: str) -> list[Row]:
    """The author's two claims for each compound arm, as paired differences over the seeds."""
    plain, residual = accuracy(arms["plain"]), accuracy(arms["residual"])
    rows = []
    for arm in COMPOUND_ARMS:
        compound = accuracy(arms[arm])
        rows.append(
            Row(
                setting=f"{dataset}, plain vs {arm}",
                values=paired_differences(plain, compound),
                unit="test accuracy points, plain - compound",
                higher_is_better=True,
                command=command,
                claim="plain beats compound",
                claim_ref=CLAIM_REF,
                note="claim 1: compound layers in the middle are less efficient than plain ones",
            )
        )
        same = paired_differences(compound, residual)
        inside = "inside" if within_margin(same) else "not inside"
        rows.append(
            Row(
                setting=f"{dataset}, {arm} vs residual",
                values=same,
                unit="test accuracy points, compound - residual",
                higher_is_better=True,
                command=command,
                claim="compound beats residual",
                claim_ref=SAMENESS_REF,
                note=f"claim 2: chunked compounds are mostly the same as ResNet; the 95% "
                f"interval is {inside} ±{MARGIN_PP} pp",
            )
        )
    return rows


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    """Accuracy per (dataset, arm) and the two claims as paired rows; no source numbers."""
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
        rows += [
            Row(
                setting=f"{dataset}, {arm}",
                values=accuracy(runs),
                unit="test accuracy %",
                higher_is_better=True,
                command=command,
                note=f"width {runs[0]['metrics']['model/width']:.0f}, "
                f"{runs[0]['metrics']['model/parameters']:.0f} parameters",
            )
            for arm, runs in arms.items()
        ]
        rows += claim_rows(dataset, arms, command)
    return rows
