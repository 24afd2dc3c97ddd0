"""Console entry points (`train`, `report`, `python -m STUDY`) that handle Ctrl-C and SIGTERM
from the first instant: importing torch takes seconds, and an interruption then would otherwise
print a KeyboardInterrupt traceback. This module imports nothing heavy itself."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any


def _stop_while_starting(signum: int, frame: Any) -> None:
    terminated = signum == signal.SIGTERM
    which = "SIGTERM" if terminated else "Ctrl-C"
    print(
        f"\ninterrupted ({which}) while starting: nothing was written", file=sys.stderr, flush=True
    )
    # Exit at once: unwinding out of a half-done import (numpy, torch) can fail at shutdown
    # with tracebacks of its own, and nothing has been written that would need cleaning up.
    os._exit(143 if terminated else 130)


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """Imports under this end in one line on Ctrl-C / SIGTERM; after it, the run's own handling
    (`guarded_main`) takes over."""
    previous = {s: signal.signal(s, _stop_while_starting) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def train() -> None:
    with starting():
        from mnistlab.dispatch import main
    main()


def report() -> None:
    with starting():
        from mnistlab.report import main
    main()
