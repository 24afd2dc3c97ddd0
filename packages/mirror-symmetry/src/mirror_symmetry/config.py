"""Command-line options of `train` for this study: the shared run options plus the Setup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from mirror_symmetry.backend import Backend
from mirror_symmetry.setup import Setup
from mnistlab.config import RunConfig, require

DTYPES = {"float32": torch.float32, "float64": torch.float64}
Dtype = Literal["float32", "float64"]


@dataclass
class SimulationOptions:
    """How the simulation is computed (not what): shared by `train` and `reproduce`."""

    dtype: Dtype = "float32"
    """Floating-point type of the simulation."""
    backend: Backend = "auto"
    """kernel: the fused C loop (CPU, float32; built once with the system C compiler); compile: torch.compile (any device; compiling takes seconds); eager: plain torch operations; auto: kernel where it applies, else compile, each falling back to the next with a warning."""

    def check_run_options(self, config: RunConfig) -> None:
        """Refuse the shared options that mean nothing for a simulation of a few seconds."""
        require(
            config.resume is None,
            "--resume is not supported by mirror-symmetry: a simulation takes seconds and keeps "
            "no checkpoints; start a new run with the same --seed instead",
        )
        require(
            config.mixed_precision == "no",
            f"--mixed-precision {config.mixed_precision} is not supported by mirror-symmetry; "
            "use --dtype float32 or float64",
        )
        require(
            self.backend != "kernel" or self.dtype == "float32",
            "--backend kernel computes in float32; use --backend compile for --dtype float64",
        )


@dataclass
class MirrorConfig(RunConfig, SimulationOptions, Setup):
    """Options of `uv run --package mirror-symmetry train`; the defaults are the paper's setup."""

    study: ClassVar[str] = "mirror-symmetry"

    log_every: int = 25
    """Record the outcome distribution (and log it) every N sweeps."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check()
        self.check_run_options(self)

    @property
    def sweeps_to_run(self) -> int:
        """--sweeps, capped by --max-steps (one optimizer step is one sweep)."""
        return self.sweeps if self.max_steps is None else min(self.sweeps, self.max_steps)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]
