"""A report row and its verdict rules, which compare like with like.

- Only a row at the source's setting (`at_source_setting`) gets matches / better / worse; any
  other row with a source number is "not comparable".
- A source number is one of four kinds: a point ("0.62"), a bound ("< 1/90"), an approximate
  value ("~1/20") or a value with its own sample size ("1 of ~100 runs"). A bound is satisfied
  or violated, never "worse".
- Ours carries a 95% interval: a t-interval over seeds, or a Wilson interval for a rate over
  `trials` networks. "matches" means our interval and the source's overlap; where the source's
  interval is unknown (point, approximate) it is the source's value ± the row's `tolerance`.
  better / worse only when the two intervals are separated.
- A claim "X beats Y" is a row of its own (`claim`): its values are the per-seed differences
  X - Y of arms run on the same seeds, and its verdict is supported / contradicted /
  inconclusive, or "direction: supports / contradicts" at a setting that is not the source's.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any, Literal

from mnistlab.stats import t_interval, wilson_percent

Budget = Literal["quick", "cpu", "full"]
BUDGETS: tuple[Budget, ...] = ("quick", "cpu", "full")
SourceKind = Literal["point", "bound", "approx", "sampled"]


@dataclass(frozen=True)
class Source:
    """The source's number, in the row's unit, and what kind of number it is."""

    value: float
    ref: str
    """Where it comes from (paper table, repository log, report page)."""
    kind: SourceKind = "point"
    stated: str = ""
    """As the source states it, e.g. '< 1/90' or '~1/20' (shown instead of the value)."""
    trials: int | None = None
    """kind 'sampled': the source's own sample size (its value is then a % of it)."""
    below: bool = True
    """kind 'bound': the source says the true value lies below `value` (else above)."""

    def interval(self, tolerance: float) -> tuple[float, float]:
        if self.kind == "sampled":
            assert self.trials is not None
            return wilson_percent(self.value, self.trials)
        return self.value - tolerance, self.value + tolerance

    def shown(self) -> str:
        text = self.stated or f"{self.value:g}"
        return f"{text} ({self.ref})"

    def check(self) -> None:
        if not self.ref or not math.isfinite(self.value):
            raise ValueError("a source number needs a finite value and its ref")
        if self.kind == "sampled" and not self.trials:
            raise ValueError("a sampled source number needs its trials")


@dataclass
class Row:
    """One line of REPORT.md: a setting, our measured values, the source's number or claim."""

    setting: str
    values: list[float]
    """Our result, one value per seed; for a claim, the per-seed differences X - Y; for a rate
    over networks (`trials`), the single % it measured."""
    unit: str
    """What the values are, e.g. 'test error %' or 'test accuracy %'."""
    higher_is_better: bool
    """For a claim: whether a positive difference supports it."""
    command: str
    """The command that reproduces this row."""
    source: Source | None = None
    at_source_setting: bool = False
    """Whether the setting is the source's: only then can a row match, beat or lose to it."""
    tolerance: float = 0.0
    """Half-width given to a point or approximate source number whose interval is unknown."""
    trials: int | None = None
    """The values are one rate (%) over this many networks: a Wilson interval."""
    claim: str = ""
    """'X beats Y' when the values are paired differences X - Y over seeds."""
    claim_ref: str = ""
    """Who makes the claim."""
    note: str = ""

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def interval(self) -> tuple[float, float]:
        if self.trials:
            return wilson_percent(self.values[0], self.trials)
        return t_interval(self.values)

    @property
    def ours(self) -> str:
        low, high = self.interval
        if self.trials:
            return f"{self.mean:.2f} (95% CI {low:.2f}–{high:.2f}, {self.trials} nets)"
        if len(self.values) < 2:
            return f"{self.mean:.2f} (n=1, no interval)"
        sign = "+" if self.claim else ""
        return (
            f"{self.mean:{sign}.2f} ± {statistics.stdev(self.values):.2f} "
            f"(95% CI {low:{sign}.2f} to {high:{sign}.2f}, n={len(self.values)})"
        )

    @property
    def verdict(self) -> str:
        if self.claim:
            return self._claim_verdict()
        if self.source is None:
            return "not comparable"
        if not self.at_source_setting:
            return "not comparable (not the source's setting)"
        low, high = self.interval
        if self.source.kind == "bound":
            beyond = low > self.source.value if self.source.below else high < self.source.value
            within = high <= self.source.value if self.source.below else low >= self.source.value
            return "bound violated" if beyond else "bound satisfied" if within else "inconclusive"
        source_low, source_high = self.source.interval(self.tolerance)
        if high < source_low or low > source_high:
            ours_higher = low > source_high
            return "better" if ours_higher == self.higher_is_better else "worse"
        return "matches"

    def _claim_verdict(self) -> str:
        if len(self.values) < 2:
            return "inconclusive (n=1)"
        low, high = self.interval
        if not self.higher_is_better:
            low, high = -high, -low
        if self.at_source_setting:
            return "supported" if low > 0 else "contradicted" if high < 0 else "inconclusive"
        direction = "supports" if low > 0 else "contradicts" if high < 0 else ""
        return f"direction: {direction}" if direction else "inconclusive"

    def check(self) -> None:
        """Refuse malformed rows: a report must never show a made-up or missing number."""
        if not self.values or not all(math.isfinite(v) for v in self.values):
            raise ValueError(f"row {self.setting!r}: values must be finite and non-empty")
        if not self.setting or not self.unit or not self.command or self.tolerance < 0:
            raise ValueError(f"row {self.setting!r}: setting, unit, command, tolerance >= 0")
        if self.trials is not None and (len(self.values) != 1 or self.trials < 1):
            raise ValueError(f"row {self.setting!r}: a rate over trials is one value")
        if self.claim and (self.source is not None or self.trials):
            raise ValueError(f"row {self.setting!r}: a claim row holds paired differences only")
        if self.source is not None:
            try:
                self.source.check()
            except ValueError as error:
                raise ValueError(f"row {self.setting!r}: {error}") from None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Row:
        fields = {f.name for f in dataclasses.fields(cls)}
        row = cls(**{k: v for k, v in raw.items() if k in fields})
        if isinstance(row.source, dict):
            row.source = Source(**row.source)
        return row
