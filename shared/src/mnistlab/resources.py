"""What a size flag may ask for: refused before anything is allocated when it cannot fit."""

from __future__ import annotations

import psutil
import torch

from mnistlab.cli import UsageError, two_sizes


def check_memory(
    needed_bytes: float, what: str, fix: str, device: torch.device | None = None
) -> None:
    """Refuse, before allocating, a size that cannot fit: RAM on the CPU, free memory on a GPU."""
    if device is not None and device.type == "cuda":
        available = torch.cuda.mem_get_info(device)[0]
    else:
        available = psutil.virtual_memory().available
    if needed_bytes > available:
        need, have = two_sizes(needed_bytes, available, "GiB")
        raise UsageError(f"{what} needs about {need} but {have} is available; {fix}")
