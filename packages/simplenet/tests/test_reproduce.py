"""The reproduction's settings: what the cpu and full budgets compare, and on which seeds."""

from __future__ import annotations

import pytest

from simplenet.config import SimpleNetConfig
from simplenet.model import build_model, parameter_count
from simplenet.reproduce import (
    NET_CHOICES,
    SPEEDRUN,
    SPEEDRUN_TTA0,
    TTA_CLAIM,
    settings,
    tta_claim,
)


@pytest.mark.parametrize("budget", ["cpu", "full"])
def test_the_speedrun_with_and_without_test_time_shifts_runs_on_the_same_seeds(
    budget: str,
) -> None:
    by_name = {setting.name: setting for setting in settings(budget)}
    with_tta, without = by_name[SPEEDRUN[1]], by_name[SPEEDRUN_TTA0[1]]
    assert with_tta.seeds == without.seeds and len(with_tta.seeds) >= 3
    # Only the evaluation differs: every other resolved option is the preset's.
    a, b = SimpleNetConfig(**with_tta.args), SimpleNetConfig(**without.args)
    assert (a.tta, b.tta) == (1, 0)
    differing = {k for k, v in vars(a).items() if vars(b)[k] != v}
    assert differing == {"tta"}


def test_the_tta_claim_is_the_paired_validation_difference() -> None:
    row = tta_claim([99.2, 99.1, 99.3], [99.0, 99.1, 99.0], "uv run report")
    assert row.claim == TTA_CLAIM
    assert row.values == pytest.approx([0.2, 0.0, 0.3])
    assert row.higher_is_better


def test_each_net_choice_differs_from_the_preset_in_its_net_alone() -> None:
    """The pooled first layer and the 24/32 widths, trained with the preset's everything else
    on the preset's seeds, so that the validation difference is the net's."""
    by_name = {setting.name: setting for setting in settings("cpu")}
    preset = by_name[SPEEDRUN[1]]
    for name, model, _, _ in NET_CHOICES:
        other = by_name[name]
        assert other.seeds == preset.seeds
        a, b = SimpleNetConfig(**preset.args), SimpleNetConfig(**other.args)
        assert {k for k, v in vars(a).items() if vars(b)[k] != v} == {"model"}
        assert b.model == model
    # The pooled form computes the same 12x12 map the stride-2 conv does, with as many weights.
    assert parameter_count(build_model("fast-tiny-pooled")) == parameter_count(
        build_model("fast-tiny")
    )
