"""AE-overfit's reproduction for `uv run report`: the question's model beside its BCE floor, the
question's rule automated (search), and the memorisation sweep. Every run is reused when
finished and resumed when interrupted, so an interrupted report continues."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ae_overfit.config import AEConfig
from ae_overfit.memorise import MemoriseConfig, memorisation_onset, memorise
from ae_overfit.search import SearchConfig, architecture_name, search
from ae_overfit.train import train
from mnistlab.study import Budget, Row, train_or_reuse

SOURCE_REF = "2019 question 'has anyone managed to overfit an MNIST autoencoder?': best ~55"
# The question's model: encoder [784, 256, 256], linear latent (its width is not given; 32 is
# our choice), mirrored decoder, sigmoid output, summed BCE.
QUESTION = AEConfig(hidden=(256, 256), latent=32, tracker="none")
# quick: minutes on a 2-core CPU, so subsets and epoch caps; full: all 55,000 training images.
QUICK_QUESTION = dataclasses.replace(QUESTION, train_samples=5000, val_size=1000, epochs=10)
QUICK_SEARCH = SearchConfig(
    max_runs=3,
    train=AEConfig(
        hidden=(64,),
        latent=8,
        train_samples=2000,
        val_size=500,
        batch_size=32,
        epochs=20,
        tracker="none",
    ),
)
QUICK_MEMORISE = MemoriseConfig(
    sizes=(1000, 300, 100),
    steps=1500,
    train=AEConfig(
        hidden=(256,),
        latent=32,
        val_size=256,
        batch_size=32,
        converge_tolerance=0.0,
        tracker="none",
    ),
)
FULL_SEARCH = SearchConfig(train=QUESTION)
FULL_MEMORISE = MemoriseConfig(steps=10_000)


def question_runs(config: AEConfig, seeds: tuple[int, ...], folder: Path) -> list[dict]:
    return [
        train_or_reuse(
            train,
            dataclasses.replace(
                config, seed=seed, out_dir=folder / "runs", run_name=f"question-s{seed}"
            ),
        )
        for seed in seeds
    ]


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    """The question's plateau split into floor and excess, the automated rule's last step, and
    the training-set size where a fixed model starts to memorise."""
    quick = budget == "quick"
    question = QUICK_QUESTION if quick else QUESTION
    seeds = (0,) if quick else (0, 1, 2)
    summaries = question_runs(question, seeds, folder)
    steps = search(QUICK_SEARCH if quick else FULL_SEARCH, folder / "search")
    memorise_config = QUICK_MEMORISE if quick else FULL_MEMORISE
    sizes = memorise(memorise_config, folder / "memorise")

    command = f"uv run report --budget {budget} --studies ae-overfit"
    stops = ["rule" if s["metrics"]["converged"] else "cap" for s in summaries]
    data = (
        f"{question.train_samples or 55_000} training images; epochs "
        f"{[s['epochs'] for s in summaries]} (stopped by {stops}, cap {question.epochs})"
    )
    name = architecture_name(question.hidden, question.latent)

    def row(setting: str, values: list[float], note: str = "", source: float | None = None) -> Row:
        return Row(
            setting=setting,
            values=values,
            unit="nats per image",
            source=source,
            source_ref=SOURCE_REF if source is not None else "",
            tolerance=5.0,
            higher_is_better=False,
            command=command,
            note=note,
        )

    def metric(key: str) -> list[float]:
        return [s["metrics"][key] for s in summaries]

    rows = [
        row(f"question's AE {name}: train BCE", metric("train/bce"), data, 55.0),
        row(f"question's AE {name}: BCE floor of its training images", metric("train/floor")),
        row(f"question's AE {name}: train excess BCE (BCE − floor)", metric("train/excess")),
        row(f"question's AE {name}: test excess BCE", metric("test/excess")),
    ]
    last = steps[-1]
    rows.append(
        row(
            f"search's last step {architecture_name(last['hidden'], last['latent'])}: "
            "train excess BCE",
            [last["train_excess"]],
            f"{len(steps)} steps; {last['decision']}",
        )
    )
    onset = memorisation_onset(sizes, memorise_config.memorised_below)
    smallest = sizes[-1]
    fixed = architecture_name(memorise_config.train.hidden, memorise_config.train.latent)
    rows.append(
        row(
            f"memorise {fixed}: test − train excess at {smallest['train_samples']} training images",
            [smallest["test_excess"] - smallest["train_excess"]],
            f"memorisation (train excess ≤ {memorise_config.memorised_below:g}) starts "
            + (
                f"at {onset['train_samples']} images"
                if onset
                else f"at none of {[s['train_samples'] for s in sizes]}"
            ),
        )
    )
    table = [
        "| setting | ours (nats/image) | note |",
        "|---|---|---|",
        *(f"| {r.setting} | {r.ours} | {r.note} |" for r in rows),
    ]
    (folder / "table.md").write_text("\n".join(table) + "\n")
    return rows
