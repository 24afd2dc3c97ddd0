"""`python -m rmdl`: what `uv run --package rmdl train` runs."""

from mnistlab.launch import starting

with starting():  # Ctrl-C while torch imports: one line, no traceback
    from rmdl.study import STUDY

if __name__ == "__main__":
    STUDY.main()
