"""The reproduction's budgets and rows, without training."""

from __future__ import annotations

import pytest

from local_loss.config import LocalLossConfig
from local_loss.reproduce import claim_row, plan


def test_the_cpu_budget_is_the_papers_mlp_setting_with_paired_seeds() -> None:
    (step,) = plan("cpu")
    assert step.net == "mlp" and set(step.losses) == {"global", "predsim"}
    assert step.at_source_setting and len(step.seeds) >= 3
    config = LocalLossConfig(net=step.net, loss="predsim", **step.overrides)
    assert config.val_size == 0 and config.epochs == 100  # all 60,000 images, 100 epochs
    assert config.milestones == (50, 75, 89, 94) and config.translate == 2
    assert not any(p.at_source_setting for p in plan("quick"))


def test_predsim_beats_global_is_a_paired_difference_where_lower_supports_it() -> None:
    (step,) = plan("cpu")
    errors = {("mlp", "global"): [0.80, 0.74, 0.77], ("mlp", "predsim"): [0.70, 0.66, 0.65]}
    row = claim_row(step, errors, "uv run report --budget cpu --studies local-loss")
    row.check()
    assert row.values == pytest.approx([-0.10, -0.08, -0.12])
    assert row.claim == "predsim beats global" and row.verdict == "supported"
    errors["mlp", "predsim"] = [0.90, 0.84, 0.87]
    assert claim_row(step, errors, "cmd").verdict == "contradicted"
