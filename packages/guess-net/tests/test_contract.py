"""The study contract of `mnistlab.testing`: help, bad values, missing data, smoke, resume."""

from guess_net.study import STUDY
from mnistlab.testing import StudyContract


class TestContract(StudyContract):
    study = STUDY
