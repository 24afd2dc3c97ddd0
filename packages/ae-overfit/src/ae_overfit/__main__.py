"""`python -m ae_overfit`: what `uv run --package ae-overfit train` runs."""

from ae_overfit.study import STUDY

if __name__ == "__main__":
    STUDY.main()
