"""Guess-net's registration (entry point `mnistlab.studies`): trainer, reproduction, tests."""

from guess_net.config import GuessNetConfig
from guess_net.reproduce import reproduce
from guess_net.train import DESCRIPTION, train
from mnistlab.study import Study

STUDY = Study(
    GuessNetConfig,
    train,
    DESCRIPTION,
    reproduce=reproduce,
    smoke_args=(
        "--hidden",
        "32",
        "16",
        "--border",
        "--train-samples",
        "512",
        "--val-size",
        "256",
        "--batch-size",
        "64",
    ),
    bad_args=(
        ("--hidden", "1"),
        ("--flag-threshold", "1"),
        ("--gamma", "-1"),
        ("--alpha", "2"),
        ("--hard-fraction", "0"),
        ("--border-epoch", "0"),
        ("--border", "--border-epoch", "10", "--epochs", "3"),
        ("--no-border", "--border-epoch", "1"),
        ("--hidden", "2000000000"),
        ("--latent", "100000000000"),
        ("--dropout", "1"),
        ("--reconstruction", "bce", "--decoder-output", "linear"),
    ),
)
