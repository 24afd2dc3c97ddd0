"""`python -m rmdl.predict RUN`: classify with a saved ensemble (members rebuilt from their
specs): the dataset's test split, or every PNG of a folder. Prints (and with --out writes as
CSV) each image's majority vote, mean-probability vote and every member's vote; dead members
are shown but do not vote."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import tyro
from PIL import Image, UnidentifiedImageError

from mnistlab.cli import UsageError, parse_config
from mnistlab.data import load_split
from mnistlab.entry import guarded_main
from rmdl.ensemble import (
    ENSEMBLE_DIR,
    INDEX_FILE,
    VOTES,
    load_ensemble,
    tie_percent,
    vote,
    voters,
)
from rmdl.members import IMAGE_SIZE, Member

BATCH = 1000


@dataclass
class PredictConfig:
    run: tyro.conf.Positional[Path]
    """A finished rmdl run folder (or its ensemble/ folder)."""
    images: Path | None = None
    """Folder of PNG images (white digit on black, as MNIST; resized to 28x28). Default: the
    test split of the run's dataset."""
    out: Path | None = None
    """Write one CSV row per image: image, label (test split), vote, average, member votes."""
    data_dir: Path | None = None
    """Dataset root for the test split (default: $MNISTLAB_DATA, else the user cache)."""


def ensemble_folder(run: Path) -> Path:
    """The run's saved ensemble, refused in one line when it or its members' weights are
    missing (a committed run keeps the members' specs and the index, not their weights)."""
    for folder in (run / ENSEMBLE_DIR, run):
        if (folder / INDEX_FILE).is_file():
            names = [
                row["name"] for row in json.loads((folder / INDEX_FILE).read_text())["members"]
            ]
            missing = [f"{name}.pt" for name in names if not (folder / f"{name}.pt").is_file()]
            if missing:
                raise UsageError(
                    f"{folder} describes the ensemble but lacks its weights ({', '.join(missing)}"
                    "; a committed run keeps none); train the run again to classify with it"
                )
            return folder
    raise UsageError(
        f"{run} holds no saved ensemble ({ENSEMBLE_DIR}/{INDEX_FILE}); pass the "
        "folder of a finished rmdl run"
    )


def read_pngs(folder: Path) -> tuple[list[str], torch.Tensor]:
    """Every *.png under `folder` (sorted) as [N, 1, 28, 28] pixels / 255."""
    if not folder.is_dir():
        raise UsageError(f"--images {folder} is not a folder; give a folder of PNG files")
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise UsageError(f"--images {folder} has no .png files")
    images = []
    for path in paths:
        try:
            image = Image.open(path).convert("L").resize((IMAGE_SIZE, IMAGE_SIZE))
        except (OSError, UnidentifiedImageError) as exc:
            raise UsageError(f"--images: {path} cannot be read as an image ({exc})") from exc
        images.append(torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8))
    pixels = torch.stack(images).reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE).float() / 255.0
    return [path.name for path in paths], pixels


@torch.no_grad()
def member_probabilities(members: list[Member], pixels: torch.Tensor) -> torch.Tensor:
    """[members, images, classes]"""
    return torch.stack(
        [
            torch.cat([F.softmax(member(batch), dim=1) for batch in pixels.split(BATCH)])
            for member in members
        ]
    )


def predict(config: PredictConfig) -> dict[str, torch.Tensor]:
    folder = ensemble_folder(config.run)
    members, index = load_ensemble(folder)
    if config.images is not None:
        names, pixels = read_pngs(config.images)
        labels = None
    else:
        split = load_split(index["dataset"], "test", config.data_dir)
        names = [f"test-{i}" for i in range(len(split))]
        pixels, labels = split.images.float() / 255.0, split.labels
    probabilities = member_probabilities(members, pixels)
    alive = voters(torch.tensor([row["val_acc1"] for row in index["members"]]), index["dead_below"])
    votes = vote(probabilities, alive)
    member_votes = probabilities.argmax(dim=2)
    member_names = [row["name"] + (" (dead)" if row["dead"] else "") for row in index["members"]]
    header = ["image", "label", "vote", "average", *member_names]
    rows = [
        [
            name,
            "" if labels is None else int(labels[i]),
            int(votes["vote"][i]),
            int(votes["average"][i]),
            *member_votes[:, i].tolist(),
        ]
        for i, name in enumerate(names)
    ]
    if labels is None:  # a folder: every image's line
        print("\t".join(header))
        for row in rows:
            print("\t".join(map(str, row)))
    else:
        for method in VOTES:
            error = 100 * (votes[method] != labels).float().mean().item()
            print(
                f"{index['dataset']} test, {method}: error {error:.2f}% "
                f"({int(alive.sum())} of {len(members)} members vote)"
            )
        print(f"majority-vote ties (broken by mean probability): {tie_percent(votes):.2f}%")
    if config.out is not None:
        try:
            with config.out.open("w", newline="") as f:
                csv.writer(f).writerows([header, *rows])
        except OSError as exc:
            raise UsageError(f"--out {config.out}: cannot write ({exc.strerror})") from exc
        print(f"written: {config.out}")
    return {**votes, "members": member_votes}


def main(argv: Sequence[str] | None = None) -> None:
    guarded_main(lambda: predict(parse_config(PredictConfig, argv, __doc__ or "")))


if __name__ == "__main__":
    main(sys.argv[1:])
