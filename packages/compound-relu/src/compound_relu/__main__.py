"""`python -m compound_relu`: what `uv run --package compound-relu train` runs."""

from compound_relu.study import STUDY

if __name__ == "__main__":
    STUDY.main()
