"""Mirror symmetry's registration (entry point `mnistlab.studies`)."""

from mirror_symmetry.config import MirrorConfig
from mirror_symmetry.reproduce import reproduce
from mirror_symmetry.train import DESCRIPTION, train
from mnistlab.study import Study

STUDY = Study(
    MirrorConfig,
    train,
    DESCRIPTION,
    reproduce=reproduce,
    smoke_args=("--runs", "64", "--sweeps", "50", "--backend", "eager"),
    bad_args=(
        ("--runs", "0"),
        ("--lr", "-1"),
        ("--runs", "1000000000"),  # refused by its memory estimate, before anything is allocated
        ("--resume", "latest"),
        ("--momentum", "1.5"),
        ("--mixed-precision", "bf16"),
        ("--backend", "kernel", "--dtype", "float64"),
    ),
    resumable=False,
)
