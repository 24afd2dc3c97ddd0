"""Training speed of the paper's MNIST mlp: our step against the original code's plain loop.

    uv run python -m mnistlab.bench packages/local-loss/benchmarks/speed.py [--steps 40]

One process, the same random batches of 128 images, the step alone (forward, backward,
optimizer; no data loading, which the shared loop does on the device and the original with a
DataLoader). For each loss, three ways to take a step, timed in turns (--repeats rounds of
--steps steps each, after warm-up) so that a drifting machine speed hits all of them alike:
  plain      the original code's style (anokland/local-loss): fp32; predsim steps one Adam per
             block (and one for the output layer), each right after that block's own backward;
             global is one Adam and one backward
  ours-fp32  the study's step as `fit` runs it: the detached block losses summed, one backward,
             one fused Adam with a param group per block (`build_optimizer`)
  ours-bf16  the same under bf16 autocast, what `--mixed-precision bf16` runs (weights,
             BatchNorm and Adam stay fp32)
  floor-fp32 the least an fp32 step of this model can cost here: the matrix products of one
             ours-fp32 step (recorded, then replayed on tensors of the same sizes and strides)
             and its fused Adam update, nothing else; no fp32 step can beat its ratio to plain
  floor-bf16 the same for the ours-bf16 step (its matrix products run in bf16)
It prints the median samples/s of each and its ratio to `plain` of the same loss. bf16 pays
very differently between CPUs (with AMX about 1.7x fp32 for matmuls; with AVX-512 BF16 alone
less), so the header's machine line says which was measured.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from local_loss.config import LocalLossConfig
from local_loss.model import LocalLossNet
from local_loss.train import build_optimizer

BATCH = 128
LOSSES = ("global", "predsim")
WAYS = ("plain", "ours-fp32", "ours-bf16", "floor-fp32", "floor-bf16")
MATRIX_PRODUCTS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default}


class RecordMatrixProducts(TorchDispatchMode):
    """Records every matrix product (forward and backward) run inside it: op and arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch._ops.OpOverload, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if func in MATRIX_PRODUCTS:
            self.calls.append((func, args))
        return func(*args, **(kwargs or {}))


def same_layout(tensor: torch.Tensor) -> torch.Tensor:
    """A fresh random tensor of `tensor`'s sizes and strides (a transposed view stays one)."""
    return torch.empty_strided(
        tensor.shape, tensor.stride(), dtype=tensor.dtype, device=tensor.device
    ).normal_()


def step_function(way: str, loss: str, device: torch.device) -> Callable[[], None]:
    """A closure taking one training step of a fresh seeded mlp, the way `way` does."""
    torch.manual_seed(0)
    config = LocalLossConfig(loss=loss)
    model = LocalLossNet(config).to(device).train()
    images = torch.randn(BATCH, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (BATCH,), device=device)
    if way == "plain":
        optimizers = [torch.optim.Adam(group, lr=config.lr) for group in model.parameter_groups()]

        def plain() -> None:
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            if config.local:
                model.backward_blockwise(images, labels)
            else:
                model(images, labels).backward()
            for optimizer in optimizers:
                optimizer.step()

        return plain
    optimizer, _ = build_optimizer(model, config)
    bf16 = way.endswith("bf16")
    if way.startswith("floor"):
        recorder = RecordMatrixProducts()
        with recorder:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss_value = model(images, labels)
            loss_value.backward()
        products = [
            (op, [same_layout(a) if isinstance(a, torch.Tensor) else a for a in args])
            for op, args in recorder.calls
        ]

        def floor() -> None:
            for op, args in products:
                op(*args)
            optimizer.step()

        return floor

    def ours() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss_value = model(images, labels)
        optimizer.zero_grad(set_to_none=True)
        loss_value.backward()
        optimizer.step()

    return ours


def timed(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Samples per second over `steps` steps."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * BATCH / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds, each way in turn")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"mlp 784-3x1024-10, batch {BATCH}, device {device}, {torch.get_num_threads()} threads, "
        f"{args.repeats} rounds of {args.steps} steps, median samples/s"
    )
    print("| loss | way | samples/s | ms/step | vs plain |")
    print("|---|---|---|---|---|")
    for loss in LOSSES:
        steps = {way: step_function(way, loss, device) for way in WAYS}
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        rounds: dict[str, list[float]] = {way: [] for way in WAYS}
        for _ in range(args.repeats):
            for way, step in steps.items():
                rounds[way].append(timed(step, args.steps, device))
        plain = statistics.median(rounds["plain"])
        for way in WAYS:
            speed = statistics.median(rounds[way])
            print(
                f"| {loss} | {way} | {speed:.0f} | {1000 * BATCH / speed:.1f} | "
                f"{speed / plain:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
