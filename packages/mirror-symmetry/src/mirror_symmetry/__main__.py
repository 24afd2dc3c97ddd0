"""`python -m mirror_symmetry`: the study's trainer (what `train` runs for this package)."""

from mirror_symmetry.cli import main

if __name__ == "__main__":
    main()
