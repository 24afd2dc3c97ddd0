"""`python -m ae_overfit`: what `uv run --package ae-overfit train` runs."""

from mnistlab.launch import starting

with starting():  # Ctrl-C while torch imports: one line, no traceback
    from ae_overfit.study import STUDY

if __name__ == "__main__":
    STUDY.main()
