"""`python -m mirror_symmetry`: what `uv run --package mirror-symmetry train` runs."""

from mirror_symmetry.study import STUDY

if __name__ == "__main__":
    STUDY.main()
