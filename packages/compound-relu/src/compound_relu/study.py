"""Compound ReLU's registration (entry point `mnistlab.studies`): trainer, reproduction, tests."""

from compound_relu.config import CompoundConfig
from compound_relu.reproduce import reproduce
from compound_relu.train import DESCRIPTION, train
from mnistlab.study import Study

STUDY = Study(
    CompoundConfig,
    train,
    DESCRIPTION,
    reproduce=reproduce,
    smoke_args=(
        "--width",
        "32",
        "--train-samples",
        "512",
        "--val-size",
        "256",
        "--batch-size",
        "64",
    ),
    bad_args=(
        ("--hyper-fraction", "0.6", "--hypo-fraction", "0.5"),
        ("--hypo-fraction", "-0.1"),
        ("--threshold", "0"),
        ("--chunk", "-1"),
        ("--depth", "1"),
        ("--hyper-gradient", "none"),
        ("--arch", "plain", "--hyper-gradient", "zero"),
        ("--width", "4", "--hyper-fraction", "0.5", "--hypo-fraction", "0.4"),
        ("--width", "16384", "--depth", "64"),
    ),
)
