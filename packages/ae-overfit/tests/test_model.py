"""The question's nets as its code builds them, and the budgets that run them at its setting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ae_overfit.config import AEConfig
from ae_overfit.model import Autoencoder, parameter_count
from ae_overfit.reproduce import QUESTION_NETS, plan


class QuestionDecoder(nn.Module):
    """The question's `Decoder` as the question's code builds it: the encoder's dims reversed
    after the latent, a ReLU only `if i != 0` (none after the first layer past the latent), and
    a sigmoid after the last layer."""

    def __init__(self, dims: list[int], latent: int) -> None:
        super().__init__()
        dims = [latent, *reversed(dims[1:])]
        layers: list[nn.Module] = []
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i != 0:
                layers.append(nn.ReLU())
        layers += [nn.Linear(dims[-1], 784), nn.Sigmoid()]
        self.layers = nn.Sequential(*layers)


def sequence(module: nn.Module) -> list[tuple]:
    return [
        ("Linear", m.in_features, m.out_features)
        if isinstance(m, nn.Linear)
        else (type(m).__name__,)
        for m in module.children()
    ]


@pytest.mark.parametrize(
    ("hidden", "latent"),
    [((256, 256), 64), ((256,), 64), ((128,), 256), ((32,), 128), ((64, 32, 16), 8)],
)
def test_default_decoder_is_the_questions(hidden, latent) -> None:
    ours = Autoencoder(hidden, latent)
    # Our forward returns logits: the sigmoid is folded into the BCE.
    assert sequence(ours.decoder) + [("Sigmoid",)] == sequence(
        QuestionDecoder([784, *hidden], latent).layers
    )


def test_question_decoder_for_784_256_256() -> None:
    decoder = sequence(Autoencoder((256, 256), 64).decoder)
    assert decoder == [("Linear", 64, 256), ("Linear", 256, 256), ("ReLU",), ("Linear", 256, 784)]
    # One hidden layer: the question's decoder has no ReLU at all.
    assert ("ReLU",) not in sequence(Autoencoder((256,), 64).decoder)


def test_relu_everywhere_is_the_labelled_variant() -> None:
    model = Autoencoder((256, 256), 64, decoder="relu-everywhere")
    assert sequence(model.decoder) == [
        ("Linear", 64, 256),
        ("ReLU",),
        ("Linear", 256, 256),
        ("ReLU",),
        ("Linear", 256, 784),
    ]
    assert parameter_count((256, 256), 64) == sum(p.numel() for p in model.parameters())
    question = Autoencoder((256, 256), 64)
    torch.manual_seed(0)
    pixels = torch.rand(3, 784)
    assert question(pixels).shape == model(pixels).shape == (3, 784)
    with pytest.raises(ValueError, match="decoder"):
        Autoencoder((8,), 2, decoder="other")  # type: ignore[arg-type]


def test_encoder_is_relu_after_each_hidden_layer_then_a_linear_latent() -> None:
    assert sequence(Autoencoder((256, 256), 64).encoder) == [
        ("Linear", 784, 256),
        ("ReLU",),
        ("Linear", 256, 256),
        ("ReLU",),
        ("Linear", 256, 64),
    ]


def test_cpu_budget_runs_the_questions_nets_at_its_setting() -> None:
    cpu = plan("cpu")
    setting = cpu.setting
    # Batch 64 on all 60,000 training images (937 full batches per epoch), 10 epochs, rule off.
    assert (setting.batch_size, setting.val_size, setting.train_samples) == (64, 0, None)
    assert (setting.epochs, setting.converge_tolerance, setting.decoder) == (10, 0.0, "question")
    assert 60_000 // setting.batch_size == 937
    assert cpu.at_source_setting and cpu.seeds == (0, 1, 2)
    assert {(n.hidden, n.latent) for n in cpu.nets} == {
        ((256,), 64),
        ((256,), 256),
        ((128,), 128),
        ((128,), 256),
        ((256, 256), 64),
        ((32,), 64),
        ((32,), 128),
    }
    assert {n.source for n in QUESTION_NETS} == {53.0, 55.0, 80.0}
    assert cpu.memorise.train.decoder == "question" and len(cpu.memorise_seeds) == 3
    assert (cpu.memorise.train.hidden, cpu.memorise.train.latent) == ((256, 256), 64)


def test_quick_is_not_the_questions_setting() -> None:
    quick = plan("quick")
    assert not quick.at_source_setting and quick.setting.train_samples
    assert plan("full").at_source_setting


def test_decoder_option_defaults_to_the_question() -> None:
    assert AEConfig().decoder == "question"
