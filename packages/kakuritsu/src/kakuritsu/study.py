"""Kakuritsu's registration (entry point `mnistlab.studies`): trainer, reproduction, tests."""

from kakuritsu.config import KakuritsuConfig
from kakuritsu.reproduce import reproduce
from kakuritsu.train import DESCRIPTION, train
from mnistlab.study import Study

STUDY = Study(
    KakuritsuConfig,
    train,
    DESCRIPTION,
    reproduce=reproduce,
    smoke_args=(
        "--model",
        "small",
        "--hidden",
        "32",
        "--train-samples",
        "512",
        "--val-size",
        "256",
        "--batch-size",
        "64",
        "--mc-samples",
        "2",
    ),
    bad_args=(
        ("--p", "0"),
        ("--image-size", "0"),
        ("--arch", "alexnet", "--dummy"),
        ("--hidden", "2000000000"),
        ("--dropout", "1"),
        ("--dummy", "--image-size", "100000"),
        ("--mc-samples", "0"),
    ),
)
