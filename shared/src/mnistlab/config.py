"""The options every study shares. Each study's config is a dataclass that extends `RunConfig`."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, get_args, get_type_hints

from mnistlab.cli import UsageError

# Fields that may change between a run and its resumption without changing what is computed.
RESUMABLE_FIELDS = frozenset(
    {
        "out_dir",
        "run_name",
        "resume",
        "tracker",
        "data_dir",
        "epochs",
        "max_steps",
        "log_every",
        "ddp_timeout",
    }
)


@dataclass
class RunConfig:
    # The study's name: its run folder, its `uv run --package NAME train`, its report rows.
    study: ClassVar[str] = "study"
    # Fields a resumed run may change (a study adds its own, e.g. an evaluate-only flag).
    resumable_fields: ClassVar[frozenset[str]] = RESUMABLE_FIELDS

    out_dir: Path = Path("runs")
    """Runs are written to OUT_DIR/<study>/<run-name>/."""
    run_name: str | None = None
    """Run folder name (default: <date>-<time>-s<seed>). An existing run is never overwritten."""
    seed: int = 0
    """Seeds model init, data order and augmentation; the same seed reproduces a run."""
    resume: str | None = None
    """Resume from 'latest' (newest run of this study), a run folder, or a checkpoint folder."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (smoke runs); the run still evaluates and summarises."""
    log_every: int = 100
    """Log training loss every N steps."""
    tracker: Literal["wandb", "none"] = "wandb"
    """Experiment tracker. wandb runs offline when no wandb login exists; it never blocks a run."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """Autocast precision (Accelerate); 'no' is exact fp32; fp16 needs a GPU."""
    data_dir: Path | None = None
    """Dataset root (default: $MNISTLAB_DATA, else the user cache); raw .gz files are enough."""
    ddp_timeout: int = 600
    """Seconds a process waits for a silent peer (several processes) before the run stops."""

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--max-steps must be >= 1, got {self.max_steps}")
        if self.log_every < 1:
            raise UsageError(f"--log-every must be >= 1, got {self.log_every}")
        if self.ddp_timeout < 1:
            raise UsageError(f"--ddp-timeout must be >= 1 second, got {self.ddp_timeout}")
        if self.run_name is not None and (not self.run_name or "/" in self.run_name):
            raise UsageError(f"--run-name must be a plain folder name, got {self.run_name!r}")


def require(condition: bool, message: str) -> None:
    """Config validation helper: raise a one-line UsageError unless `condition` holds."""
    if not condition:
        raise UsageError(message)


def from_jsonable(config_cls: type, values: dict) -> object:
    """Rebuild a config saved by `to_jsonable` (paths and tuples restored)."""
    hints = get_type_hints(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}

    def restore(name: str, value: object) -> object:
        hint = hints[name]
        if value is not None and (hint is Path or Path in get_args(hint)):
            return Path(value)  # type: ignore[arg-type]
        return tuple(value) if isinstance(value, list) else value

    return config_cls(**{k: restore(k, v) for k, v in values.items() if k in names})


def to_jsonable(config: object) -> dict:
    """The resolved config as plain JSON values (paths as strings)."""

    def convert(value: object) -> object:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [convert(v) for v in value]
        return value

    return {f.name: convert(getattr(config, f.name)) for f in dataclasses.fields(config)}


def train_command(config: RunConfig) -> str:
    """The `uv run --package STUDY train ...` that computes `config`: every field that differs
    from the study's defaults, as a flag. Recorded for runs a reproduction starts in-process."""
    default = to_jsonable(type(config)())
    args = ["uv", "run", "--package", type(config).study, "train"]
    for name, value in to_jsonable(config).items():
        if name == "resume" or value == default[name]:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return shlex.join(args)


_in_process: contextvars.ContextVar[bool] = contextvars.ContextVar("in_process", default=False)


@contextlib.contextmanager
def started_in_process() -> Iterator[None]:
    """Runs started inside this block (by a reproduction, not the study's command line) record
    `train_command` as their command."""
    token = _in_process.set(True)
    try:
        yield
    finally:
        _in_process.reset(token)


def launched_command(config: RunConfig, argv: list[str]) -> str:
    """The command a run's summary records: for an in-process run the train command that
    computes the same thing; else the arguments given, after `uv run --package STUDY train`
    in place of the interpreter and its entry point (`…/.venv/bin/python …/bin/train` or
    `python -m STUDY`), whose absolute paths would only hold on the machine that ran it."""
    if _in_process.get():
        return train_command(config)
    args = argv[1:]  # after the interpreter
    if args[:1] == ["-m"]:
        args = args[2:]
    elif args and Path(args[0]).name == "train":
        args = args[1:]
    else:  # some other way in: kept as it was
        return shlex.join(argv)
    return shlex.join(["uv", "run", "--package", type(config).study, "train", *args])
