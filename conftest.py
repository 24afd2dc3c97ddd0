"""Fixtures shared by every package's tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).parent
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def pytest_configure(config: pytest.Config) -> None:
    # Tests never talk to wandb and never touch the user's cache.
    os.environ["WANDB_MODE"] = "disabled"
    os.environ["MNISTLAB_CACHE"] = tempfile.mkdtemp(prefix="mnistlab-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.pop("MNISTLAB_CACHE", ""), ignore_errors=True)


def _data_root() -> Path:
    return Path(os.environ.get("MNISTLAB_DATA") or REPO.parent / "shared" / "data")


def has_dataset(folder: str) -> bool:
    return all((_data_root() / folder / "raw" / f).is_file() for f in MNIST_FILES)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The raw-file data root (MNISTLAB_DATA or ../shared/data); skips if MNIST is absent."""
    if not has_dataset("MNIST"):
        pytest.skip(f"MNIST raw files not found under {_data_root()} (set MNISTLAB_DATA)")
    # Command lines run in tests without --data-dir find the same files.
    os.environ.setdefault("MNISTLAB_DATA", str(_data_root()))
    return _data_root()
