"""`python -m kakuritsu`: what `uv run --package kakuritsu train` runs."""

from mnistlab.launch import starting

with starting():  # Ctrl-C while torch imports: one line, no traceback
    from kakuritsu.study import STUDY

if __name__ == "__main__":
    STUDY.main()
