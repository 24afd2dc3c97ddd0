"""`--mixed-precision auto` (the speed presets' default): bf16 autocast or fp32, whichever trains
the preset's net faster on this machine, measured once per machine and kept.

bf16 is not faster on every CPU: the speedrun trained in 3.0-3.8 s in bf16 on a Xeon with AMX
and 2.1-3.0 s on an AMD EPYC with AVX-512 BF16, but on a Xeon with AVX-512 BF16 and no AMX it
took 3.3-3.8 s in bf16 against 2.6-3.1 s in fp32 (the same seeds, interleaved). The choice is
kept in the cache folder under a key of the CPU model, its bf16 flags, the torch version and the
thread count, so every later run on the machine makes the same choice (a run's precision is
part of its result) and pays nothing for it; config.json records the precision that ran.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mnistlab.data import cache_dir
from mnistlab.provenance import machine
from simplenet.model import build_model

CACHE_FILE = "simplenet-precision.json"
BATCH = 256
WARMUP_STEPS = 3
TIMED_STEPS = 10
ROUNDS = 2  # each precision timed this often, in turns, keeping its fastest round


def machine_key() -> str:
    info = machine()
    flags = "amx" if info["amx"] else ("avx512_bf16" if info["avx512_bf16"] else "no-bf16")
    return f"{info['cpu']} | {flags} | torch {info['torch']} | {torch.get_num_threads()} threads"


def step_seconds(model_name: str, bf16: bool, generator: torch.Generator) -> float:
    """Seconds per training step of the preset's net (batch 256, channels-last, SGD), fastest
    of the timed steps after a warm-up. Random images: the time does not depend on them."""
    model = build_model(model_name).to(memory_format=torch.channels_last)  # type: ignore[arg-type]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    images = torch.rand(BATCH, 1, 28, 28, generator=generator)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (BATCH,), generator=generator)
    times = []
    for step in range(WARMUP_STEPS + TIMED_STEPS):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= WARMUP_STEPS:
            times.append(time.perf_counter() - started)
    return min(times)


def measure(model_name: str) -> dict[str, float]:
    """Seconds per step in fp32 ("no") and in bf16, timed in turns; the global random state (a
    run's seed) is left as it was."""
    generator = torch.Generator().manual_seed(0)
    best = {"no": float("inf"), "bf16": float("inf")}
    with torch.random.fork_rng(devices=[]):  # building the nets draws their initial weights
        for _ in range(ROUNDS):
            for precision in best:
                seconds = step_seconds(model_name, precision == "bf16", generator)
                best[precision] = min(best[precision], seconds)
    return best


def fastest_precision(model_name: str, cache: Path | None = None) -> str:
    """ "bf16" or "no" for training `model_name` on this machine: bf16 on a GPU; on a CPU the
    faster of the two, measured the first time and read from the cache after."""
    if torch.cuda.is_available():
        return "bf16"
    path = (cache or cache_dir()) / CACHE_FILE
    key = f"{machine_key()} | {model_name}"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        seconds = measure(model_name)
        known[key] = {"choice": min(seconds, key=seconds.__getitem__), "step_seconds": seconds}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(known, indent=1))
            partial.replace(path)
        except OSError:
            pass  # an unwritable cache: measured again next time, the choice is the same kind
    return known[key]["choice"]
