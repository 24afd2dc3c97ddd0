"""Local-loss's registration (entry point `mnistlab.studies`): trainer, reproduction, tests."""

from local_loss.config import LocalLossConfig
from local_loss.reproduce import reproduce
from local_loss.train import DESCRIPTION, train
from mnistlab.study import Study

STUDY = Study(
    LocalLossConfig,
    train,
    DESCRIPTION,
    reproduce=reproduce,
    smoke_args=(
        "--hidden",
        "64",
        "--train-samples",
        "512",
        "--val-size",
        "256",
        "--batch-size",
        "64",
    ),
    bad_args=(
        ("--loss", "backprop"),
        ("--net", "resnet18"),
        ("--beta", "1.5"),
        ("--beta", "0.5", "--loss", "pred"),
        ("--dropout", "1"),
        ("--milestones", "50", "40"),
        ("--milestones", "50", "--epochs", "2"),
        ("--feat-mult", "0"),
        ("--hidden", "2000000000"),
    ),
)
