"""`python -m local_loss`: what `uv run --package local-loss train` runs."""

from mnistlab.launch import starting

with starting():  # Ctrl-C while torch imports: one line, no traceback
    from local_loss.study import STUDY

if __name__ == "__main__":
    STUDY.main()
