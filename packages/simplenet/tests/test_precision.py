"""`--mixed-precision auto`: the faster precision of this machine, measured once and kept, so
every run on the machine trains in the same precision; config.json records the one that ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from simplenet import config as config_module
from simplenet import precision
from simplenet.config import SimpleNetConfig


@pytest.fixture
def timed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fake step times (bf16 slower, as on a Xeon without AMX); lists every measurement."""
    calls: list[str] = []

    def fake_measure(model_name: str) -> dict[str, float]:
        calls.append(model_name)
        return {"no": 0.012, "bf16": 0.015}

    monkeypatch.setattr(precision, "measure", fake_measure)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return calls


def test_the_faster_precision_is_chosen_once_per_machine(timed, tmp_path, monkeypatch) -> None:
    assert precision.fastest_precision("fast-tiny", tmp_path) == "no"
    assert precision.fastest_precision("fast-tiny", tmp_path) == "no"
    assert timed == ["fast-tiny"]  # the second run read the kept choice
    kept = json.loads((tmp_path / precision.CACHE_FILE).read_text())
    (entry,) = kept.values()
    assert entry == {"choice": "no", "step_seconds": {"no": 0.012, "bf16": 0.015}}
    monkeypatch.setattr(precision, "machine_key", lambda: "another CPU")
    precision.fastest_precision("fast-tiny", tmp_path)
    assert timed == ["fast-tiny", "fast-tiny"]  # another machine measures for itself


def test_a_preset_records_the_precision_that_runs(monkeypatch) -> None:
    chosen: list[str] = []
    monkeypatch.setattr(
        config_module, "fastest_precision", lambda model: chosen.append(model) or "no"
    )
    config = SimpleNetConfig(preset="speedrun", tracker="none")
    assert config.mixed_precision == "no" and chosen == ["fast-tiny"]
    explicit = SimpleNetConfig(preset="speedrun", mixed_precision="bf16", tracker="none")
    assert explicit.mixed_precision == "bf16" and chosen == ["fast-tiny"]  # not measured
    assert SimpleNetConfig(tracker="none").mixed_precision == "no"  # no preset: fp32


def test_the_measurement_times_both_precisions_and_leaves_the_seed_alone() -> None:
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    seconds = precision.measure("fast-tiny")
    assert torch.equal(torch.rand(3), expected)
    assert set(seconds) == {"no", "bf16"} and all(0 < s < 5 for s in seconds.values())


def test_an_unwritable_cache_still_chooses(timed, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert precision.fastest_precision("fast-tiny", blocker) == "no"
