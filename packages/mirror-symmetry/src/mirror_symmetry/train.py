"""`uv run --package mirror-symmetry train`: one batched simulation, summarised and plotted."""

from __future__ import annotations

import dataclasses

from mirror_symmetry.backend import check_kernel
from mirror_symmetry.config import MirrorConfig
from mirror_symmetry.report import describe, plot_outcomes, snapshot_metrics, summarize
from mirror_symmetry.setup import PATTERNS, setup_of
from mirror_symmetry.sim import Simulation, check_simulation_memory, simulate
from mirror_symmetry.solution import plot_network, solution_shape, typical_network
from mnistlab.run import Run

DESCRIPTION = (
    "Rumelhart, Hinton & Williams (1986) mirror symmetry as a statistics question: train N "
    "independent 6-2-1 networks as one batch and count how many reach accuracy 1.0, stick at "
    "0.875 or 0.5, or end elsewhere, and when. The defaults are the paper's setup."
)


def train(config: MirrorConfig) -> dict:
    with Run(config) as run:
        setup = dataclasses.replace(setup_of(config), sweeps=config.sweeps_to_run)
        # Refused before the run folder exists.
        check_simulation_memory(
            setup, config.torch_dtype, config.backend, config.log_every, run.device
        )
        if config.backend == "kernel":
            check_kernel()
        run.prepare()
        sim = simulate(
            setup,
            seed=config.seed,
            device=run.device,
            dtype=config.torch_dtype,
            backend=config.backend,
            record_every=config.log_every,
            on_record=lambda snapshot: run.log(snapshot_metrics(snapshot), snapshot.sweep),
            warn=run.print,
        )
        metrics = summarize(sim)
        if run.is_main:
            metrics["figures"] = write_figures(sim, run)
        run.print(describe(metrics))
        return run.finish(
            metrics,
            sim.final,
            steps=setup.sweeps,
            seconds=sim.seconds,
            samples=setup.runs * setup.sweeps * PATTERNS,
        )  # pattern presentations


def write_figures(sim: Simulation, run: Run) -> dict[str, str | int | None]:
    """outcomes.png, and weights.png for a typical solved network (when one is solved)."""
    setup = sim.setup
    label = (
        f"{setup.runs} networks, {setup.optimizer} lr {setup.lr:g} momentum {setup.momentum:g}, "
        f"{setup.activation}, loss {setup.loss_reduction}, seed {sim.seed}"
    )
    plot_outcomes(sim.history, run.run_dir / "outcomes.png", label)
    solved = sim.final_correct == PATTERNS
    typical = typical_network(solution_shape(sim.final), solved, sim.solved_at)
    if typical is None:
        run.print("no network reached accuracy 1.0: no weights figure")
        return {"outcomes": "outcomes.png", "weights": None, "weights_run": None}
    plot_network(
        sim.final,
        typical,
        run.run_dir / "weights.png",
        f"network {typical} (solved after {int(sim.solved_at[typical])} sweeps); {label}",
    )
    return {"outcomes": "outcomes.png", "weights": "weights.png", "weights_run": typical}
