"""`python -m mirror_symmetry`: what `uv run --package mirror-symmetry train` runs."""

from mnistlab.launch import starting

with starting():  # Ctrl-C while torch imports: one line, no traceback
    from mirror_symmetry.study import STUDY

if __name__ == "__main__":
    STUDY.main()
