"""Members are a function of (seed, kind, index): same specs, same weights, same first losses;
only depths that fit are drawn; the CNN keeps its max-norm; LSTMs start as Keras's; the
vote's tie rule and dead members."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rmdl.config import RmdlConfig
from rmdl.ensemble import alive_members, majority_vote, vote, voters
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


def member_probabilities(*members: list[dict[int, float]]) -> torch.Tensor:
    """[members, samples, 10] from each member's {label: probability} per sample."""
    out = torch.zeros(len(members), len(members[0]), 10)
    for m, samples in enumerate(members):
        for s, probs in enumerate(samples):
            for label, p in probs.items():
                out[m, s, label] = p
    return out


def test_a_tied_vote_goes_to_the_label_of_highest_mean_probability() -> None:
    # sample 0: a 1-1 tie of 3 and 5, 5 more probable on average (the source's rule, the
    # earliest member's label, would give 3); sample 1: both say 7, no tie
    probabilities = member_probabilities([{3: 0.5, 5: 0.4}, {7: 0.9}], [{5: 0.9, 3: 0.1}, {7: 0.8}])
    labels, tied = majority_vote(probabilities)
    assert labels.tolist() == [5, 7] and tied.tolist() == [True, False]
    assert majority_vote(probabilities[[1, 0]])[0].tolist() == [5, 7]  # order does not matter


def test_the_majority_beats_a_confident_minority() -> None:
    probabilities = member_probabilities([{1: 0.99}], [{2: 0.51, 1: 0.49}], [{2: 0.51, 1: 0.49}])
    votes = vote(probabilities, torch.ones(3, dtype=torch.bool))
    assert votes["vote"].tolist() == [2] and votes["average"].tolist() == [1]
    assert votes["tied"].tolist() == [False]


def test_a_member_that_cannot_learn_is_left_out_and_the_vote_changes() -> None:
    # member 0 stayed at chance on validation and says 7; without it members 1 and 2 tie, and
    # the tie goes to 3 (mean probability 0.525 against 0.475)
    probabilities = member_probabilities([{7: 0.9}], [{3: 0.6, 7: 0.4}], [{7: 0.55, 3: 0.45}])
    alive = voters(torch.tensor([0.11, 0.9, 0.8]), dead_below=0.2)
    assert alive.tolist() == [False, True, True]
    assert vote(probabilities, alive)["vote"].tolist() == [3]
    assert vote(probabilities, torch.ones(3, dtype=torch.bool))["vote"].tolist() == [7]


def test_lstm_members_start_from_kerass_initialisation() -> None:
    spec = next(s for s in draw_specs(RmdlConfig(**SMALL), 10) if s.kind == "rnn")
    member = build_member(spec)
    for lstm in (member.rows, member.image):
        units = lstm.hidden_size
        forget = torch.zeros(4 * units)
        forget[units : 2 * units] = 1.0
        assert torch.equal(lstm.bias_ih_l0, forget) and not lstm.bias_hh_l0.any()
        recurrent = lstm.weight_hh_l0  # [4 units, units]: orthonormal columns
        torch.testing.assert_close(recurrent.T @ recurrent, torch.eye(units))
        bound = (6 / (lstm.input_size + 4 * units)) ** 0.5  # Glorot-uniform
        assert lstm.weight_ih_l0.abs().max() <= bound


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
