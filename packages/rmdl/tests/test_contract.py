"""The study contract of `mnistlab.testing`: help, bad values, missing data, smoke, resume."""

from mnistlab.testing import StudyContract
from rmdl.study import STUDY


class TestContract(StudyContract):
    study = STUDY
