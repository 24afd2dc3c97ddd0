"""`python -m simplenet`: what `uv run --package simplenet train` runs."""

from simplenet.study import STUDY

if __name__ == "__main__":
    STUDY.main()
