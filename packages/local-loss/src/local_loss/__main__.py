"""`python -m local_loss`: what `uv run --package local-loss train` runs."""

from local_loss.study import STUDY

if __name__ == "__main__":
    STUDY.main()
