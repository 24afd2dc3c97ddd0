"""From a simulation to numbers with intervals, and the outcome-over-time plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from torch import Tensor

from mirror_symmetry.setup import PATTERNS
from mirror_symmetry.sim import OUTCOMES, Simulation, Snapshot, outcome_counts
from mirror_symmetry.solution import solution_shape
from mnistlab.stats import wilson_interval


def rate(count: int, trials: int) -> dict[str, Any]:
    low, high = wilson_interval(count, trials)
    return {"count": count, "fraction": count / trials, "ci95": [low, high]}


def snapshot_metrics(snapshot: Snapshot) -> dict[str, float]:
    """One record as tracker metrics: the fraction of networks at each outcome, and the mean loss."""
    runs = sum(snapshot.counts)
    metrics = {
        f"fraction/{name}": n / runs for name, n in zip(OUTCOMES, snapshot.counts, strict=True)
    }
    return {**metrics, "loss": snapshot.mean_loss}


def summarize(sim: Simulation) -> dict[str, Any]:
    """The study's numbers for one simulation (summary.json's "metrics")."""
    runs = sim.setup.runs
    final_counts = outcome_counts(sim.final_correct)
    ever_solved = sim.solved_at >= 0
    times = sim.solved_at[ever_solved]
    solved = sim.final_correct == PATTERNS
    shape = solution_shape(sim.final)
    n_solved = int(solved.sum())
    return {
        "runs": runs,
        "sweeps": sim.setup.sweeps,
        "seed": sim.seed,
        "outcomes": {
            name: rate(count, runs) for name, count in zip(OUTCOMES, final_counts, strict=True)
        },
        "reached_1.0_at_some_sweep": rate(len(times), runs),
        "sweeps_to_1.0": _spread(times) if len(times) else None,
        "solved_weights": {
            criterion: rate(int((mask & solved).sum()), n_solved) if n_solved else None
            for criterion, mask in (
                ("antisymmetric", shape.antisymmetric),
                ("ratio_1_2_4", shape.ratio_1_2_4),
                ("opposite_copies", shape.opposite_copies),
                ("paper_solution", shape.paper),
            )
        },
        # [middle/smallest, largest/middle] mirror-pair magnitude, median over solved networks'
        # hidden units: 2 and 2 in the paper's solution.
        "solved_step_ratios_median": (
            shape.step_ratios[solved].reshape(-1, 2).median(0).values.tolist() if n_solved else None
        ),
        "simulation_seconds": round(sim.seconds, 3),
        "build_seconds": round(sim.build_seconds, 3),
        "run_sweeps_per_s": round(sim.run_sweeps_per_second),
        "backend": sim.backend,
        "device": sim.device,
        "dtype": sim.dtype,
    }


def _spread(values: Tensor) -> dict[str, float]:
    """Median, quartiles (statistics.quantiles' exclusive method), min and max of int values,
    on the tensor rather than on a Python list of every network."""
    ordered = values.sort().values
    count = len(ordered)
    quartiles = [float(ordered[0])] * 3
    if count > 1:
        for index, i in enumerate((1, 2, 3)):
            j = min(max(i * (count + 1) // 4, 1), count - 1)
            delta = i * (count + 1) - 4 * j
            quartiles[index] = (int(ordered[j - 1]) * (4 - delta) + int(ordered[j]) * delta) / 4
    low, median, high = quartiles
    return {
        "median": median,
        "q25": low,
        "q75": high,
        "min": int(ordered[0]),
        "max": int(ordered[-1]),
    }


def describe(metrics: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    lines = [f"{metrics['runs']} networks x {metrics['sweeps']} sweeps:"]
    for name, r in metrics["outcomes"].items():
        low, high = r["ci95"]
        lines.append(
            f"  accuracy {name:>5}: {r['count']:6d}  {100 * r['fraction']:5.1f}%  "
            f"(95% CI {100 * low:.1f}-{100 * high:.1f}%)"
        )
    if metrics["sweeps_to_1.0"] is not None:
        lines.append(f"  median sweeps to reach 1.0: {metrics['sweeps_to_1.0']['median']:g}")
    paper = metrics["solved_weights"]["paper_solution"]
    if paper is not None:
        lines.append(
            f"  solved networks with the paper's weight pattern: {paper['count']} "
            f"({100 * paper['fraction']:.0f}%)"
        )
    lines.append(
        f"  {metrics['simulation_seconds']:.2f} s ({metrics['run_sweeps_per_s']:,} run-sweeps/s, "
        f"backend {metrics['backend']}, build {metrics['build_seconds']:.1f} s)"
    )
    return "\n".join(lines)


def plot_outcomes(history: list[Snapshot], path: Path, title: str) -> None:
    """Fraction of networks at each outcome against sweeps."""
    sweeps = [s.sweep for s in history]
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    for index, name in enumerate(OUTCOMES):
        fractions = [s.counts[index] / sum(s.counts) for s in history]
        axes.plot(sweeps, fractions, label=f"accuracy {name}")
    axes.set_xlabel("sweep")
    axes.set_ylabel("fraction of networks")
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
