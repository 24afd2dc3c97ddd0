from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import has_dataset

from mnistlab.classify import ClassifierConfig
from mnistlab.cli import UsageError
from mnistlab.data import DATASETS, Split, carve_validation, load_split


def snapshot(folder: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in folder.rglob("*")}


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "kmnist"])
def test_splits_have_the_documented_shapes_and_class_counts(data_dir: Path, name: str) -> None:
    if not has_dataset(DATASETS[name].folder):
        pytest.skip(f"{name} raw files are not available here")
    before = snapshot(data_dir)
    train, test = load_split(name, "train", data_dir), load_split(name, "test", data_dir)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert len(train) == DATASETS[name].train_size  # what --val-size is checked against
    assert test.images.shape == (10000, 1, 28, 28) and test.labels.dtype == torch.int64
    assert (
        train.labels.bincount().tolist()[:3]
        == {"mnist": [5923, 6742, 5958], "fashion-mnist": [6000] * 3, "kmnist": [6000] * 3}[name]
    )
    assert snapshot(data_dir) == before, "loading must never write into the data folder"


def test_decoded_cache_gives_identical_tensors(data_dir: Path) -> None:
    first = load_split("mnist", "test", data_dir)
    second = load_split("mnist", "test", data_dir)  # from the decoded cache
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)


def copy_mnist(data_dir: Path, target: Path) -> Path:
    raw = target / "MNIST" / "raw"
    shutil.copytree(data_dir / "MNIST" / "raw", raw)
    return raw


def test_truncated_file_is_refused_with_its_name_and_the_fix(data_dir: Path, tmp_path: Path):
    raw = copy_mnist(data_dir, tmp_path)
    victim = raw / "t10k-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:1000])
    with pytest.raises(UsageError) as error:
        load_split("mnist", "test", tmp_path)
    message = str(error.value)
    assert str(victim) in message and "MD5" in message and "delete it" in message
    assert "\n" not in message


def test_missing_files_in_an_unwritable_place_are_refused_without_download(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(UsageError, match="train-images-idx3-ubyte.gz is missing"):
        load_split("mnist", "train", blocker)


def test_data_root_falls_back_to_the_environment(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("MNISTLAB_DATA", os.fspath(data_dir))
    assert len(load_split("mnist", "test")) == 10000


def test_an_unwritable_cache_is_one_warning_line(data_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MNISTLAB_CACHE", os.fspath(tmp_path / "a-file" / "cache"))
    assert len(load_split("mnist", "test", data_dir)) == 10000
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: cannot write the decoded-data cache")
    assert "MNISTLAB_CACHE" in lines[0]


def test_unknown_dataset_is_refused() -> None:
    with pytest.raises(UsageError, match="unknown dataset 'cifar'"):
        load_split("cifar", "train")


def test_validation_split_is_fixed_by_seed_disjoint_and_covering() -> None:
    ids = torch.arange(500)  # labels double as sample ids
    full = Split(images=torch.zeros(500, 1, 28, 28, dtype=torch.uint8), labels=ids)
    train_a, val_a = carve_validation(full, 100, seed=3)
    _, val_b = carve_validation(full, 100, seed=3)
    _, val_c = carve_validation(full, 100, seed=4)
    assert torch.equal(val_a.labels, val_b.labels)
    assert not torch.equal(val_a.labels, val_c.labels)
    assert len(val_a) == 100 and len(train_a) == 400
    assert sorted(train_a.labels.tolist() + val_a.labels.tolist()) == ids.tolist()
    with pytest.raises(UsageError, match="--val-size"):
        carve_validation(full, 0, seed=0)


def test_a_val_size_beyond_the_training_split_is_refused_naming_the_valid_range() -> None:
    ClassifierConfig(val_size=0)  # validates on test
    ClassifierConfig(val_size=59_999)
    with pytest.raises(UsageError, match=r"--val-size must be between 0 .* and 59999, got 70000"):
        ClassifierConfig(val_size=70_000)
