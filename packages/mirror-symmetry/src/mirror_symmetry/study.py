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
    bad_args=(("--runs", "0"), ("--lr", "-1"), ("--resume", "latest")),
    resumable=False,
)
