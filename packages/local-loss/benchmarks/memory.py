"""Peak training memory of vgg8b: global backprop vs local predsim, at equal batch size.

    uv run --package local-loss python packages/local-loss/benchmarks/memory.py [--batch 128]

Each schedule runs in its own subprocess (a fresh allocator, so peaks do not mix), builds the
paper's vgg8b on MNIST-sized input, takes --steps training steps with Adam (default 1), and reports its peak
resident set size (ru_maxrss; on CUDA torch.cuda.max_memory_allocated), how far the peak rose
above the memory held just before the first step (interpreter, torch, parameters, input), and
that rise less the gradients and Adam moments (12 bytes per parameter), i.e. the activations:
  global              one backward through the whole net (the baseline of every ratio)
  predsim             local losses as training runs them in the shared loop: the detached block
                      losses summed, one backward per step
  predsim-blockwise   the same gradients, each block's backward run as soon as its loss exists
                      (`LocalLossNet.backward_blockwise`): a block's activations are freed before
                      the next block runs, the method's promise
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys

import torch

from local_loss.config import LocalLossConfig
from local_loss.model import LocalLossNet
from local_loss.train import build_optimizer

SCHEDULES = ("global", "predsim", "predsim-blockwise")


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure(schedule: str, batch: int, steps: int, device: torch.device) -> dict:
    """Runs inside the child process: build, step, report peaks in bytes."""
    torch.manual_seed(0)
    torch.set_num_threads(1)  # memory does not depend on it; a shared CPU stays usable
    config = LocalLossConfig(net="vgg8b", loss="global" if schedule == "global" else "predsim")
    model = LocalLossNet(config).to(device).train()
    optimizer, _ = build_optimizer(model, config)
    images = torch.randn(batch, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    before = peak_bytes(device)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        if schedule == "predsim-blockwise":
            model.backward_blockwise(images, labels)
        else:
            model(images, labels).backward()
        optimizer.step()
    peak = peak_bytes(device)
    parameters = sum(p.numel() for p in model.parameters())
    # The rise holds the gradients and Adam's two moments (12 bytes per parameter) besides the
    # activations and temporaries of the step.
    return {
        "schedule": schedule,
        "peak": peak,
        "rise": peak - before,
        "parameters": parameters,
        "activations": peak - before - 12 * parameters,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1, help="Adam's state is made in step 1")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--child", choices=SCHEDULES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.batch, args.steps, torch.device(args.device))))
        return
    results = {}
    for schedule in SCHEDULES:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                schedule,
                "--batch",
                str(args.batch),
                "--steps",
                str(args.steps),
                "--device",
                args.device,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[schedule] = json.loads(done.stdout.strip().splitlines()[-1])
    unit = "CUDA max allocated" if args.device.startswith("cuda") else "peak RSS"
    print(
        f"vgg8b, batch {args.batch}, {args.steps} Adam steps, {args.device} "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__}; {unit}:"
    )
    base = results["global"]
    print(
        "| schedule | parameters | peak MiB | rise MiB | activations MiB | peak / global | "
        "rise / global | activations / global |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for schedule, r in results.items():
        ratios = [r[k] / base[k] for k in ("peak", "rise", "activations")]
        print(
            f"| {schedule} | {r['parameters'] / 1e6:.1f}M | {r['peak'] / 2**20:.0f} | "
            f"{r['rise'] / 2**20:.0f} | {r['activations'] / 2**20:.0f} | "
            + " | ".join(f"{ratio:.2f}" for ratio in ratios)
            + " |"
        )


if __name__ == "__main__":
    main()
