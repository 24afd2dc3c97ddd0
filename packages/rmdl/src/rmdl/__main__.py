"""`python -m rmdl`: what `uv run --package rmdl train` runs."""

from rmdl.study import STUDY

if __name__ == "__main__":
    STUDY.main()
