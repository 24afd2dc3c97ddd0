"""The evaluation the source never ran: compound vs plain vs residual MLPs at equal parameter
count, 5 seeds, MNIST and Fashion-MNIST, testing the author's two claims as paired rows (the
same seeds, hence the same validation carve and batch order, in every arm):

1. "compound layers in the middle are less efficient than plain layers": plain - compound;
2. "chunked by middle activations they are mostly the same as ResNet": compound - residual
   within ±MARGIN_PP, an equivalence test written as two one-sided rows (the report's claims
   are "X beats Y"): "compound + MARGIN_PP beats residual" and "residual + MARGIN_PP beats
   compound". Claim 2 is supported when both are, i.e. when the 95% interval of
   compound - residual lies inside ±MARGIN_PP, and contradicted when either is.

The compound layers are sized as the source sized its own (`model/shallownet.py`): 1/8 of the
inputs to each branch, in chunks of 4 in the first compound layer and 2 in the second. The
source states its claims for that layer without a network or a number; the `cpu` and `full`
budgets, at its layer sizing with MLPs trained to their usual accuracy, count as its setting
(supported / contradicted / inconclusive), the `quick` budget does not (direction only).
The algebraic rewrite of a compound layer as a residual block is checked by tests, not rows.

Budgets (5 seeds x 5 arms x 2 datasets = 50 runs each):
- quick: width 64, depth 2, 3 epochs on 12k samples; minutes on 2 CPU cores.
- cpu: width 256, depth 3 (two middle layers), on the 55k training images with random
  translation by up to 2 pixels; 10 epochs on MNIST, where the plain MLP then reaches its usual
  >= 98% (measured, seeds 0-4: 97.89, 98.13, 98.36, 98.10, 98.51%, mean 98.20; without
  translation it levels off near 97.7%), 5 epochs on Fashion-MNIST to fit the time limit.
  Time: an estimate of about 45 min with OMP_NUM_THREADS=1 on the 2-core AMD EPYC VM when
  nothing else runs, from the CPU time of one 1-epoch run per arm and dataset (validation and
  test evaluation included), measured while other jobs loaded the machine: per epoch about
  2.6 s plain, 2.5 s residual, 11 s compound straight-through, 10-11 s sigmoid, 7.5 s zero
  gradient (a compound MLP has 16 and 32 small chunk Linears in its two layers, each chunk's
  output activated on its own), plus about 1 s per run; a plain 10-epoch run took 26-28 s of
  CPU. Beside other jobs the wall time is longer: those runs took 2-4x their CPU time with
  the load average at 6-8. Kept within the limit by Fashion-MNIST's 5 epochs instead of 10
  (10 would add about 15 min) and by leaving the float64 residual-rewrite check on the test
  set, about 10 s of CPU per compound run (measured once), to the tests.
- full: as cpu, 20 epochs on both datasets.
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
from compound_relu.train import train
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
"""Claim 2 ('mostly the same'): compound and residual within ±MARGIN_PP accuracy points."""
CLAIM_REF = "detshawn/dendric-relu README (the author's claims; never evaluated there)"
CPU_EPOCHS: dict[Dataset, int] = {"mnist": 10, "fashion-mnist": 5}


def budget_config(budget: Budget, dataset: Dataset) -> CompoundConfig:
    """The settings of every run of a budget on a dataset (see the module docstring)."""
    if budget == "quick":
        return CompoundConfig(
            dataset=dataset, width=64, depth=2, epochs=3, train_samples=12_000, tracker="none"
        )
    epochs = CPU_EPOCHS[dataset] if budget == "cpu" else 20
    return CompoundConfig(
        dataset=dataset, width=256, depth=3, epochs=epochs, translate=2, tracker="none"
    )


def run_arms(budget: Budget, folder: Path) -> dict[str, dict[str, list[dict]]]:
    """Every (dataset, arm, seed) run's summary, trained or reused."""
    summaries: dict[str, dict[str, list[dict]]] = {}
    for dataset in DATASETS:
        base = budget_config(budget, dataset)
        for arm, overrides in ARMS.items():
            for seed in SEEDS:
                name = f"{dataset}-{overrides['arch']}-{overrides.get('hyper_gradient', '')}"
                config = dataclasses.replace(
                    base,
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


def mean_std(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def difference_cell(differences: Sequence[float]) -> str:
    low, high = t_interval(differences)
    return f"{statistics.fmean(differences):+.2f} (95% CI {low:+.2f} to {high:+.2f})"


def setting_line(budget: Budget) -> str:
    base = budget_config(budget, DATASETS[0])
    epochs = ", ".join(f"{d} {budget_config(budget, d).epochs}" for d in DATASETS)
    return (
        f"width {base.width} reference, depth {base.depth}, epochs {epochs}, "
        f"{base.train_samples or 'all'} training samples, translate {base.translate}, Adam lr "
        f"{base.lr}, batch {base.batch_size}, fractions hyper {base.hyper_fraction} / hypo "
        f"{base.hypo_fraction}, T {base.threshold}, first chunk {base.chunk} (halved per layer)"
    )


def markdown_table(summaries: dict, budget: Budget) -> str:
    lines = [
        f"Budget `{budget}` ({setting_line(budget)}); seeds {list(SEEDS)}; test accuracy % "
        "mean ± std; Δ: paired by seed, mean and 95% t interval, in accuracy points.",
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


def claim_rows(
    dataset: str, arms: dict[str, list[dict]], command: str, at_source_setting: bool
) -> list[Row]:
    """The author's two claims for each compound arm, as paired differences over the seeds:
    claim 1 one row, claim 2 two one-sided rows (see the module docstring)."""
    plain, residual = accuracy(arms["plain"]), accuracy(arms["residual"])
    claim_1, claim_2 = [], []
    for arm in COMPOUND_ARMS:
        compound = accuracy(arms[arm])
        claim_1.append(
            Row(
                setting=f"{dataset}, plain vs {arm}",
                values=paired_differences(plain, compound),
                unit="test accuracy points, plain - compound",
                higher_is_better=True,
                command=command,
                at_source_setting=at_source_setting,
                claim="plain beats compound",
                claim_ref=CLAIM_REF,
                note="claim 1: compound layers in the middle are less efficient than plain ones",
            )
        )
        difference = paired_differences(compound, residual)
        low, high = t_interval(difference)
        sameness = (
            f"claim 2 (chunked compounds are mostly the same as ResNet) holds when both of its "
            f"rows are supported: compound - residual {statistics.fmean(difference):+.2f} "
            f"(95% CI {low:+.2f} to {high:+.2f}) against ±{MARGIN_PP}"
        )
        for better, worse, sign in (("compound", "residual", 1), ("residual", "compound", -1)):
            claim_2.append(
                Row(
                    setting=f"{dataset}, {arm} vs residual",
                    values=[MARGIN_PP + sign * d for d in difference],
                    unit=f"test accuracy points, {better} - {worse} + {MARGIN_PP}",
                    higher_is_better=True,
                    command=command,
                    at_source_setting=at_source_setting,
                    claim=f"{better} + {MARGIN_PP} points beats {worse}",
                    claim_ref=CLAIM_REF,
                    note=sameness,
                )
            )
    return claim_1 + claim_2


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    """Accuracy per (dataset, arm) and the two claims as paired rows; no source numbers."""
    summaries = run_arms(budget, folder)
    table = markdown_table(summaries, budget)
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
        rows += claim_rows(dataset, arms, command, at_source_setting=budget != "quick")
    return rows
