"""RMDL's options. Defaults are the source's image settings (`RMDL_Image.Image_Classification`
and `Examples/MNIST.py`): ranges of the random architectures, batch 128, 100 epochs, Keras
default learning rates, dropout 0.05; plus a validation split for checkpoint selection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mnistlab.classify import ClassifierConfig
from mnistlab.config import require
from rmdl.members import KINDS, POOLS_THAT_FIT, Kind, OptimizerName

MAX_MEMBERS = 300


@dataclass
class RmdlConfig(ClassifierConfig):
    study: ClassVar[str] = "rmdl"

    members: str = "3,3,3"
    """Member counts 'DNN,CNN,RNN' (e.g. 10,10,10 for 30 members). Member 'cnn-2' is the same
    network in every ensemble with this --seed, so a 3,3,3 ensemble contains the 1,1,1 one."""
    dnn_layers: tuple[int, int] = (1, 7)
    """DNN: hidden dense layers, drawn uniformly from this inclusive range."""
    dnn_units: tuple[int, int] = (128, 1023)
    """DNN: units of each hidden layer, drawn per layer (inclusive range)."""
    cnn_blocks: tuple[int, int] = (3, 9)
    """CNN: conv+pool+dropout blocks after the two-conv stem; only as many as fit 28x28 (4) are
    ever drawn (the source errors on deeper draws and silently redraws smaller)."""
    cnn_filters: tuple[int, int] = (128, 511)
    """CNN: filters of the stem (both convs) and of each block, drawn per block (inclusive)."""
    cnn_dense: int = 256
    """CNN: units of the dense layer before the max-norm-3 output layer."""
    rnn_units: tuple[int, int] = (32, 127)
    """RNN: units of the row LSTM and of the image LSTM, each drawn (inclusive range)."""
    optimizers: tuple[OptimizerName, ...] = ("rmsprop", "adagrad", "adam")
    """Each member draws its optimizer from these (the code's list; the paper names Adam and
    RMSprop only)."""
    dropout: float = 0.05
    """Dropout after each DNN layer and each CNN block / dense layer."""
    dead_below: float = 0.2
    """A member whose best validation accuracy is at or below this is reported dead and left
    out of both votes (chance is 0.1 on ten classes)."""
    epochs: int = 100
    """Epochs of every member (all members train side by side on the same batches)."""
    lr: float = 1.0
    """Scale of each member's Keras-default learning rate (RMSprop/Adam 0.001, Adagrad 0.01)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        counts = self.members.split(",")
        require(
            len(counts) == 3 and all(c.strip().isdigit() for c in counts),
            f"--members must be three counts DNN,CNN,RNN such as 3,3,3, got {self.members!r}",
        )
        total = sum(self.member_counts.values())
        require(
            1 <= total <= MAX_MEMBERS, f"--members must add up to 1..{MAX_MEMBERS}, got {total}"
        )
        for flag, (low, high), floor in (
            ("--dnn-layers", self.dnn_layers, 1),
            ("--dnn-units", self.dnn_units, 1),
            ("--cnn-blocks", self.cnn_blocks, 0),
            ("--cnn-filters", self.cnn_filters, 1),
            ("--rnn-units", self.rnn_units, 1),
        ):
            require(
                floor <= low <= high,
                f"{flag} must be LOW HIGH with {floor} <= LOW <= HIGH, got {low} {high}",
            )
        require(
            self.cnn_blocks[0] <= POOLS_THAT_FIT,
            f"--cnn-blocks LOW must be <= {POOLS_THAT_FIT} (2x2 pools that fit 28x28), got "
            f"{self.cnn_blocks[0]}",
        )
        require(self.cnn_dense >= 1, f"--cnn-dense must be >= 1, got {self.cnn_dense}")
        require(bool(self.optimizers), "--optimizers needs at least one of rmsprop adagrad adam")
        require(0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")
        require(0 <= self.dead_below < 1, f"--dead-below must be in [0, 1), got {self.dead_below}")

    @property
    def member_counts(self) -> dict[Kind, int]:
        return dict(zip(KINDS, (int(c) for c in self.members.split(",")), strict=True))
