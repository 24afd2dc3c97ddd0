"""Random members (DNN, CNN, RNN) as in the source's `BuildModel.py`, but each one fully
determined by (ensemble seed, kind, index): its drawn architecture is a readable `MemberSpec`,
and `build_member(spec)` rebuilds the same network, initial weights included."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mnistlab.batches import derive_seed

if TYPE_CHECKING:
    from rmdl.config import RmdlConfig

Kind = Literal["dnn", "cnn", "rnn"]
KINDS: tuple[Kind, ...] = ("dnn", "cnn", "rnn")  # the order of --members and of the vote
OptimizerName = Literal["rmsprop", "adagrad", "adam"]
KERAS_LR = {"rmsprop": 1e-3, "adagrad": 1e-2, "adam": 1e-3}  # Keras 2.2 defaults (the source)
KERAS_EPSILON = 1e-7
IMAGE_SIZE = 28
MAX_NORM = 3.0  # the source's kernel constraint on the CNN's output layer


def pools_that_fit(size: int) -> int:
    """2x2 poolings possible after the CNN stem (a same-padded then a valid 3x3 conv)."""
    size, pools = size - 2, 0
    while size >= 2:
        size, pools = size // 2, pools + 1
    return pools


POOLS_THAT_FIT = pools_that_fit(IMAGE_SIZE)


@dataclass(frozen=True)
class MemberSpec:
    """Everything needed to rebuild one member; saved as JSON next to its weights."""

    name: str
    """'<kind>-<index within the kind>', e.g. 'cnn-2'."""
    kind: Kind
    widths: tuple[int, ...]
    """dnn: units of each hidden layer; cnn: stem filters, then filters of each conv+pool block;
    rnn: units of the row LSTM, then of the image LSTM."""
    dense: int
    """cnn: units of the dense layer (0 for dnn and rnn)."""
    dropout: float
    optimizer: OptimizerName
    lr: float
    init_seed: int
    """Seeds the initial weights."""
    classes: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> MemberSpec:
        values = json.loads(text)
        return cls(**{**values, "widths": tuple(values["widths"])})

    @classmethod
    def load(cls, path: Path) -> MemberSpec:
        return cls.from_json(path.read_text())

    def summary(self) -> str:
        if self.kind == "dnn":
            return f"dense {'-'.join(map(str, self.widths))}, {self.optimizer}"
        if self.kind == "cnn":
            stem, blocks = self.widths[0], self.widths[1:]
            return (
                f"stem 2x{stem}, {len(blocks)} blocks {'-'.join(map(str, blocks))}, "
                f"dense {self.dense}, {self.optimizer}"
            )
        return f"LSTM rows {self.widths[0]}, image {self.widths[1]}, {self.optimizer}"


def draw_spec(config: RmdlConfig, kind: Kind, index: int, classes: int) -> MemberSpec:
    """Member `index` of `kind`: a function of (seed, kind, index) and the ranges only."""
    rng = random.Random(derive_seed("rmdl-member", config.seed, kind, index))
    dense = 0
    if kind == "dnn":
        widths = tuple(
            rng.randint(*config.dnn_units) for _ in range(rng.randint(*config.dnn_layers))
        )
    elif kind == "cnn":
        low, high = config.cnn_blocks
        blocks = rng.randint(low, min(high, POOLS_THAT_FIT))  # only depths that fit are drawn
        widths = tuple(rng.randint(*config.cnn_filters) for _ in range(1 + blocks))
        dense = config.cnn_dense
    else:
        widths = (rng.randint(*config.rnn_units), rng.randint(*config.rnn_units))
    optimizer = rng.choice(config.optimizers)
    return MemberSpec(
        name=f"{kind}-{index}",
        kind=kind,
        widths=widths,
        dense=dense,
        dropout=config.dropout,
        optimizer=optimizer,
        lr=KERAS_LR[optimizer] * config.lr,
        init_seed=rng.getrandbits(63),
        classes=classes,
    )


def draw_specs(config: RmdlConfig, classes: int) -> list[MemberSpec]:
    """The ensemble's members in vote order: DNNs, then CNNs, then RNNs."""
    return [
        draw_spec(config, kind, index, classes)
        for kind, count in config.member_counts.items()
        for index in range(count)
    ]


