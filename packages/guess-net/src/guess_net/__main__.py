"""`python -m guess_net`: what `uv run --package guess-net train` runs."""

from guess_net.study import STUDY

if __name__ == "__main__":
    STUDY.main()
