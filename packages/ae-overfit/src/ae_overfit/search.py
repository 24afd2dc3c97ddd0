"""`python -m ae_overfit.search`: the question's rule, automated. Each step trains one
autoencoder to convergence; while its training excess BCE (loss minus the floor) is above
--target-excess the rule grows the model: the latent while model dimension > latent, else more
ReLUs. Every step is a run under OUT_DIR/ae-overfit-search/RUN_NAME/runs/, reused when finished
and resumed when interrupted, so running the same command again continues the search."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from ae_overfit.config import AEConfig
from ae_overfit.train import train
from mnistlab.cli import parse_config
from mnistlab.config import require
from mnistlab.entry import guarded_main
from mnistlab.study import train_or_reuse


def _start() -> AEConfig:
    return AEConfig(tracker="none")


@dataclass
class SearchConfig:
    target_excess: float = 1.0
    """Stop once the converged training excess BCE (nats per image) is at most this; the
    question's 'loss is 0' read against the floor."""
    growth: int = 2
    """The latent grows by this factor (capped at the model dimension); adding ReLUs multiplies
    every hidden width by it."""
    max_runs: int = 8
    """Give up after this many steps (each one a training run)."""
    out_dir: Path = Path("runs")
    """The search goes to OUT_DIR/ae-overfit-search/RUN_NAME/."""
    run_name: str = "default"
    train: AEConfig = field(default_factory=_start)
    """Training settings of every step; --train.hidden and --train.latent are the start."""

    def __post_init__(self) -> None:
        require(self.target_excess >= 0, f"--target-excess must be >= 0, got {self.target_excess}")
        require(self.growth >= 2, f"--growth must be >= 2, got {self.growth}")
        require(self.max_runs >= 1, f"--max-runs must be >= 1, got {self.max_runs}")
        require(
            bool(self.run_name) and "/" not in self.run_name,
            f"--run-name must be a plain folder name, got {self.run_name!r}",
        )


def model_dimension(hidden: Sequence[int]) -> int:
    """The question's 'model dimension': 2 x the number of ReLUs, counting the encoder's (the
    layer list the question writes down; the decoder mirrors them)."""
    return 2 * sum(hidden)


def next_step(
    hidden: tuple[int, ...], latent: int, train_excess: float, target: float, growth: int
) -> tuple[str, tuple[int, ...], int]:
    """The question's rule: (decision, next hidden widths, next latent)."""
    if train_excess <= target:
        return "stop: converged at the target", hidden, latent
    if model_dimension(hidden) > latent:
        return "grow latent", hidden, min(latent * growth, model_dimension(hidden))
    return "add ReLUs", tuple(w * growth for w in hidden), latent


def architecture_name(hidden: Sequence[int], latent: int) -> str:
    return "784-" + "-".join(map(str, hidden)) + f"-z{latent}"


def search(config: SearchConfig, folder: Path | None = None) -> list[dict]:
    folder = folder or config.out_dir / "ae-overfit-search" / config.run_name
    hidden, latent = config.train.hidden, config.train.latent
    steps: list[dict] = []
    for index in range(config.max_runs):
        name = f"{index:02d}-{architecture_name(hidden, latent)}"
        summary = train_or_reuse(
            train,
            dataclasses.replace(
                config.train, hidden=hidden, latent=latent, out_dir=folder / "runs", run_name=name
            ),
        )
        step = step_record(summary)
        decision, hidden, latent = next_step(
            step["hidden"],
            step["latent"],
            step["train_excess"],
            config.target_excess,
            config.growth,
        )
        step["decision"] = (
            decision
            if index + 1 < config.max_runs or decision.startswith("stop")
            else f"stop: --max-runs {config.max_runs} reached"
        )
        steps.append(step)
        if decision.startswith("stop"):
            break
    write_results(steps, folder, config)
    return steps


def step_record(summary: dict) -> dict:
    """One table row from a finished run's summary."""
    metrics, cfg = summary["metrics"], summary["config"]
    hidden = tuple(cfg["hidden"])
    record = {
        "hidden": hidden,
        "latent": cfg["latent"],
        "params": int(metrics["params"]),
        "model_dim": model_dimension(hidden),
        "epochs": summary["epochs"],
        "converged": bool(metrics["converged"]),
        "train_samples": int(metrics["train_samples"]),
    }
    for split in ("train", "test"):
        for name in ("bce", "floor", "excess"):
            record[f"{split}_{name}"] = metrics[f"{split}/{name}"]
    return record


def markdown_table(steps: list[dict], caption: str) -> str:
    lines = [
        caption,
        "",
        "| step | layers | latent | model dim | params | epochs | train BCE | train floor "
        "| train excess | test BCE | test excess | rule's decision |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for index, s in enumerate(steps):
        epochs = f"{s['epochs']}" + ("" if s["converged"] else " (cap)")
        lines.append(
            f"| {index} | {architecture_name(s['hidden'], s['latent'])} | {s['latent']} | "
            f"{s['model_dim']} | {s['params']:,} | {epochs} | {s['train_bce']:.2f} | "
            f"{s['train_floor']:.2f} | {s['train_excess']:.2f} | {s['test_bce']:.2f} | "
            f"{s['test_excess']:.2f} | {s.get('decision', '')} |"
        )
    return "\n".join(lines) + "\n"


def plot_excess(steps: list[dict], path: Path, x: str, title: str) -> None:
    """Train and test excess BCE against `x` (params or train_samples), log-scaled."""
    figure = Figure(figsize=(6, 4))
    ax = figure.subplots()
    xs = [s[x] for s in steps]
    ax.plot(xs, [s["train_excess"] for s in steps], "o-", label="train excess BCE")
    ax.plot(xs, [s["test_excess"] for s in steps], "s-", label="test excess BCE")
    ax.set_xscale("log")
    ax.set_xlabel("parameters" if x == "params" else "training images")
    ax.set_ylabel("BCE − entropy floor (nats / image)")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_title(title)
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def write_results(steps: list[dict], folder: Path, config: SearchConfig) -> None:
    t = config.train
    caption = (
        f"The question's rule, automated (target train excess ≤ {config.target_excess} "
        f"nats, growth ×{config.growth}); MNIST, {steps[0]['train_samples']} training "
        f"images, Adam lr {t.lr}, batch {t.batch_size}, seed {t.seed}, each step until "
        f"the loss changed < {100 * t.converge_tolerance:g}% for {t.converge_window} "
        f"epochs or {t.epochs} epochs. BCE in nats per image; excess = BCE − floor."
    )
    save_experiment(
        folder / "search",
        markdown_table(steps, caption),
        steps,
        "params",
        "the question's rule, step by step",
    )


def save_experiment(stem: Path, table: str, records: list[dict], x: str, title: str) -> None:
    """STEM.md (the table), STEM.json (the records) and STEM.png (excess against `x`)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(table)
    stem.with_suffix(".json").write_text(json.dumps(records, indent=2))
    plot_excess(records, stem.with_suffix(".png"), x, title)
    print(table)
    print(f"written: {stem}.md, {stem}.png")


def main(argv: Sequence[str] | None = None) -> None:
    guarded_main(lambda: search(parse_config(SearchConfig, argv, __doc__ or "")))


if __name__ == "__main__":
    main()
