"""`python -m simplenet`: what `uv run --package simplenet train` runs."""

from mnistlab.launch import starting

with starting():  # Ctrl-C while torch imports: one line, no traceback
    from simplenet.study import STUDY

if __name__ == "__main__":
    STUDY.main()
