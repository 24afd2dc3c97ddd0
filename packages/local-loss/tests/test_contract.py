"""The study contract of `mnistlab.testing`: help, bad values, missing data, smoke, resume."""

from local_loss.study import STUDY
from mnistlab.testing import StudyContract


class TestContract(StudyContract):
    study = STUDY
