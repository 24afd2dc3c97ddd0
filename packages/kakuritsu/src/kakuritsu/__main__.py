"""`python -m kakuritsu`: what `uv run --package kakuritsu train` runs."""

from kakuritsu.study import STUDY

if __name__ == "__main__":
    STUDY.main()