class Member(nn.Module):
    """A member network. Its dropout draws from its own generator, reseeded each training step
    from (seed, member, step), so a member trains the same whatever else shares its process."""

    def __init__(self, spec: MemberSpec) -> None:
        super().__init__()
        self.spec = spec
        self.generator: torch.Generator | None = None

    def reseed(self, seed: int, device: torch.device) -> None:
        if self.generator is None or self.generator.device != device:
            self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def dropout(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.spec.dropout == 0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.spec.dropout
        return x * keep / (1 - self.spec.dropout)

    def constrain(self) -> None:
        """Called after each optimizer step (the CNN's max-norm)."""


class DenseMember(Member):
    """Flatten, then dense+ReLU+dropout layers, then the output layer."""

    def __init__(self, spec: MemberSpec) -> None:
        super().__init__(spec)
        sizes = (IMAGE_SIZE * IMAGE_SIZE, *spec.widths)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.out = nn.Linear(sizes[-1], spec.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.flatten(1)
        for layer in self.hidden:
            x = self.dropout(F.relu(layer(x)))
        return self.out(x)


class ConvMember(Member):
    """Two convs (same, then valid padding), conv+pool+dropout blocks, dense, max-norm output."""

    def __init__(self, spec: MemberSpec) -> None:
        super().__init__(spec)
        stem, *blocks = spec.widths
        self.stem = nn.ModuleList([nn.Conv2d(1, stem, 3, padding=1), nn.Conv2d(stem, stem, 3)])
        channels = (stem, *blocks)
        self.blocks = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in pairwise(channels))
        size = IMAGE_SIZE - 2
        for _ in blocks:
            size //= 2
        self.dense = nn.Linear(channels[-1] * size * size, spec.dense)
        self.out = nn.Linear(spec.dense, spec.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for conv in self.stem:
            x = F.relu(conv(x))
        for conv in self.blocks:
            x = self.dropout(F.max_pool2d(F.relu(conv(x)), 2))
        x = self.dropout(F.relu(self.dense(x.flatten(1))))
        return self.out(x)

    @torch.no_grad()
    def constrain(self) -> None:
        """Keras `maxnorm(3)`: each output unit's incoming weights have norm at most 3."""
        norms = self.out.weight.norm(dim=1, keepdim=True)
        self.out.weight.mul_(norms.clamp(max=MAX_NORM) / (norms + KERAS_EPSILON))


class RecurrentMember(Member):
    """An LSTM reads each row's pixels; a second LSTM reads the 28 row encodings, as the
    source's `TimeDistributed(LSTM)` then `LSTM`. Initialised as Keras's LSTM
    (`keras_lstm_init`). Differences left: the source's recurrent dropout 0.05 (torch's fused
    LSTM has none) and Keras 2.2's hard-sigmoid gates (torch's are sigmoid)."""

    def __init__(self, spec: MemberSpec) -> None:
        super().__init__(spec)
        row_units, image_units = spec.widths
        self.rows = nn.LSTM(1, row_units, batch_first=True)
        self.image = nn.LSTM(row_units, image_units, batch_first=True)
        self.out = nn.Linear(image_units, spec.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.shape[0]
        pixels = images.reshape(batch * IMAGE_SIZE, IMAGE_SIZE, 1)  # one sequence per row
        _, (rows, _) = self.rows(pixels)
        _, (encoded, _) = self.image(rows[-1].reshape(batch, IMAGE_SIZE, -1))
        return self.out(encoded[-1])


MEMBER_CLASSES: dict[Kind, type[Member]] = {
    "dnn": DenseMember,
    "cnn": ConvMember,
    "rnn": RecurrentMember,
}


@torch.no_grad()
def keras_lstm_init(lstm: nn.LSTM) -> None:
    """Keras's LSTM defaults: Glorot-uniform input kernel, orthogonal recurrent kernel, zero
    bias except 1 on the forget gate (`unit_forget_bias`). With torch's own init (uniform
    ±1/sqrt(units), forget bias ~0) the members stayed at chance over short runs. Torch keeps
    two biases whose sum is Keras's one: the forget 1 goes into `bias_ih`. Gate order i, f, g, o."""
    units = lstm.hidden_size
    for layer in range(lstm.num_layers):
        nn.init.xavier_uniform_(getattr(lstm, f"weight_ih_l{layer}"))
        nn.init.orthogonal_(getattr(lstm, f"weight_hh_l{layer}"))
        bias_ih, bias_hh = getattr(lstm, f"bias_ih_l{layer}"), getattr(lstm, f"bias_hh_l{layer}")
        nn.init.zeros_(bias_ih)
        nn.init.zeros_(bias_hh)
        bias_ih[units : 2 * units] = 1.0


def build_member(spec: MemberSpec) -> Member:
    """The member `spec` describes, with Keras's initial weights: Glorot-uniform kernels and
    zero biases for dense and conv layers, `keras_lstm_init` for LSTMs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.init_seed)
        member = MEMBER_CLASSES[spec.kind](spec)
        for module in member.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LSTM):
                keras_lstm_init(module)
    return member


def parameter_count(spec: MemberSpec) -> int:
    """Parameters of a member, counted without allocating them."""
    with torch.device("meta"):
        return sum(p.numel() for p in MEMBER_CLASSES[spec.kind](spec).parameters())


def make_optimizer(member: Member) -> torch.optim.Optimizer:
    """The member's drawn optimizer with Keras defaults; the max-norm runs after each step."""
    spec, params = member.spec, member.parameters()
    if spec.optimizer == "rmsprop":
        optimizer = torch.optim.RMSprop(params, lr=spec.lr, alpha=0.9, eps=KERAS_EPSILON)
    elif spec.optimizer == "adagrad":
        optimizer = torch.optim.Adagrad(params, lr=spec.lr, eps=KERAS_EPSILON)
    else:
        optimizer = torch.optim.Adam(params, lr=spec.lr, eps=KERAS_EPSILON)
    optimizer.register_step_post_hook(lambda *_: member.constrain())
    return optimizer
