"""`mirror-symmetry-reproduce`: the paper's setup and the 2021 report's variants, each with the
paper's 1/2-sum loss and with the report's mean loss, as one table of rates with 95% intervals.

Every variant starts from the same seed, so variants with the same --init start from the same
weights (a paired comparison). Written into the run folder: table.md, results.json,
solved_over_time.png and summary.json.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from matplotlib.figure import Figure
from torch import nn

from mirror_symmetry.config import DTYPES, SimulationOptions
from mirror_symmetry.report import snapshot_metrics, summarize
from mirror_symmetry.sim import (
    PATTERNS,
    Reduction,
    Setup,
    Simulation,
    check_kernel,
    check_simulation_memory,
    kept_bytes,
    simulate,
)
from mnistlab.cli import parse_config
from mnistlab.config import RunConfig, require
from mnistlab.runtime import Run, guarded_main
from mnistlab.study import Budget, Row

VariantName = Literal["paper", "vanilla-gd", "rmsprop", "weight-7", "weight-8", "silu"]
REDUCTIONS: tuple[Reduction, ...] = ("sum", "mean")
# The report's runs went to ~5000 epochs (its SiLU networks solved between 4000 and 5000).
REPORT_SWEEPS = 5000


@dataclass(frozen=True)
class Variant:
    name: VariantName
    description: str
    setup: Setup  # runs and loss_reduction are set per table row
    claim: str  # what the paper or the 2021 report says about it


VARIANTS = (
    Variant(
        "paper",
        "paper: momentum 0.9, lr 0.1, U(-0.3, 0.3)",
        Setup(sweeps=1425),
        "paper: solved (one network shown, 1425 sweeps)",
    ),
    Variant(
        "vanilla-gd",
        "plain GD, lr 0.1",
        Setup(sweeps=REPORT_SWEEPS, momentum=0.0),
        "report: < 1/90 reach 1.0, plateau at 0.875",
    ),
    Variant(
        "rmsprop",
        "RMSProp lr 0.8, momentum 0.1",
        Setup(sweeps=REPORT_SWEEPS, optimizer="rmsprop", lr=0.8, momentum=0.1),
        "report: ~1/25 reach 1.0",
    ),
    Variant(
        "weight-7",
        "plain GD, lr 0.1, symmetric patterns weighted 7x",
        Setup(sweeps=REPORT_SWEEPS, momentum=0.0, symmetric_weight=7.0),
        "report: ~1/20 reach 1.0",
    ),
    Variant(
        "weight-8",
        "plain GD, lr 0.1, symmetric patterns weighted 8x",
        Setup(sweeps=REPORT_SWEEPS, momentum=0.0, symmetric_weight=8.0),
        "report: ~1/6 reach 1.0, more end at 0.5",
    ),
    Variant(
        "silu",
        "plain GD, lr 0.1, SiLU hidden units, PyTorch init",
        Setup(sweeps=REPORT_SWEEPS, momentum=0.0, activation="silu", init="torch"),
        "report: ~99/100 reach 1.0 (best between sweeps 4000 and 5000)",
    ),
)


@dataclass
class TableOptions:
    runs: int = 1000
    """Networks per variant and loss reduction."""
    variants: tuple[VariantName, ...] = get_args(VariantName)
    """Which variants to run."""


@dataclass
class ReproduceConfig(RunConfig, SimulationOptions, TableOptions):
    """Options of mirror-symmetry-reproduce."""

    study: ClassVar[str] = "mirror-symmetry"

    log_every: int = 100
    """Record the outcome distribution (and log it) every N sweeps."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.runs >= 1, f"--runs must be >= 1, got {self.runs}")
        require(len(self.variants) > 0, "--variants needs at least one variant name")
        self.check_run_options(self)


def main(argv: Sequence[str] | None = None) -> None:
    guarded_main(lambda: reproduce_table(parse_config(ReproduceConfig, argv, __doc__ or "")))


