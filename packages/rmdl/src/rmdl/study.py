"""RMDL's registration (entry point `mnistlab.studies`): trainer, reproduction, tests."""

from mnistlab.study import Study
from rmdl.config import RmdlConfig
from rmdl.reproduce import reproduce
from rmdl.train import DESCRIPTION, train

# One tiny member of each kind: seconds per epoch on a CPU.
TINY = (
    "--members",
    "1,1,1",
    "--dnn-units",
    "16",
    "32",
    "--cnn-filters",
    "4",
    "8",
    "--cnn-dense",
    "16",
    "--rnn-units",
    "8",
    "16",
)

STUDY = Study(
    RmdlConfig,
    train,
    DESCRIPTION,
    reproduce=reproduce,
    smoke_args=(*TINY, "--train-samples", "512", "--val-size", "256", "--batch-size", "64"),
    bad_args=(
        ("--members", "3,3"),
        ("--members", "0,0,0"),
        ("--members", "a,b,c"),
        ("--members", "200,200,200"),
        ("--cnn-blocks", "5", "9"),
        ("--dnn-units", "64", "32"),
        ("--dead-below", "1"),
        ("--optimizers", "sgd"),
    ),
)
