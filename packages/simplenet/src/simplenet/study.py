"""SimpleNet's registration (entry point `mnistlab.studies`): trainer, reproduction, tests."""

from mnistlab.study import Study
from simplenet.config import SimpleNetConfig
from simplenet.reproduce import reproduce
from simplenet.train import DESCRIPTION, train

STUDY = Study(
    SimpleNetConfig,
    train,
    DESCRIPTION,
    reproduce=reproduce,
    smoke_args=(
        "--model",
        "fast-tiny",
        "--recipe",
        "paper",
        "--train-samples",
        "512",
        "--val-size",
        "256",
        "--batch-size",
        "64",
    ),
    bad_args=(
        ("--preset", "fastest"),
        ("--recipe", "sgd"),
        ("--model", "resnet"),
        ("--dropout", "1"),
        ("--label-smoothing", "-0.1"),
        ("--bn-momentum", "0"),
        ("--warmup", "1"),
        ("--weight-decay", "-1"),
        ("--tta", "9"),
    ),
)