# The 2021 report's rates (mean-reduced loss), as fractions of runs reaching accuracy 1.0.
REPORT_RATES = {
    "vanilla-gd": 1 / 90,
    "rmsprop": 1 / 25,
    "weight-7": 1 / 20,
    "weight-8": 1 / 6,
    "silu": 99 / 100,
}


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    """Every variant with both losses: 1,000 networks each (quick) or 10,000 (full). Rows
    compare the fraction solved with the 2021 report's rate; its tolerance is the half-width
    of our 95% interval. The paper gives no rate (it shows one solved network)."""
    runs = 1000 if budget == "quick" else 10_000
    results = folder / "runs" / ReproduceConfig.study / "table" / "results.json"
    if not results.is_file():  # seconds with the kernel: recomputed rather than resumed
        shutil.rmtree(results.parent, ignore_errors=True)
        reproduce_table(
            ReproduceConfig(runs=runs, out_dir=folder / "runs", run_name="table", tracker="none")
        )
        shutil.copy(results.parent / "solved_over_time.png", folder / "solved_over_time.png")
    rows = []
    for row in json.loads(results.read_text())["rows"]:
        solved = row["outcomes"]["1.0"]
        low, high = solved["ci95"]
        claim = REPORT_RATES.get(row["variant"]) if row["loss_reduction"] == "mean" else None
        rows.append(
            Row(
                setting=f"{row['variant']}, loss {row['loss_reduction']}, {row['sweeps']} sweeps",
                values=[100 * solved["fraction"]],
                unit="% of networks solved",
                source=None if claim is None else 100 * claim,
                source_ref="2021 course report" if claim else "",
                tolerance=100 * (high - low) / 2,
                higher_is_better=True,
                command=f"uv run --package mirror-symmetry mirror-symmetry-reproduce --runs {runs}",
                note=f"{runs} networks, 95% CI {100 * low:.1f}–{100 * high:.1f}",
            )
        )
    return rows


def table_setups(config: ReproduceConfig) -> list[tuple[Variant, Setup]]:
    """Each selected variant with each loss reduction, sized by --runs and --max-steps."""
    setups = []
    for variant in (v for v in VARIANTS if v.name in config.variants):
        sweeps = variant.setup.sweeps
        if config.max_steps is not None:
            sweeps = min(sweeps, config.max_steps)
        for reduction in REDUCTIONS:
            setup = dataclasses.replace(
                variant.setup, runs=config.runs, sweeps=sweeps, loss_reduction=reduction
            )
            setups.append((variant, setup))
    return setups


def reproduce_table(config: ReproduceConfig) -> None:
    run = Run(config)
    setups = table_setups(config)
    kept = 0  # every finished simulation is kept for the table and the figure
    for _, setup in setups:
        check_simulation_memory(
            setup, DTYPES[config.dtype], config.backend, config.log_every, run.device, kept
        )
        kept += kept_bytes(setup, config.log_every)
    if config.backend == "kernel":
        check_kernel()
    run.prepare()
    rows: list[dict[str, Any]] = []
    finals = nn.ModuleDict()
    simulations: dict[str, Simulation] = {}
    for variant, setup in setups:
        key = f"{variant.name}/{setup.loss_reduction}"
        run.print(f"{key}: {config.runs} networks x {setup.sweeps} sweeps")
        sim = simulate(
            setup,
            seed=config.seed,
            device=run.device,
            dtype=DTYPES[config.dtype],
            backend=config.backend,
            record_every=config.log_every,
            warn=run.print,
        )
        metrics = summarize(sim)
        final = snapshot_metrics(sim.history[-1])
        run.log({f"{key}/{name}": value for name, value in final.items()}, len(rows))
        rows.append({"variant": variant.name, "loss_reduction": setup.loss_reduction, **metrics})
        finals[f"{variant.name}_{setup.loss_reduction}"] = sim.final
        simulations[key] = sim
        run.print(f"  {row_line(variant, rows[-1])}")
    table = markdown_table(rows, config)
    if run.is_main:
        (run.run_dir / "table.md").write_text(table)
        run.write_json("results.json", {"rows": rows})
        plot_solved_over_time(simulations, run.run_dir / "solved_over_time.png")
    run.print(table)
    run.finish(
        {
            f"{row['variant']}/{row['loss_reduction']}": {
                **{name: r["fraction"] for name, r in row["outcomes"].items()},
                "median_sweeps_to_1.0": row["sweeps_to_1.0"] and row["sweeps_to_1.0"]["median"],
            }
            for row in rows
        },
        finals,
        steps=sum(s.setup.sweeps for s in simulations.values()),
        samples=sum(s.setup.runs * s.setup.sweeps * PATTERNS for s in simulations.values()),
        seconds=sum(s.seconds for s in simulations.values()),
    )


