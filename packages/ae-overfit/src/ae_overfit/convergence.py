"""The question's convergence rule, as state that travels in the run's checkpoints."""

from __future__ import annotations

import math


class Convergence:
    """Converged when the epoch-average loss changed by less than `tolerance` (relative) in each
    of the last `window` epochs. Registered for checkpointing, so a resumed run remembers the
    epochs before its checkpoint."""

    def __init__(self, window: int = 5, tolerance: float = 0.01) -> None:
        self.window = window
        self.tolerance = tolerance
        self.losses: list[float] = []

    def update(self, epoch_loss: float) -> bool:
        """Record one epoch's average loss; True once the rule says converged."""
        self.losses.append(epoch_loss)
        recent = self.losses[-(self.window + 1) :]
        if len(recent) <= self.window:
            return False
        return all(
            abs(new - old) < self.tolerance * abs(old) and math.isfinite(new)
            for old, new in zip(recent, recent[1:], strict=False)
        )

    def state_dict(self) -> dict[str, list[float]]:
        return {"losses": list(self.losses)}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        self.losses = list(state["losses"])
