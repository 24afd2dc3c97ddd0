"""`python -m compound_relu`: what `uv run --package compound-relu train` runs."""

from mnistlab.launch import starting

with starting():  # Ctrl-C while torch imports: one line, no traceback
    from compound_relu.study import STUDY

if __name__ == "__main__":
    STUDY.main()
