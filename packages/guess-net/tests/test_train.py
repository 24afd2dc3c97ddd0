"""Training: phase 1 of border training leaves the reserved half untouched; a short CPU run's
guess net predicts the classifier's errors better than chance and routing switches on at its
epoch; the hard set is hard for the reference and for an independent model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from guess_net.config import GuessNetConfig
from guess_net.model import GuessNetVAE
from guess_net.reference import hard_mask, pixels, reference_true_class_probability
from guess_net.study import STUDY
from guess_net.train import build_model, choose_flag_threshold, train, training_loss
from mnistlab.batches import BatchSource
from mnistlab.cli import UsageError
from mnistlab.data import Split, load_split
from mnistlab.testing import assert_a_length_change_is_refused

NEIGHBOURS = 10_000  # training images the 1-NN model searches


def parameters_after_steps(
    config: GuessNetConfig, model: GuessNetVAE, epoch_index: int
) -> dict[str, torch.Tensor]:
    """The model's parameters after a few Adam steps of the study's training loss in epoch
    `epoch_index` (the step that `fit` takes), on random batches."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(3):
        images = torch.rand(64, 784, generator=generator)
        labels = torch.randint(0, 10, (64,), generator=generator)
        optimizer.zero_grad()
        training_loss(config, model, images, labels, epoch_index).backward()
        optimizer.step()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("reserved", ["parallel", "conditional"])
def test_phase_1_trains_only_the_main_half(reserved: str) -> None:
    config = GuessNetConfig(
        border=True, reserved=reserved, hidden=(32, 16), epochs=3, tracker="none"
    )
    torch.manual_seed(0)
    model = build_model(config, 10)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    reserved_names = {
        name
        for name, p in model.named_parameters()
        if any(p is q for q in model.reserved_parameters())
    }
    phase_1 = parameters_after_steps(config, model, epoch_index=config.phase1_epochs - 1)
    for name in reserved_names:
        assert torch.equal(phase_1[name], initial[name]), name
    assert not torch.equal(phase_1["main.0.linear.weight"], initial["main.0.linear.weight"])
    # Routing on: the same steps now move the reserved half (here every sample is flagged:
    # an untrained guess net sits near probability 0.5, so lift the threshold above it).
    model.flag_threshold.fill_(1.0)
    phase_2 = parameters_after_steps(config, model, epoch_index=config.phase1_epochs)
    assert not torch.equal(phase_2["reserved_heads.weight"], initial["reserved_heads.weight"])


def test_border_run_learns_guesses_and_routes_from_its_epoch(data_dir: Path, tmp_path: Path):
    config = GuessNetConfig(
        border=True,
        epochs=2,
        train_samples=4096,
        val_size=1000,
        batch_size=64,
        tracker="none",
        data_dir=data_dir,
        out_dir=tmp_path,
        run_name="border",
    )
    summary = train(config)
    metrics = summary["metrics"]
    assert metrics["test/acc1"] > 0.5  # chance: 0.1
    assert metrics["test/guess_auroc"] > 0.65  # chance is 0.5
    lines = (tmp_path / "guess-net" / "border" / "metrics.jsonl").read_text().splitlines()
    routed = [e["val/routed"] for e in map(json.loads, lines) if "val/routed" in e]
    assert routed[0] == 0.0  # phase 1: main half only
    # Phase 2: the threshold chosen on validation flags about as many samples as the main half
    # got wrong there (about half after one epoch on 4,096 images), not none or all.
    assert 0.1 < routed[1] < 0.9
    assert 0.1 < metrics["test/routed"] < 0.9
    assert 0 < metrics["border/flag_threshold"] < 1


def test_the_chosen_threshold_flags_the_share_the_main_half_gets_wrong() -> None:
    torch.manual_seed(0)
    model = build_model(GuessNetConfig(border=True, hidden=(32, 16), tracker="none"), 10).eval()
    images = torch.randint(0, 256, (2000, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (2000,))
    source = BatchSource(Split(images, labels), batch_size=100)
    threshold, share = choose_flag_threshold(model, source)
    with torch.no_grad():
        out = model(source.images.flatten(1), "guess", decode=False)
    assert share == pytest.approx((out.main_logits.argmax(1) != labels).float().mean().item())
    assert 0.5 < share < 1  # an untrained classifier: mostly wrong, so most samples flagged
    assert out.routed.mean().item() == pytest.approx(share, abs=1e-3)
    assert model.flag_threshold.item() == threshold
    # Saved with the weights, so a resumed run routes with the same threshold.
    assert model.state_dict()["flag_threshold"].item() == threshold


def test_a_chosen_threshold_needs_a_validation_split() -> None:
    with pytest.raises(UsageError, match="--val-size"):
        GuessNetConfig(border=True, val_size=0, tracker="none")
    GuessNetConfig(border=True, val_size=0, flag_threshold=0.5, tracker="none")


def test_hard_set_is_the_references_least_confident_tenth(data_dir: Path) -> None:
    p_true = reference_true_class_probability("mnist", data_dir)
    mask = hard_mask("mnist", data_dir, 0.1)
    assert int(mask.sum()) == len(p_true) // 10
    assert p_true[mask].max() <= p_true[~mask].min()
    # A real reference: most test samples right, the hard tenth mostly wrong.
    assert (p_true > 0.5).float().mean() > 0.88
    assert (p_true[mask] > 0.5).float().mean() < 0.4


def test_the_hard_set_is_hard_for_an_independent_model(data_dir: Path) -> None:
    """1-nearest-neighbour on pixels (no training, nothing shared with the logistic-regression
    reference but the data) errs several times as often on the hard tenth as on the rest."""
    train_split = load_split("mnist", "train", data_dir)
    test_split = load_split("mnist", "test", data_dir)
    neighbours = pixels(train_split.images[:NEIGHBOURS])
    nearest = torch.cat(
        [
            torch.cdist(chunk, neighbours).argmin(dim=1)
            for chunk in pixels(test_split.images).split(1000)
        ]
    )
    wrong = (train_split.labels[:NEIGHBOURS][nearest] != test_split.labels).float()
    mask = hard_mask("mnist", data_dir, 0.1)
    assert wrong[mask].mean() > 5 * wrong[~mask].mean()


def test_a_run_is_never_resumed_for_another_length(tmp_path: Path, capsys) -> None:
    """The gamma ramp and the default routing epoch follow --epochs."""
    assert_a_length_change_is_refused(STUDY, tmp_path, capsys)