def _percent(rate: dict[str, Any]) -> str:
    low, high = rate["ci95"]
    return f"{100 * rate['fraction']:.1f}% ({100 * low:.1f}-{100 * high:.1f})"


def row_line(variant: Variant, row: dict[str, Any]) -> str:
    outcomes = row["outcomes"]
    return (
        f"loss {row['loss_reduction']}: 1.0 {_percent(outcomes['1.0'])}, "
        f"0.875 {_percent(outcomes['0.875'])}, 0.5 {_percent(outcomes['0.5'])} "
        f"[{variant.claim}] ({row['simulation_seconds']:.1f} s)"
    )


def markdown_table(rows: list[dict[str, Any]], config: ReproduceConfig) -> str:
    variants = {v.name: v for v in VARIANTS}
    header = (
        "| variant | loss | sweeps | accuracy 1.0 | stuck at 0.875 | at 0.5 | other "
        "| median sweeps to 1.0 | claimed | seconds |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for row in rows:
        variant = variants[row["variant"]]
        outcomes = row["outcomes"]
        spread = row["sweeps_to_1.0"]
        lines.append(
            f"| {variant.description} | {row['loss_reduction']} | {row['sweeps']} "
            f"| {_percent(outcomes['1.0'])} | {_percent(outcomes['0.875'])} "
            f"| {_percent(outcomes['0.5'])} | {_percent(outcomes['other'])} "
            f"| {spread['median'] if spread else '-'} | {variant.claim} "
            f"| {row['simulation_seconds'] + row['build_seconds']:.1f} |"
        )
    note = (
        f"\n{config.runs} networks per row, seed {config.seed}, {config.dtype}, "
        f"backend {', '.join(sorted({row['backend'] for row in rows}))}. Rates with 95% Wilson intervals, in percent. "
        "'loss sum' is the paper's 1/2 * sum over the 64 patterns, 'loss mean' is nn.MSELoss()'s "
        "mean (the 2021 report), whose gradient is 32 times smaller.\n"
    )
    return header + "\n".join(lines) + "\n" + note


def plot_solved_over_time(simulations: dict[str, Simulation], path: Path) -> None:
    """Fraction of networks at accuracy 1.0 against sweeps: a colour per variant, solid for the
    sum loss and dashed for the mean loss."""
    figure = Figure(figsize=(8, 4.5))
    axes = figure.subplots()
    variants = list(dict.fromkeys(key.split("/")[0] for key in simulations))
    for key, sim in simulations.items():
        sweeps = [s.sweep for s in sim.history]
        solved = [s.counts[0] / sum(s.counts) for s in sim.history]
        axes.plot(
            sweeps,
            solved,
            "-" if sim.setup.loss_reduction == "sum" else "--",
            color=f"C{variants.index(key.split('/')[0])}",
            label=key,
        )
    axes.set_xlabel("sweep")
    axes.set_ylabel("fraction of networks at accuracy 1.0")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
