"""What a size flag may ask for: refused before anything is allocated when it cannot fit, and
a cap that turns what slips past (batch activations) into an allocator error, not a kill."""

from __future__ import annotations

import contextlib
import re
import resource
import sys
from collections.abc import Iterator

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


@contextlib.contextmanager
def memory_capped_at_free_ram() -> Iterator[None]:
    """On a CPU-only Linux machine, cap this process's private memory at what it holds now plus
    what the machine has free. Without the cap, Linux promises memory it does not have, and a
    size too large for the machine (a big --batch-size's activations) ends in the kernel's
    out-of-memory killer, which may kill other programs too; with it, the allocation fails and
    `guarded_main` says so in one line. The previous limit is restored after."""
    if sys.platform != "linux" or torch.cuda.is_available():
        yield
        return
    previous = resource.getrlimit(resource.RLIMIT_DATA)
    soft, hard = previous
    cap = psutil.Process().memory_info().data + psutil.virtual_memory().available
    cap += psutil.swap_memory().free
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft == resource.RLIM_INFINITY or cap < soft:
        resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, previous)


# "you tried to allocate 123 bytes" (CPU), "Tried to allocate 2.00 GiB" (CUDA).
_REFUSED_BYTES = re.compile(
    r"tried to allocate (\d+ bytes|\d+(?:\.\d+)? ?[KMGT]?i?B)", re.IGNORECASE
)


def out_of_memory_line(exc: BaseException) -> str | None:
    """One line for an allocator's refusal (CPU or CUDA), or None for any other error."""
    text = str(exc)
    oom = isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in text
    )
    if not oom:
        return None
    asked = _REFUSED_BYTES.search(text)
    if asked and asked.group(1).endswith(" bytes"):
        refused = f" {int(asked.group(1).split()[0]) / 2**30:.1f} GiB"
    else:
        refused = f" {asked.group(1)}" if asked else ""
    device = "GPU" if isinstance(exc, torch.OutOfMemoryError) else "this machine"
    return (
        f"out of memory: the allocator refused{refused or ' memory'} ({device} has no more free); "
        "the batch's activations or the model are too large: choose a smaller --batch-size "
        "(or a smaller model)"
    )
