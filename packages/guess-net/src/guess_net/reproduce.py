"""Guess-net's evaluation, which the source never ran ("TBU"): the same-size baseline vs focal
loss (both forms) vs border training (both reserved-half forms), the same 5 seeds in every arm;
test accuracy overall and on the hard set, the guess net's AUROC, and "border training beats
the same-size baseline" on all test images and on the hard set as paired rows (border minus
baseline of the same seed, with its 95% interval). The source published no numbers, and no
budget is its setting (it trained with batch 8 and switched the guess net on late), so claim
rows say "direction: supports / contradicts" or "inconclusive". Finished runs are reused.

Border training routes a sample when the guess net's probability that the main half is right
falls below a threshold chosen on the validation split at the switch and after every routed
epoch: the one that flags as many validation samples as the main half gets wrong. The
source's fixed 0.5 routed nothing: in the 20-epoch runs of commit 1dc8e6e (10 border runs,
~97.7% accurate) not one test image was flagged, so those "border" arms were the main half
alone.

Every budget trains with the source's GE2E term (weight 0.1, per batch rather than over its 16
accumulated batches). Measured on the 2-core AMD EPYC with OMP_NUM_THREADS=1, loaded by other
jobs (load average 7-9), in one process or side by side under the same load: a training step
costs 1.11-1.15x the step without it, and a pair of 24-epoch baseline runs (seed 0, run side by
side) took 608 s vs 547 s over the 21 epochs they shared (1.11x). It does not slow
convergence: validation accuracy at epochs 10, 18, 20 and 24 was 97.34, 97.78, 97.86 and
97.66% with it, 97.42, 97.86, 97.74 and 98.06% without (5,000 samples: ±0.2 points of noise).

Budgets (5 arms x 5 seeds = 25 runs each):
- quick: 3 epochs (2 + 1 routed) on 15,000 training samples; CPU minutes, too short to carry a
  verdict (the models stop near 93%).
- cpu: 20 epochs (13 + 7 routed, the source's 2/3 trigger) on the 55,000 training images. The
  baseline's validation accuracy (seed 0, with and without GE2E, above) flattens at ~97.8% from
  epoch ~18. Estimate ~76 min with OMP_NUM_THREADS=1 on the 2-core machine: one epoch
  of the baseline without GE2E took 8.0 s there (load average ~1.9, the process got 71% of a
  core); the conditional form's step costs ~1.06x and GE2E 1.11x, so 25 runs x 20 epochs x
  ~9.0 s = 75 min, plus ~1 min for the reference model, start-up and test evaluations. Under
  heavier load it takes longer; an interrupted report continues from the finished runs.
- full: the source's 64 epochs on the whole training split (batch 128, not its 8).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from guess_net.config import GuessNetConfig
from guess_net.model import parameter_count
from guess_net.train import build_model, train
from mnistlab.stats import paired_differences
from mnistlab.study import Budget, Row, train_or_reuse

ARMS: dict[str, dict] = {
    "baseline": {},
    "focal-lin": {"loss": "focal-lin"},
    "focal-source": {"loss": "focal-source"},
    "border-parallel": {"border": True},
    "border-conditional": {"border": True, "reserved": "conditional"},
}
ARM_NOTES = {
    "baseline": "every sample through both halves, cross-entropy",
    "focal-lin": "Lin et al. focal loss, alpha 0.25, gamma 2, both halves",
    "focal-source": "the source's focal loss: no alpha, normalised weights, gamma ramped to 2",
    "border-parallel": "border training, reserved half = parallel encoder units",
    "border-conditional": "border training, reserved half with z_mean-conditional BatchNorm",
}
METRICS = {  # summary key -> (unit, scale)
    "test/acc1": ("test accuracy %", 100.0),
    "test/hard_acc1": ("hard-set test accuracy %", 100.0),
    "test/guess_auroc": ("guess-net test AUROC", 1.0),
}

EXTRA = ("test/routed", "test/hard_routed", "test/main_acc1")
BORDER_ARMS = tuple(arm for arm, options in ARMS.items() if options.get("border"))
SEEDS = (0, 1, 2, 3, 4)
# The source's GE2E weight (its loss on z_mean grouped by class), on in every budget.
SOURCE_GE2E_WEIGHT = 0.1
CLAIM_REF = (
    "detshawn/dendric-relu README: border training as an alternative to focal loss (not evaluated)"
)


def budget_config(budget: Budget) -> GuessNetConfig:
    """The shared settings of every run of a budget (see the module docstring)."""
    if budget == "quick":
        return GuessNetConfig(
            epochs=3, train_samples=15_000, ge2e_weight=SOURCE_GE2E_WEIGHT, tracker="none"
        )
    epochs = 20 if budget == "cpu" else 64
    return GuessNetConfig(epochs=epochs, ge2e_weight=SOURCE_GE2E_WEIGHT, tracker="none")


def budget_label(base: GuessNetConfig) -> str:
    """The settings every row of a budget shares, for the row's setting."""
    images = (
        f"{base.train_samples:,} training images"
        if base.train_samples
        else f"the training split less {base.val_size:,} validation images"
    )
    return (
        f"{base.epochs} epochs ({base.phase1_epochs} + {base.epochs - base.phase1_epochs} routed "
        f"for border training), {images}, GE2E {base.ge2e_weight:g}"
    )


