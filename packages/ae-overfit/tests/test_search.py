"""The question's rule, its bookkeeping, and the search's resumption."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ae_overfit.config import AEConfig
from ae_overfit.convergence import Convergence
from ae_overfit.memorise import memorisation_onset
from ae_overfit.model import Autoencoder, parameter_count
from ae_overfit.search import SearchConfig, model_dimension, next_step, search


def test_model_dimension_is_twice_the_encoders_relus() -> None:
    assert model_dimension((256, 256)) == 1024
    assert model_dimension((16,)) == 32


@pytest.mark.parametrize(
    ("hidden", "latent", "excess", "expected"),
    [
        ((256, 256), 32, 0.5, ("stop: converged at the target", (256, 256), 32)),
        ((256, 256), 32, 9.0, ("grow latent", (256, 256), 64)),
        ((256, 256), 768, 9.0, ("grow latent", (256, 256), 1024)),  # capped at model dim
        ((256, 256), 1024, 9.0, ("add ReLUs", (512, 512), 1024)),  # model dim == latent
        ((16,), 64, 2.0, ("add ReLUs", (32,), 64)),  # model dim < latent
    ],
)
def test_rule_takes_the_right_branch(hidden, latent, excess, expected) -> None:
    assert next_step(hidden, latent, excess, target=1.0, growth=2) == expected


def test_parameter_count_matches_the_model() -> None:
    for hidden, latent in [((256, 256), 32), ((7,), 3), ((100, 50, 25), 10)]:
        model = Autoencoder(hidden, latent)
        assert parameter_count(hidden, latent) == sum(p.numel() for p in model.parameters())


def test_convergence_rule_on_hand_made_losses() -> None:
    rule = Convergence(window=5, tolerance=0.01)
    # Five changes < 1% are needed: the sixth flat epoch is the first that converges.
    assert [rule.update(v) for v in [100, 80, 60, 59.9, 59.8, 59.7, 59.6]] == [False] * 7
    assert rule.update(59.5) is True
    rule = Convergence(window=2, tolerance=0.01)
    assert [rule.update(v) for v in [50, 49.9, 45, 44.9, 44.8]] == [False] * 4 + [True]
    restored = Convergence(window=2, tolerance=0.01)
    restored.load_state_dict(rule.state_dict())
    assert restored.losses == rule.losses


def test_memorisation_onset_is_the_largest_memorised_set() -> None:
    rows = [
        {"train_samples": n, "train_excess": e} for n, e in [(1000, 5.0), (300, 0.8), (100, 0.2)]
    ]
    assert memorisation_onset(rows, 1.0)["train_samples"] == 300
    assert memorisation_onset(rows, 0.1) is None


def test_search_follows_the_rule_and_resumes(data_dir: Path, tmp_path: Path) -> None:
    tiny = AEConfig(
        hidden=(4,),
        latent=2,
        train_samples=256,
        val_size=128,
        batch_size=64,
        epochs=2,
        tracker="none",
        data_dir=data_dir,
    )
    config = SearchConfig(max_runs=3, target_excess=0.0, train=tiny)
    steps = search(config, tmp_path)
    assert [(s["hidden"], s["latent"]) for s in steps] == [((4,), 2), ((4,), 4), ((4,), 8)]
    assert [s["decision"] for s in steps] == [
        "grow latent",
        "grow latent",
        "stop: --max-runs 3 reached",
    ]
    # An interrupted search: the last step lost its summary and its second epoch.
    last = tmp_path / "runs" / "ae-overfit" / "02-784-4-z8"
    finished = json.loads((last / "summary.json").read_text())
    (last / "summary.json").unlink()
    shutil.rmtree(last / "checkpoints" / "epoch-0002")
    again = search(config, tmp_path)
    assert again == steps
    assert json.loads((last / "summary.json").read_text())["fingerprint"] == finished["fingerprint"]
    assert (tmp_path / "search.md").is_file() and (tmp_path / "search.png").is_file()
