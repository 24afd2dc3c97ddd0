"""Local-loss's reproduction: the paper's MNIST table (test error % at the last epoch) for
every loss, next to the paper's numbers (README of anokland/local-loss; paper Table 1).

quick: the mlp on a shortened schedule (10,000 training samples, 3 epochs, lr x0.25 after
epoch 2, one seed) — minutes on a CPU, a check that every loss learns, not comparable to the
paper's 100 epochs. full: the paper's recipe (100 epochs), mlp over three seeds and vgg8b
over one (vgg8b needs a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from local_loss.config import LocalLossConfig, Loss, Net
from local_loss.train import train
from mnistlab.study import Budget, Row, train_or_reuse

LOSSES: tuple[Loss, ...] = ("global", "pred", "sim", "predsim", "bio-predsim")
# Test error % on MNIST, 2 px jitter (paper Table 1 = the repository README's MNIST table).
# The paper reports no MNIST number for the backprop-free variant.
PAPER: dict[Net, dict[str, float]] = {
    "mlp": {"global": 0.75, "pred": 0.68, "sim": 0.80, "predsim": 0.62},
    "vgg8b": {"global": 0.26, "pred": 0.40, "sim": 0.65, "predsim": 0.31},
}
SOURCE_REF = "Nøkland & Eidnes 2019 (arXiv 1901.06656) Table 1; anokland/local-loss README"
TOLERANCE = 0.15  # points of test error: the goal for the full budget
QUICK = {"train_samples": 10_000, "epochs": 3, "milestones": (2,)}


def plan(budget: Budget) -> list[tuple[Net, tuple[int, ...], dict]]:
    """(net, seeds, config overrides) per budget."""
    if budget == "quick":
        return [("mlp", (0,), QUICK)]
    return [("mlp", (0, 1, 2), {}), ("vgg8b", (0,), {})]


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    command = f"uv run report --budget {budget} --studies local-loss"
    errors: dict[tuple[Net, Loss], list[float]] = {}
    seconds: dict[tuple[Net, Loss], list[float]] = {}
    for net, seeds, overrides in plan(budget):
        for loss in LOSSES:
            for seed in seeds:
                config = LocalLossConfig(
                    net=net,
                    loss=loss,
                    seed=seed,
                    tracker="none",
                    out_dir=folder / "runs",
                    run_name=f"{net}-{loss}-s{seed}",
                    **overrides,
                )
                summary = train_or_reuse(train, config)
                errors.setdefault((net, loss), []).append(summary["metrics"]["test/error"])
                per_epoch = summary["train_time_s"] / max(summary["epochs"], 1)
                seconds.setdefault((net, loss), []).append(per_epoch)
    rows = [
        make_row(budget, net, loss, values, seconds[net, loss], command)
        for (net, loss), values in errors.items()
    ]
    named = {f"{net}/{loss}": values for (net, loss), values in errors.items()}
    (folder / "errors.json").write_text(json.dumps(named, indent=2))
    (folder / "table.md").write_text(markdown_table(rows, errors, budget))
    plot(errors, folder / "test_error.png")
    return rows


def make_row(
    budget: Budget, net: Net, loss: Loss, values: list[float], seconds: list[float], command: str
) -> Row:
    paper = PAPER[net].get(loss)
    schedule = "10k samples, 3 epochs" if budget == "quick" else "100 epochs"
    note = f"{schedule}, last epoch; {sum(seconds) / len(seconds):.1f} s/epoch (train)"
    if paper is None:
        note += "; the paper has no MNIST number for it"
    elif budget == "quick":
        note += f"; not comparable to the paper's 100 epochs ({paper})"
    comparable = budget == "full" and paper is not None
    return Row(
        setting=f"MNIST {net}, loss {loss}",
        values=values,
        unit="test error %",
        source=paper if comparable else None,
        source_ref=SOURCE_REF if comparable else "",
        tolerance=TOLERANCE,
        higher_is_better=False,
        command=command,
        note=note,
    )


def markdown_table(
    rows: list[Row], errors: dict[tuple[Net, Loss], list[float]], budget: Budget
) -> str:
    lines = [
        f"MNIST test error % at the last epoch, budget {budget}, mean ± std over seeds "
        f"(`uv run report --budget {budget} --studies local-loss`).",
        "",
        "| setting | ours | paper | note |",
        "|---|---|---|---|",
    ]
    for row, (net, loss) in zip(rows, errors, strict=True):
        paper = PAPER[net].get(loss, "—")
        lines.append(f"| {row.setting} | {row.ours} | {paper} | {row.note} |")
    return "\n".join(lines) + "\n"


def plot(errors: dict[tuple[Net, Loss], list[float]], path: Path) -> None:
    nets = sorted({net for net, _ in errors})
    figure = Figure(figsize=(5 * len(nets), 3.6))
    for index, net in enumerate(nets, start=1):
        ax = figure.add_subplot(1, len(nets), index)
        losses = [loss for n, loss in errors if n == net]
        for x, loss in enumerate(losses):
            values = errors[net, loss]
            ax.scatter([x] * len(values), values, color="C0", label="ours" if x == 0 else None)
            if loss in PAPER[net]:
                ax.scatter(
                    [x],
                    [PAPER[net][loss]],
                    color="C3",
                    marker="_",
                    s=400,
                    label="paper" if x == 0 else None,
                )
        ax.set_xticks(range(len(losses)), losses)
        ax.set_ylabel("test error % (last epoch)")
        ax.set_title(f"MNIST {net}")
        ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
