"""Speed of the batched mirror-symmetry simulation against the usual per-network training loop.

    uv run --package mirror-symmetry python benchmarks/bench_mirror_symmetry.py [--quick]

Times the paper's setup (sigmoid, momentum 0.9, lr 0.1, 1/2-sum loss, float32) four ways:
  kernel    simulate(..., backend="kernel"): the fused C loop, all runs x sweeps measured; its
            build (or cache load) is timed separately
  compiled  backend="compile": N networks as one tensor program, each sweep fused by
            torch.compile, on the same N for fewer sweeps, extrapolated per run-sweep
  eager     backend="eager": the same program without torch.compile, extrapolated likewise
  per-run   one nn.Module and one torch.optim.SGD per network, a Python loop over networks and
            sweeps (the usual way), on a few networks for fewer sweeps, extrapolated
Extrapolations scale the measured time by (runs x sweeps) / (measured runs x measured sweeps).
On a shared machine other work slows every row (the output shows the load average before and
after); compare rows of one run, and repeat runs when the load was high.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from mirror_symmetry.reference import MirrorNet, train_reference
from mirror_symmetry.setup import Setup
from mirror_symmetry.sim import MirrorNets, initial_theta, simulate
from mnistlab.provenance import machine as machine_info
from mnistlab.provenance import machine_line


def machine() -> str:
    return (
        f"{machine_line(machine_info())}, {torch.get_num_threads()} torch threads; "
        f"Python {platform.python_version()}; {load()}"
    )


def load() -> str:
    """Other work on a shared machine slows every row; the load average shows how much."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def per_run_loop_seconds(runs: int, sweeps: int) -> float:
    """Seconds for `runs` networks trained one after another, the usual way."""
    setup = Setup(runs=runs, sweeps=sweeps)
    start = MirrorNets(initial_theta(runs, 0, setup.init, setup.init_range))
    started = time.perf_counter()
    for run in range(runs):
        net = MirrorNet(setup.activation).load_run(start, run)
        train_reference(net, setup, sweeps)
    return time.perf_counter() - started


def batched_row(name: str, runs: int, sweeps: int, total: int, device: str) -> float:
    """Time `runs` x `sweeps` with one backend; print and return the time for `total` run-sweeps."""
    sim = simulate(
        Setup(runs=runs, sweeps=sweeps), seed=0, device=device, backend=name, record_every=sweeps
    )
    if sim.backend != name:
        print(f"warning: {name} was not available; the row below ran {sim.backend}")
    seconds = sim.seconds / (runs * sweeps) * total
    extrapolated = "" if runs * sweeps == total else f"; extrapolated: {seconds:,.1f} s"
    print(
        f"{name:9} {runs} runs x {sweeps} sweeps: {sim.seconds:.2f} s "
        f"(+{sim.build_seconds:.1f} s build), {sim.run_sweeps_per_second:,.0f} run-sweeps/s"
        f"{extrapolated}"
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--sweeps", type=int, default=10_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    runs, sweeps = (1000, 300) if args.quick else (args.runs, args.sweeps)
    compiled_sweeps, eager_sweeps = (100, 20) if args.quick else (1000, 300)
    loop_runs, loop_sweeps = (2, 50) if args.quick else (10, 300)
    total = runs * sweeps
    print(f"machine: {machine()}; device {args.device}")
    print(f"target: {runs} runs x {sweeps} sweeps")

    seconds = {}
    if args.device == "cpu":
        seconds["kernel"] = batched_row("kernel", runs, sweeps, total, args.device)
    seconds["compile"] = batched_row("compile", runs, compiled_sweeps, total, args.device)
    seconds["eager"] = batched_row("eager", runs, eager_sweeps, total, args.device)

    loop = per_run_loop_seconds(loop_runs, loop_sweeps)
    loop_total = loop / (loop_runs * loop_sweeps) * total
    print(
        f"per-run   {loop_runs} runs x {loop_sweeps} sweeps: {loop:.2f} s, "
        f"{loop_runs * loop_sweeps / loop:,.0f} run-sweeps/s; "
        f"extrapolated: {loop_total:,.0f} s ({loop_total / 3600:.1f} h)"
    )
    fastest = min(seconds, key=seconds.get)
    ratios = ", ".join(f"{name} {loop_total / s:,.0f}x" for name, s in seconds.items())
    others = ", ".join(
        f"{name} {seconds[name] / seconds[fastest]:.1f}x" for name in seconds if name != fastest
    )
    print(f"speed-up over the per-run loop: {ratios}")
    print(f"{fastest} is faster than {others} ({load()})")


if __name__ == "__main__":
    main()
