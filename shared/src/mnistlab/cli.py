"""Typed config -> command line, and the one-line, exit-code-2 treatment of bad input."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Sequence
from typing import NoReturn, TypeVar

import tyro

ConfigT = TypeVar("ConfigT")

USAGE_EXIT_CODE = 2
SEEDS = 2**32  # numpy's seed range; every run seeds numpy (through Accelerate's set_seed)
_BOX_CHARS = re.compile(r"[│╭╮╰╯─]+")


class UsageError(Exception):
    """Bad input a user can fix (flag value, data files, paths, checkpoints).

    The message is one line that names the problem and the fix; the program exits with code 2.
    """


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line (its type when the message is empty)."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def two_sizes(first: float, second: float, unit: str = "MiB") -> tuple[str, str]:
    """Two byte counts in `unit` (MiB or GiB), with as many decimals as it takes to tell them
    apart (a "needs 1 MiB, 1 MiB free" line would not say why it failed)."""
    scale = 2**20 if unit == "MiB" else 2**30
    for decimals in range(1, 4):
        shown = f"{first / scale:.{decimals}f} {unit}", f"{second / scale:.{decimals}f} {unit}"
        if shown[0] != shown[1]:
            return shown
    return f"{first:,.0f} bytes", f"{second:,.0f} bytes"


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(USAGE_EXIT_CODE)


def _first_message(box: str) -> str:
    """Condense tyro's boxed parse error into its first paragraph, on one line."""
    words: list[str] = []
    for raw in box.splitlines()[1:]:  # line 0 is the box title
        if "──" in raw:
            break
        line = _BOX_CHARS.sub(" ", raw).strip()
        if line:
            words.append(line)
    return " ".join(words) or box.strip().splitlines()[0]


def parse_config(
    config_cls: type[ConfigT],
    args: Sequence[str] | None,
    description: str,
    default: ConfigT | None = None,
) -> ConfigT:
    """Parse `args` into `config_cls` with tyro (values not given come from `default`, if any).

    `--help` lists every field with its default. A parse error, or a `UsageError` raised by the
    config's own `__post_init__` validation, becomes one `error: ...` line and exit code 2.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            config = tyro.cli(config_cls, args=args, description=description, default=default)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        fail(f"{_first_message(captured.getvalue())} (see --help)")
    except UsageError as error:
        fail(str(error))
    seed = getattr(config, "seed", None)
    if isinstance(seed, int) and not 0 <= seed < SEEDS:
        fail(f"--seed must be between 0 and {SEEDS - 1}, got {seed}")
    return config
