"""Members are a function of (seed, kind, index): same specs, same weights, same first losses;
only depths that fit are drawn; the CNN keeps its max-norm; the vote's tie rule and dead
members."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rmdl.config import RmdlConfig
from rmdl.ensemble import alive_members, majority_vote, vote
from rmdl.members import POOLS_THAT_FIT, build_member, draw_specs, make_optimizer
from rmdl.reproduce import mix, subset

SMALL = dict(
    members="2,2,2",
    dnn_units=(8, 32),
    cnn_filters=(2, 6),
    cnn_dense=8,
    rnn_units=(4, 8),
    tracker="none",
)


def first_step_losses(seed: int) -> list[float]:
    torch.manual_seed(123)  # the global RNG must not matter: members own their randomness
    images = torch.rand(16, 1, 28, 28)
    labels = torch.arange(16) % 10
    losses = []
    for spec in draw_specs(RmdlConfig(seed=seed, **SMALL), 10):
        member = build_member(spec).train()
        member.reseed(7, torch.device("cpu"))
        torch.manual_seed(len(losses))  # different global state for every member
        losses.append(F.cross_entropy(member(images), labels).item())
    return losses


def test_same_seed_same_specs_and_first_step_losses() -> None:
    assert draw_specs(RmdlConfig(seed=3, **SMALL), 10) == draw_specs(
        RmdlConfig(seed=3, **SMALL), 10
    )
    assert draw_specs(RmdlConfig(seed=3, **SMALL), 10) != draw_specs(
        RmdlConfig(seed=4, **SMALL), 10
    )
    assert first_step_losses(3) == first_step_losses(3)


def test_a_member_does_not_depend_on_the_others() -> None:
    """cnn-1 of a 2,2,2 ensemble is cnn-1 of a 5,5,5 one: nested ensembles share members."""
    small = {s.name: s for s in draw_specs(RmdlConfig(seed=1, **SMALL), 10)}
    large = {s.name: s for s in draw_specs(RmdlConfig(seed=1, **{**SMALL, "members": "5,5,5"}), 10)}
    assert all(large[name] == spec for name, spec in small.items())


def test_spec_json_round_trip_rebuilds_identical_weights() -> None:
    for spec in draw_specs(RmdlConfig(seed=5, **SMALL), 10):
        again = type(spec).from_json(spec.to_json())
        assert again == spec
        a, b = build_member(spec).state_dict(), build_member(again).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_cnn_depths_always_fit_28x28() -> None:
    config = RmdlConfig(
        members="0,40,0", cnn_blocks=(3, 9), cnn_filters=(1, 2), cnn_dense=4, tracker="none"
    )
    depths = {len(spec.widths) - 1 for spec in draw_specs(config, 10)}
    assert depths == {3, POOLS_THAT_FIT} and POOLS_THAT_FIT == 4
    for spec in draw_specs(config, 10)[:4]:
        assert build_member(spec)(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_cnn_output_keeps_max_norm_3_after_a_step() -> None:
    spec = next(s for s in draw_specs(RmdlConfig(seed=0, **SMALL), 10) if s.kind == "cnn")
    member = build_member(spec).train()
    member.reseed(0, torch.device("cpu"))
    with torch.no_grad():
        member.out.weight.mul_(100)
    optimizer = make_optimizer(member)
    F.cross_entropy(member(torch.rand(4, 1, 28, 28)), torch.arange(4)).backward()
    optimizer.step()
    assert member.out.weight.norm(dim=1).max() <= 3.0 + 1e-5


def test_majority_vote_tie_goes_to_the_earliest_member() -> None:
    # members x samples: sample 0 ties 3/5 (member 0 says 3), sample 1 ties 5/3 (member 0
    # says 5), sample 2 has a majority for 7 although member 0 says 1, sample 3 a 3-way tie
    labels = torch.tensor([[3, 5, 1, 9], [5, 3, 7, 8], [5, 3, 7, 7], [3, 5, 2, 8]])
    assert majority_vote(labels, 10).tolist() == [3, 5, 7, 8]
    assert majority_vote(labels[[3, 2, 1, 0]], 10).tolist() == [3, 5, 7, 8]
    assert majority_vote(torch.tensor([[4, 2], [2, 4]]), 10).tolist() == [4, 2]


def test_a_dead_member_does_not_vote() -> None:
    good = F.one_hot(torch.tensor([[1, 2, 3], [1, 2, 3]]), 10).float()
    dead = torch.full((1, 3, 10), float("nan"))  # a diverged member
    probabilities = torch.cat([dead, good])
    alive = alive_members(torch.tensor([0.1, 0.9, 0.8]), dead_below=0.2)
    assert alive.tolist() == [False, True, True]
    votes = vote(probabilities, alive)
    assert votes["vote"].tolist() == [1, 2, 3] and votes["average"].tolist() == [1, 2, 3]


def test_nested_ensembles_take_the_first_members_of_each_kind() -> None:
    names = [s.name for s in draw_specs(RmdlConfig(**{**SMALL, "members": "3,3,3"}), 10)]

    def chosen(dnn: int, cnn: int, rnn: int) -> list[str]:
        keep = subset(names, mix(dnn, cnn, rnn)).tolist()
        return [name for name, kept in zip(names, keep, strict=True) if kept]

    assert chosen(1, 1, 1) == ["dnn-0", "cnn-0", "rnn-0"]
    assert chosen(0, 3, 0) == ["cnn-0", "cnn-1", "cnn-2"]  # the MNIST example's three CNNs
    assert chosen(3, 3, 3) == names
