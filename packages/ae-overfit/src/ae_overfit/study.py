"""AE-overfit's registration (entry point `mnistlab.studies`): trainer, reproduction, tests."""

from ae_overfit.config import AEConfig
from ae_overfit.reproduce import reproduce
from ae_overfit.train import DESCRIPTION, train
from mnistlab.study import Study

STUDY = Study(
    AEConfig,
    train,
    DESCRIPTION,
    reproduce=reproduce,
    smoke_args=(
        "--hidden",
        "32",
        "--latent",
        "8",
        "--train-samples",
        "512",
        "--val-size",
        "256",
        "--batch-size",
        "64",
    ),
    bad_args=(
        ("--hidden",),
        ("--hidden", "256", "0"),
        ("--hidden", "-5"),
        ("--hidden", "2.5"),
        ("--latent", "0"),
        ("--hidden", "2000000000"),
        ("--converge-tolerance", "1"),
        ("--decoder", "relu"),
    ),
)
