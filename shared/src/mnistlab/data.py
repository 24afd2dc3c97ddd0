"""MNIST-family datasets as whole uint8 tensors, from torchvision's raw files.

Files live in torchvision's layout, `<root>/<ClassName>/raw/<file>.gz`, and are checked against
torchvision's own MD5s. They are decoded straight from the `.gz` files, so a read-only folder that
holds only the raw files works offline; nothing is ever written into it. Decoded tensors are
cached in the user cache, keyed by the MD5 of the source file.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch
from torchvision import datasets as tv_datasets
from torchvision.datasets.utils import download_url

from mnistlab.cli import UsageError, first_line

DATA_ENV = "MNISTLAB_DATA"
CACHE_ENV = "MNISTLAB_CACHE"


@dataclass(frozen=True)
class DatasetInfo:
    torchvision_class: type[tv_datasets.MNIST]
    mean: float  # of the training pixels in [0, 1]; used to normalise
    std: float
    classes: int = 10
    train_size: int = 60_000  # images in the training split

    @property
    def folder(self) -> str:
        return self.torchvision_class.__name__


DATASETS = {
    "mnist": DatasetInfo(tv_datasets.MNIST, 0.1307, 0.3081),
    "fashion-mnist": DatasetInfo(tv_datasets.FashionMNIST, 0.2860, 0.3530),
    "kmnist": DatasetInfo(tv_datasets.KMNIST, 0.1918, 0.3483),
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, 1, 28, 28]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], self.labels[index])


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("mnistlab"))


def resolve_data_dir(data_dir: Path | None) -> Path:
    """--data-dir, else $MNISTLAB_DATA, else <user cache>/data."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return cache_dir() / "data"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_md5(info: DatasetInfo, filename: str) -> str:
    return dict(info.torchvision_class.resources)[filename]


def _download(info: DatasetInfo, filename: str, raw: Path) -> str:
    """Try each torchvision mirror; return '' on success, else the last error."""
    error = "no mirror"
    for mirror in info.torchvision_class.mirrors:
        try:
            download_url(mirror + filename, raw, filename, _expected_md5(info, filename))
            return ""
        except Exception as exc:  # network errors come in many types; report the last one
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
    return error


def locate_raw_file(name: str, filename: str, root: Path, download: bool = True) -> Path:
    """Path of a verified raw file; downloads it if missing and allowed."""
    info = DATASETS[name]
    path = root / info.folder / "raw" / filename
    if not path.is_file() and download:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"{name}: {path} is missing and {path.parent} cannot be created ({exc.strerror}); "
                f"put the raw files there or point --data-dir / ${DATA_ENV} at a folder that has them"
            ) from exc
        error = _download(info, filename, path.parent)
        if error and not path.is_file():
            raise UsageError(
                f"{name}: {path} is missing and the download failed ({error}); copy the raw .gz "
                f"files there or point --data-dir / ${DATA_ENV} at a folder that has them"
            )
    if not path.is_file():
        raise UsageError(
            f"{name}: {path} is missing; copy the raw .gz files there or point --data-dir / "
            f"${DATA_ENV} at a folder that has them"
        )
    actual, expected = _md5(path), _expected_md5(info, filename)
    if actual != expected:
        raise UsageError(
            f"{name}: {path} is corrupt or truncated (MD5 {actual}, expected {expected}); "
            "delete it and run again to re-download, or replace it with a good copy"
        )
    return path


def _decode_idx(path: Path, expected_ndim: int) -> torch.Tensor:
    """Decode a gzip'd big-endian IDX file of uint8 data (MNIST's format)."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise UsageError(f"{path} is not a readable gzip file ({exc}); replace it") from exc
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim != expected_ndim:
        raise UsageError(f"{path} is not an IDX uint8 file of {expected_ndim} dims; replace it")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = data[4 + 4 * ndim :]
    if len(body) != torch.Size(shape).numel():
        raise UsageError(f"{path} holds {len(body)} bytes of data, expected shape {shape}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def load_split(name: str, split: str, data_dir: Path | None = None) -> Split:
    """Load a whole split as tensors: images uint8 [N, 1, 28, 28], labels int64 [N]."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    root = resolve_data_dir(data_dir)
    image_file, label_file = SPLIT_FILES[split]
    image_path = locate_raw_file(name, image_file, root)
    label_path = locate_raw_file(name, label_file, root)

    cached = cache_dir() / "decoded" / f"{name}-{split}-{_md5(image_path)[:12]}.pt"
    if cached.is_file():
        try:
            return Split(**torch.load(cached, weights_only=True))
        except Exception:  # a damaged cache entry is rebuilt from the raw files below
            pass
    images = _decode_idx(image_path, 3).unsqueeze(1)
    labels = _decode_idx(label_path, 1).long()
    if len(images) != len(labels):
        raise UsageError(f"{image_path} and {label_path} disagree on the number of samples")
    _write_cache(cached, {"images": images, "labels": labels})
    return Split(images, labels)


def _write_cache(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Best effort: a cache that cannot be written only costs decode time next run, which the
    warning says."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tensors, partial)
        os.replace(partial, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        print(
            f"warning: cannot write the decoded-data cache {path.parent} ({first_line(exc)}); "
            f"the data is decoded again on every run; set ${CACHE_ENV} to a writable folder",
            file=sys.stderr,
            flush=True,
        )


def carve_validation(train: Split, size: int, seed: int) -> tuple[Split, Split]:
    """Split off a fixed, seeded validation set of `size` samples from the training split."""
    if not 0 < size < len(train):
        raise UsageError(f"--val-size must be between 1 and {len(train) - 1}, got {size}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    return train.subset(order[size:]), train.subset(order[:size])
