"""`python -m guess_net`: what `uv run --package guess-net train` runs."""

from mnistlab.launch import starting

with starting():  # Ctrl-C while torch imports: one line, no traceback
    from guess_net.study import STUDY

if __name__ == "__main__":
    STUDY.main()