def compare(base: GuessNetConfig, seeds: tuple[int, ...], folder: Path) -> dict:
    results: dict[str, dict] = {}
    for arm, options in ARMS.items():
        cell: dict = {key: [] for key in (*METRICS, *EXTRA)}
        for seed in seeds:
            config = dataclasses.replace(
                base, seed=seed, out_dir=folder / "runs", run_name=f"{arm}-s{seed}", **options
            )
            summary = train_or_reuse(train, config)
            for key in cell:
                cell[key].append(summary["metrics"][key])
        cell["parameters"] = parameter_count(build_model(config, 10))
        results[arm] = cell
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    (folder / "table.md").write_text(markdown_table(results, base, seeds))
    plot(results, folder / "compare.png")
    return results


def mean_std(values: Sequence[float], scale: float = 1.0) -> str:
    scaled = [scale * v for v in values]
    spread = statistics.stdev(scaled) if len(scaled) > 1 else 0.0
    return f"{statistics.fmean(scaled):.2f} ± {spread:.2f}"


def difference_cell(cell: dict, baseline: dict, key: str) -> str:
    if cell is baseline:
        return "—"
    return mean_std(paired_differences(cell[key], baseline[key]), 100)


def markdown_table(results: dict, base: GuessNetConfig, seeds: tuple[int, ...]) -> str:
    lines = [
        f"MNIST, {budget_label(base)}, batch {base.batch_size}, mean ± std over seeds "
        f"{list(seeds)}. Hard set: the "
        f"{base.hard_fraction:.0%} of test samples a fixed logistic-regression reference gives "
        "the lowest true-class probability.",
        "",
        "| arm | parameters | test acc % | hard-set acc % | guess AUROC | routed % (test) | "
        "routed % (hard set) | routing gain (pp) | Δ acc vs baseline (pp) | Δ hard-set acc (pp) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    baseline = results["baseline"]
    for arm, cell in results.items():
        gain = "—"  # only border training has a main-half-only prediction to compare with
        if ARMS[arm].get("border"):
            gains = [a - m for a, m in zip(cell["test/acc1"], cell["test/main_acc1"], strict=True)]
            gain = mean_std(gains, 100)
        lines.append(
            f"| {arm} | {cell['parameters']:,} | {mean_std(cell['test/acc1'], 100)} | "
            f"{mean_std(cell['test/hard_acc1'], 100)} | {mean_std(cell['test/guess_auroc'])} | "
            f"{mean_std(cell['test/routed'], 100)} | {mean_std(cell['test/hard_routed'], 100)} "
            f"| {gain} | {difference_cell(cell, baseline, 'test/acc1')} "
            f"| {difference_cell(cell, baseline, 'test/hard_acc1')} |"
        )
    lines += [
        "",
        "Routing gain: test accuracy with the flagged samples routed through the reserved "
        "half minus the main half's accuracy on its own (same run). Flag threshold: chosen on "
        "validation so that it flags as many samples as the main half gets wrong. Δ: minus the "
        "baseline run "
        "of the same seed (same data order; same initialisation except the conditional form), mean ± std of the differences.",
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    figure = Figure(figsize=(4.2 * len(METRICS), 4))
    axes = figure.subplots(1, len(METRICS))
    arms = list(results)
    for ax, (key, (unit, scale)) in zip(axes, METRICS.items(), strict=True):
        for i, arm in enumerate(arms):
            values = [scale * v for v in results[arm][key]]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            ax.bar(i, statistics.fmean(values), yerr=spread, capsize=3, color=f"C{i}", alpha=0.6)
            ax.plot([i] * len(values), values, "k.", markersize=4)
        ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
        ax.set_title(unit)
        low = min(scale * min(results[a][key]) for a in arms)
        high = max(scale * max(results[a][key]) for a in arms)
        margin = max(high - low, 1e-3 * scale)
        ax.set_ylim(low - margin, high + 0.5 * margin)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def claim_rows(results: dict, label: str, command: str) -> list[Row]:
    """Border training against the same-size baseline of the same seed, overall and on the
    hard set."""
    baseline = results["baseline"]
    return [
        Row(
            setting=f"{arm} vs baseline, {where}, {label}",
            values=[100 * d for d in paired_differences(results[arm][key], baseline[key])],
            unit="accuracy points, border - baseline",
            higher_is_better=True,
            command=command,
            claim="border training beats the same-size baseline",
            claim_ref=CLAIM_REF,
            note=ARM_NOTES[arm],
        )
        for arm in BORDER_ARMS
        for key, where in (("test/acc1", "all test images"), ("test/hard_acc1", "hard set"))
    ]


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    """Every arm's three metrics (no source numbers: 'not comparable') and the claim rows."""
    base = budget_config(budget)
    results = compare(base, SEEDS, folder)
    command = f"uv run report --budget {budget} --studies guess-net"
    label = budget_label(base)
    rows = [
        Row(
            setting=f"{arm}, {label}",
            values=[scale * v for v in results[arm][key]],
            unit=unit,
            higher_is_better=True,
            command=command,
            note=ARM_NOTES[arm],
        )
        for arm in ARMS
        for key, (unit, scale) in METRICS.items()
    ]
    return rows + claim_rows(results, label, command)
