"""The process entry of a study's command line: its config from argv (and from the run being
resumed), and one line instead of a traceback for bad input, Ctrl-C, SIGTERM and a lost peer."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mnistlab.cli import UsageError, fail, first_line, parse_config
from mnistlab.config import RunConfig, from_jsonable
from mnistlab.resources import memory_capped_at_free_ram, out_of_memory_line
from mnistlab.run_folder import CONFIG, find_checkpoint, run_dir_of


def parse_run_config(
    config_cls: type[RunConfig], argv: Sequence[str] | None, description: str
) -> RunConfig:
    """Parse a study's command line. With --resume, flags not given on the command line take
    the values saved with the run being resumed, so `--resume RUN` alone continues it as it was.
    `resume` then names the checkpoint found, so the run loads that one without looking again.
    """
    config = parse_config(config_cls, argv, description)
    if config.resume is None:
        return config
    try:
        checkpoint = find_checkpoint(config.out_dir / config_cls.study, config.resume)
        saved = json.loads((run_dir_of(checkpoint) / CONFIG).read_text())
        default = from_jsonable(config_cls, {**saved, "resume": str(checkpoint)})
    except UsageError as error:
        fail(str(error))
    except (OSError, ValueError, TypeError) as exc:
        fail(
            f"--resume {config.resume}: its config.json cannot be read ({exc}); pass a run "
            "folder written by this version"
        )
    config = parse_config(config_cls, argv, description, default=default)
    return dataclasses.replace(config, resume=str(checkpoint))


@dataclass(frozen=True)
class Abandoned:
    """What the run an exception escaped from kept, and where that run ran: what
    `guarded_main` says about it. `Run` attaches it to the exception on its way out."""

    note: str
    rank: int
    world_size: int
    ddp_timeout: int

    def attach_to(self, error: BaseException) -> None:
        error.abandoned_run = self  # type: ignore[attr-defined]

    @staticmethod
    def of(error: BaseException) -> Abandoned | None:
        return getattr(error, "abandoned_run", None)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send), handled like Ctrl-C."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def guarded_main(main: Callable[[], Any]) -> Any:
    """Run a study's `main`: bad input and running out of memory are one line and exit 2 (memory
    is capped at what is free: see `memory_capped_at_free_ram`); Ctrl-C (exit 130) and SIGTERM
    (exit 143) say in one line what was kept and how to continue; a silent DDP peer ends in
    one line instead of a hang."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with memory_capped_at_free_ram():
            return main()
    except UsageError as error:
        run = Abandoned.of(error)
        note = run.note if run else ""
        fail(f"{error}" + (f" ({note})" if note and "kept" not in str(error) else ""))
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)
        run = Abandoned.of(interrupt)
        if run and run.note:
            kept = run.note
        elif run and run.rank:  # only the main process writes, and says what it kept
            kept = f"rank {run.rank} of {run.world_size}; rank 0 says what is kept"
        else:
            kept = "nothing was written"
        print(
            f"\ninterrupted ({'SIGTERM' if terminated else 'Ctrl-C'}): {kept}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(143 if terminated else 130) from None
    except Exception as exc:
        run = Abandoned.of(exc)
        oom = out_of_memory_line(exc)
        if oom is not None:
            fail(oom + (f" ({run.note})" if run and run.note else ""))
        if run is None or run.world_size == 1 or not _is_collective_failure(exc):
            raise
        others = [str(rank) for rank in range(run.world_size) if rank != run.rank]
        gone = f"rank {others[0]}" if len(others) == 1 else f"one of ranks {', '.join(others)}"
        print(
            f"error: rank {run.rank}: {gone} of this run stopped responding or "
            f"died (no answer within --ddp-timeout {run.ddp_timeout} s: "
            f"{first_line(exc)}); {run.note or 'see the other ranks’ logs'}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _is_collective_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    markers = (
        "timed out",
        "timeout",
        "connection reset",
        "connection closed",
        "broken pipe",
        "gloo",
        "nccl",
        "peer",
    )
    return isinstance(exc, RuntimeError) and any(m in text for m in markers)
