"""Throughput and peak memory of the Kakuritsu layer against a dense nn.Linear, same run.

    uv run --package kakuritsu python benchmarks/bench_kakuritsu_layer.py [--quick] [--device cuda]

For batch 64 and the layer sizes of the MNIST demo head (9216 -> 128) and an ImageNet head
(2048 -> 1000), times a training step (forward + backward, input and weight gradients) of:
  dense     nn.Linear(bias=False), the baseline every ratio refers to
  exact     KakuritsuLinear(mode="exact"), every mask bit drawn
  gaussian  KakuritsuLinear(mode="gaussian"), the moment-matched approximation
  naive     torch.rand(B, out, in) < p, torch.where, bmm: the straightforward exact layer, run
            only where its full mask is small enough (the MNIST head)
The variants run in interleaved rounds so that a machine shared with other work slows them alike;
the reported step time is the median over rounds.

Peak memory is the peak of the bytes allocated during one step on top of what was allocated
before it (parameters and input excluded). On CUDA it is torch.cuda.max_memory_allocated; on CPU
it is replayed from the allocation and free events that torch.profiler(profile_memory=True)
records for every tensor the CPU allocator hands out during the step. (The profiler's warning
that a block "was allocated before the profiling started" is expected: it is a tensor from before
the step, e.g. the previous gradient, freed during it.)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch._C._profiler import _EventType  # the profiler's raw event tree: allocations + frees
from torch.profiler import ProfilerActivity, profile

from kakuritsu.layers import DEFAULT_MAX_CHUNK_ELEMENTS, KakuritsuLinear
from mnistlab.provenance import machine as machine_info
from mnistlab.provenance import machine_line

BATCH = 64
P = 0.5
SHAPES = {"MNIST demo head": (9216, 128), "ImageNet head": (2048, 1000)}
NAIVE_MAX_SYNAPSES = 80_000_000  # run the naive layer only below this many synapses per step
NAIVE_BYTES_PER_SYNAPSE = 5  # float32 uniforms + bool mask, then bool mask + masked weights


class NaiveKakuritsu(nn.Module):
    """The exact layer written the obvious way: one full [B, out, in] mask per step."""

    def __init__(self, weight: Tensor, p: float) -> None:
        super().__init__()
        self.weight = weight
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        keep = torch.rand(x.shape[0], *self.weight.shape, device=x.device) < self.p
        sampled = torch.bmm(torch.where(keep, self.weight.detach(), 0.0), x.detach().unsqueeze(-1))
        dense = F.linear(x, self.weight)  # straight-through: adds zero, carries the dense grads
        return sampled.squeeze(-1) + (dense - dense.detach())


@dataclass
class Variant:
    name: str
    module: nn.Module
    step_times: list[float]


def machine(device: torch.device) -> str:
    return (
        f"machine: {machine_line(machine_info())}, {torch.get_num_threads()} intra-op threads"
        f"\ndevice measured: {device}"
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(module: nn.Module, x: Tensor, grad: Tensor) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).backward(grad)

    return step


def peak_step_bytes(step: Callable[[], None], device: torch.device) -> int:
    """Peak bytes allocated during one step beyond those allocated before it (after a warm-up
    step, so that one-off allocations of the first call are not counted)."""
    step()
    synchronize(device)
    if device.type == "cuda":
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = []  # (time, address, bytes allocated; negative when freed)
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            fields = node.extra_fields
            events.append((node.start_time_ns, fields.ptr, fields.alloc_size))
        stack.extend(node.children)
    # Replay the step's own allocations: frees of blocks from before the step are left out.
    live: dict[int, int] = {}
    current = peak = 0
    for _, ptr, size in sorted(events):
        if size > 0:
            live[ptr] = size
            current += size
            peak = max(peak, current)
        elif ptr in live:
            current -= live.pop(ptr)
    return peak


def time_variants(
    variants: list[Variant],
    steps: dict[str, Callable[[], None]],
    seconds: float,
    device: torch.device,
) -> None:
    """Interleaved rounds of one step per variant until `seconds` have passed (3 rounds min)."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(variants[0].step_times) < 3:
        for variant in variants:
            synchronize(device)
            t0 = time.perf_counter()
            steps[variant.name]()
            synchronize(device)
            variant.step_times.append(time.perf_counter() - t0)


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:9.1f} MiB"


def bench_shape(label: str, n_in: int, n_out: int, seconds: float, device: torch.device) -> None:
    synapses = BATCH * n_in * n_out
    print(
        f"\n== {label}: batch {BATCH}, {n_in} -> {n_out}, p = {P} ({synapses / 1e6:.1f}M synapses)"
    )
    torch.manual_seed(0)
    dense = nn.Linear(n_in, n_out, bias=False, device=device)
    exact = KakuritsuLinear(n_in, n_out, P, mode="exact", device=device)
    gaussian = KakuritsuLinear(n_in, n_out, P, mode="gaussian", device=device)
    variants = [
        Variant("dense", dense, []),
        Variant("exact", exact, []),
        Variant("gaussian", gaussian, []),
    ]
    if synapses <= NAIVE_MAX_SYNAPSES:
        variants.append(Variant("naive", NaiveKakuritsu(exact.weight, P), []))

    x = torch.randn(BATCH, n_in, device=device, requires_grad=True)
    grad = torch.randn(BATCH, n_out, device=device)
    steps = {v.name: make_step(v.module, x, grad) for v in variants}
    peaks = {v.name: peak_step_bytes(steps[v.name], device) for v in variants}
    time_variants(variants, steps, seconds, device)

    dense_time = statistics.median(variants[0].step_times)
    print(
        f"{'variant':9s} {'step (median)':>14s} {'samples/s':>10s} {'x dense':>8s} "
        f"{'best step':>12s} {'peak mem':>13s}"
    )
    for variant in variants:
        step_time = statistics.median(variant.step_times)
        print(
            f"{variant.name:9s} {step_time * 1e3:11.2f} ms {BATCH / step_time:10.0f} "
            f"{step_time / dense_time:7.1f}x {min(variant.step_times) * 1e3:9.2f} ms "
            f"{mib(peaks[variant.name])}   ({len(variant.step_times)} steps)"
        )
    units = min(n_out, max(1, DEFAULT_MAX_CHUNK_ELEMENTS // n_in))  # as KakuritsuLinear chunks
    rows = min(BATCH, max(1, DEFAULT_MAX_CHUNK_ELEMENTS // (units * n_in)))
    print(
        f"a full-mask layer needs >= {mib(synapses * NAIVE_BYTES_PER_SYNAPSE).strip()} "
        f"({NAIVE_BYTES_PER_SYNAPSE} B x {synapses / 1e6:.1f}M synapses); exact mode chunks: "
        f"{rows} row(s) x {units} units x {n_in} inputs = {rows * units * n_in} synapses"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per variant (smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, help="timing budget per layer size")
    args = parser.parse_args()
    device = torch.device(args.device)
    seconds = args.seconds if args.seconds is not None else (0.5 if args.quick else 20.0)
    print(machine(device))
    for label, (n_in, n_out) in SHAPES.items():
        bench_shape(label, n_in, n_out, seconds, device)


if __name__ == "__main__":
    main()
