"""`python -m ae_overfit.memorise`: where does a fixed autoencoder start to memorise? Train it
on ever smaller training sets (each run to convergence, or to the same number of optimizer
steps) and report train and test excess BCE: memorisation is train excess near 0 while test
excess grows. Runs go to OUT_DIR/ae-overfit-memorise/RUN_NAME/runs/ and are reused/resumed."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ae_overfit.config import AEConfig
from ae_overfit.search import architecture_name, save_experiment, step_record
from ae_overfit.train import train
from mnistlab.cli import parse_config
from mnistlab.config import require
from mnistlab.entry import guarded_main
from mnistlab.study import train_or_reuse


def _model() -> AEConfig:
    # Batch 32 and a small validation split: a 100-image set still gets 4 steps per epoch,
    # and the per-epoch evaluation stays cheap.
    return AEConfig(
        hidden=(256,),
        latent=32,
        batch_size=32,
        val_size=500,
        converge_tolerance=0.0,
        tracker="none",
    )


@dataclass
class MemoriseConfig:
    sizes: tuple[int, ...] = (55_000, 10_000, 3000, 1000, 300, 100)
    """Training-set sizes (the first N images of the training split after the val carve)."""
    steps: int = 4000
    """Optimizer steps of each run (its epochs: this over the steps per epoch), so small sets get
    as much training as large ones. The convergence rule is off by default here: on a small set
    an epoch is a few steps, and '< 1% per epoch' stops long before the loss stops falling."""
    memorised_below: float = 1.0
    """Train excess BCE (nats per image) at or below which a training set counts as memorised."""
    out_dir: Path = Path("runs")
    """The experiment goes to OUT_DIR/ae-overfit-memorise/RUN_NAME/."""
    run_name: str = "default"
    train: AEConfig = field(default_factory=_model)
    """The fixed model and its training settings (--train.train-samples is set per size)."""

    def __post_init__(self) -> None:
        require(
            bool(self.sizes) and all(n >= 1 for n in self.sizes),
            f"--sizes must be positive integers, got {list(self.sizes)}",
        )
        require(self.steps >= 1, f"--steps must be >= 1, got {self.steps}")
        require(self.memorised_below >= 0, "--memorised-below must be >= 0")
        require(
            bool(self.run_name) and "/" not in self.run_name,
            f"--run-name must be a plain folder name, got {self.run_name!r}",
        )


def memorisation_onset(rows: list[dict], threshold: float) -> dict | None:
    """The largest training set memorised (train excess <= threshold), or None."""
    memorised = [r for r in rows if r["train_excess"] <= threshold]
    return max(memorised, key=lambda r: r["train_samples"]) if memorised else None


def memorise(config: MemoriseConfig, folder: Path | None = None) -> list[dict]:
    folder = folder or config.out_dir / "ae-overfit-memorise" / config.run_name
    rows = []
    for size in sorted(set(config.sizes), reverse=True):
        steps_per_epoch = -(-size // config.train.batch_size)
        summary = train_or_reuse(
            train,
            dataclasses.replace(
                config.train,
                train_samples=size,
                epochs=max(1, config.steps // steps_per_epoch),
                out_dir=folder / "runs",
                run_name=f"n{size}",
            ),
        )
        rows.append(step_record(summary))
    write_results(rows, folder, config)
    return rows


def write_results(rows: list[dict], folder: Path, config: MemoriseConfig) -> None:
    t = config.train
    onset = memorisation_onset(rows, config.memorised_below)
    stopping = (
        "convergence rule off"
        if t.converge_tolerance == 0
        else "or fewer, if the convergence rule stopped it"
    )
    lines = [
        f"Memorisation of a fixed {architecture_name(t.hidden, t.latent)} autoencoder "
        f"({rows[0]['params']:,} params): MNIST, Adam lr {t.lr}, batch {t.batch_size}, "
        f"seed {t.seed}, {config.steps} steps per run ({stopping}). "
        "BCE in nats per image; excess = BCE − floor; test = the 10,000 MNIST test images.",
        "",
        "| training images | epochs | train BCE | train excess | test BCE | test excess "
        "| gap (test − train excess) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        epochs = f"{r['epochs']}" + ("" if r["converged"] else " (cap)")
        lines.append(
            f"| {r['train_samples']:,} | {epochs} | {r['train_bce']:.2f} | "
            f"{r['train_excess']:.2f} | {r['test_bce']:.2f} | {r['test_excess']:.2f} "
            f"| {r['test_excess'] - r['train_excess']:.2f} |"
        )
    lines += [
        "",
        f"Memorisation (train excess ≤ {config.memorised_below:g} nats) starts at "
        + (
            f"{onset['train_samples']:,} training images (test excess there "
            f"{onset['test_excess']:.2f})."
            if onset
            else "none of these sizes."
        ),
    ]
    title = f"fixed {architecture_name(t.hidden, t.latent)}: shrinking the training set"
    save_experiment(folder / "memorise", "\n".join(lines) + "\n", rows, "train_samples", title)


def main(argv: Sequence[str] | None = None) -> None:
    guarded_main(lambda: memorise(parse_config(MemoriseConfig, argv, __doc__ or "")))


if __name__ == "__main__":
    main()
