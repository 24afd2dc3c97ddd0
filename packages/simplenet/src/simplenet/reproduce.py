"""SimpleNet's reproduction (`uv run report --studies simplenet`).

quick (minutes on a 2-core CPU): the speedrun preset over 3 seeds and a short SimpleNet-slim
run (modern recipe, 4,096 training samples, batch 32, 2 epochs) — a check that both learn, not
the source's setting.
cpu: SimpleNet-slim (311k) with the modern recipe for 20 epochs over seeds 0-2, in bf16 autocast
and channels-last, and the speedrun preset over seeds 0-9, with and without its test-time shifts
(`--tta 1` / `--tta 0`: the same training, and a paired row on validation accuracy, since
that choice was first made on test accuracy). Estimated ~70 min on the 2-core AMD
EPYC (AVX-512 BF16, no AMX), measured there at a load of about 1: one slim epoch (430 steps of
128) trained in 63 s, 70 s with its validation, test and start-up; 40-step runs took 4.8 s in
bf16 + channels-last, 9.6 s in fp32 + channels-last and 13.3 s in fp32; a speedrun seed is
~15 s.
full (the source's setting; needs a GPU): the standard net in the Caffe layout with the Caffe
solver (114 epochs, all 60,000 training images, as the source), the slim net with its own Caffe
solver (`--recipe slim-paper`: Nesterov SGD, all 60,000 images) and the speedrun preset over 10
seeds, with and without its test-time shifts.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

from matplotlib.figure import Figure

from mnistlab.stats import paired_differences
from mnistlab.study import Budget, Row, Source, train_or_reuse
from simplenet.config import SimpleNetConfig
from simplenet.train import train

CAFFE_LOG = "Coderx7/SimpleNet, Logs/MNIST (Caffe)"
SLIM_SOURCE = Source(99.72, f"{CAFFE_LOG}, Slim_Version_310KParam_99.72", stated="99.72 (slim)")
SPEEDRUN_NOTE = "target: mean >= 99.0% with <= 4 s of training on an idle 2-core CPU"


@dataclasses.dataclass(frozen=True)
class Setting:
    label: str
    name: str  # run-name prefix
    args: dict
    seeds: tuple[int, ...]
    source: Source | None = None
    at_source_setting: bool = False
    note: str = ""


# Pinned to bf16, the precision its committed runs trained in: the preset's own choice
# (--mixed-precision auto) depends on the machine, and a report must reuse the same runs anywhere.
SPEEDRUN = (
    "speedrun preset (fast-tiny, 1 epoch, bf16)",
    "speedrun",
    {"preset": "speedrun", "mixed_precision": "bf16"},
)
# The preset averages its predictions over 1 px shifts (--tta 1). That choice was first made on
# test accuracy; these runs train the same nets without it, so that validation can decide.
SPEEDRUN_TTA0 = (
    "speedrun preset without test-time shifts (--tta 0)",
    "speedrun-tta0",
    {"preset": "speedrun", "mixed_precision": "bf16", "tta": 0},
)
TTA_CLAIM = "test-time shifts (--tta 1) beat none, on the validation split"
# The preset's two net choices first made on test accuracy, each against the net it replaced,
# trained with the same preset and seeds: (run-name prefix, model, label, claim).
NET_CHOICES = (
    (
        "speedrun-pooled",
        "fast-tiny-pooled",
        "a pooled first layer (5x5 conv, 2x2 max pool)",
        "the stride-2 first conv beats a pooled one, on the validation split",
    ),
    (
        "speedrun-24-32",
        "fast-tiny-24-32",
        "24/32 conv channels",
        "16/48 conv channels beat 24/32, on the validation split",
    ),
)


def net_choice(name: str, model: str, label: str) -> Setting:
    return Setting(
        f"speedrun preset with {label} (bf16)",
        name,
        {"preset": "speedrun", "mixed_precision": "bf16", "model": model},
        tuple(range(10)),
        note="a choice of the preset, on validation",
    )


def settings(budget: Budget) -> list[Setting]:
    if budget == "quick":
        return [
            Setting(*SPEEDRUN, (0, 1, 2), note=SPEEDRUN_NOTE),
            Setting(
                "SimpleNet slim, modern recipe, 4,096 samples, batch 32, 2 epochs",
                "slim-short",
                {
                    "model": "slim",
                    "recipe": "modern",
                    "train_samples": 4096,
                    "batch_size": 32,
                    "val_size": 1000,
                    "epochs": 2,
                },
                (0,),
                SLIM_SOURCE,
                note="a learning check, not the source's setting",
            ),
        ]
    if budget == "cpu":
        return [
            Setting(
                "SimpleNet slim, modern recipe, 20 epochs, bf16, channels-last",
                "slim-modern",
                {
                    "model": "slim",
                    "recipe": "modern",
                    "epochs": 20,
                    "mixed_precision": "bf16",
                    "channels_last": True,
                },
                (0, 1, 2),
                SLIM_SOURCE,
                note="not the source's solver nor its length; selection on the 5,000-image "
                "validation split, test once after the last epoch",
            ),
            Setting(*SPEEDRUN, tuple(range(10)), note=SPEEDRUN_NOTE),
            Setting(*SPEEDRUN_TTA0, tuple(range(10)), note="the preset's choice, on validation"),
            *(net_choice(name, model, label) for name, model, label, _ in NET_CHOICES),
        ]
    return [
        Setting(
            "SimpleNet standard, Caffe layout, paper recipe (Caffe AdaDelta, 114 epochs)",
            "standard-paper",
            {"model": "standard", "layout": "caffe", "recipe": "paper", "val_size": 0},
            (0,),
            Source(99.68, CAFFE_LOG, stated="99.68 (last epoch)"),
            at_source_setting=True,
            note="source: last-epoch test accuracy of the standard net without dropout (its "
            "99.75% is one peak picked on test)",
        ),
        Setting(
            "SimpleNet slim, the slim net's Caffe solver (Nesterov SGD, 130 epochs)",
            "slim-paper",
            {"model": "slim", "recipe": "slim-paper", "val_size": 0},
            (0,),
            SLIM_SOURCE,
            at_source_setting=True,
            note="ours: the last epoch; the source's 99.72% is its snapshot at iteration 39,000, "
            "picked on the test set (its log's last test accuracy, at iteration 112,200, is "
            "99.68%)",
        ),
        Setting(*SPEEDRUN, tuple(range(10)), note=SPEEDRUN_NOTE),
        Setting(*SPEEDRUN_TTA0, tuple(range(10)), note="the preset's choice, on validation"),
    ]


def reproduce(budget: Budget, folder: Path) -> list[Row]:
    command = f"uv run report --budget {budget} --studies simplenet"
    rows, dots, curves, last_val = [], {}, {}, {}
    runs = folder / "runs"
    for setting in settings(budget):
        configs = [
            SimpleNetConfig(
                **setting.args,
                seed=seed,
                out_dir=runs,
                run_name=f"{setting.name}-s{seed}",
                tracker="none",
            )
            for seed in setting.seeds
        ]
        summaries = [train_or_reuse(train, config) for config in configs]
        accuracy = [100 * s["metrics"]["test/acc1"] for s in summaries]
        seconds = [s["train_time_s"] for s in summaries]
        dots[setting.label] = accuracy
        note = (
            f"{setting.note}; train time {statistics.fmean(seconds):.1f} s mean "
            f"(max {max(seconds):.1f} s) on {summaries[0]['device_name']}"
        )
        histories = [validation_history(runs / c.study / str(c.run_name)) for c in configs]
        last_val[setting.name] = [h[-1] for h in histories]  # one per seed, in seed order
        if configs[0].val_size and any(len(h) > 1 for h in histories):  # val 0 is the test
            curves[setting.label] = histories
            best = [max(range(len(h)), key=h.__getitem__) + 1 for h in histories]
            note += f"; best validation epoch per seed {best} of {len(histories[0])}"
        rows.append(
            Row(
                setting=setting.label,
                values=accuracy,
                unit="test accuracy % (last epoch)",
                higher_is_better=True,
                command=command,
                source=setting.source,
                at_source_setting=setting.at_source_setting,
                tolerance=0.1,
                note=note,
            )
        )
    if SPEEDRUN[1] in last_val and SPEEDRUN_TTA0[1] in last_val:
        rows.append(tta_claim(last_val[SPEEDRUN[1]], last_val[SPEEDRUN_TTA0[1]], command))
    for name, _, label, claim in NET_CHOICES:
        if SPEEDRUN[1] in last_val and name in last_val:
            rows.append(
                validation_claim(
                    f"speedrun preset vs the same with {label}",
                    last_val[SPEEDRUN[1]],
                    last_val[name],
                    "preset - other",
                    claim,
                    command,
                )
            )
    write_outputs(rows, dots, curves, folder)
    return rows


def tta_claim(with_tta: list[float], without: list[float], command: str) -> Row:
    """The preset's test-time shifts against none (the same trained nets, evaluated both ways)."""
    return validation_claim(
        "speedrun preset, --tta 1 vs --tta 0",
        with_tta,
        without,
        "--tta 1 - --tta 0",
        TTA_CLAIM,
        command,
    )


def validation_claim(
    setting: str, preset: list[float], other: list[float], difference: str, claim: str, command: str
) -> Row:
    """One of the speedrun preset's choices, first made on test accuracy, against the
    alternative: the last epoch's validation accuracy, paired by seed."""
    return Row(
        setting=f"{setting}, seeds 0-{len(preset) - 1}",
        values=paired_differences(preset, other),
        unit=f"validation accuracy points, {difference}, paired by seed",
        higher_is_better=True,
        command=command,
        claim=claim,
        claim_ref="this study's speedrun preset (the choice was first made on test accuracy)",
    )


def validation_history(run_dir: Path) -> list[float]:
    """Validation accuracy % per epoch, from the run's metrics.jsonl."""
    lines = (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
    return [100 * line["val/acc1"] for line in lines if "val/acc1" in line]


def write_outputs(
    rows: list[Row],
    dots: dict[str, list[float]],
    curves: dict[str, list[list[float]]],
    folder: Path,
) -> None:
    lines = ["| setting | test accuracy % (mean ± std, n) | source | note |", "|---|---|---|---|"]
    lines += [
        f"| {r.setting} | {r.ours} | {r.source.shown() if r.source else '—'} | {r.note} |"
        for r in rows
    ]
    (folder / "table.md").write_text("\n".join(lines) + "\n")
    figure = Figure(figsize=(7, 0.6 + 0.5 * len(dots)))
    ax = figure.subplots()
    for index, values in enumerate(dots.values()):
        ax.scatter(values, [index] * len(values), color="tab:blue")
    ax.set_yticks(range(len(dots)), list(dots))
    ax.axvline(99.0, color="grey", linestyle=":")
    ax.set_xlabel("test accuracy % (one dot per seed)")
    figure.tight_layout()
    figure.savefig(folder / "accuracy.png", dpi=120)
    if curves:
        plot_curves(curves, folder / "accuracy_vs_epoch.png")


def plot_curves(curves: dict[str, list[list[float]]], path: Path) -> None:
    """Validation accuracy against epoch, one line per seed, with the source's 99.7%."""
    figure = Figure(figsize=(7, 4))
    ax = figure.subplots()
    for colour, (label, histories) in enumerate(curves.items()):
        for seed, history in enumerate(histories):
            ax.plot(
                range(1, len(history) + 1),
                history,
                color=f"C{colour}",
                marker="o",
                label=label if seed == 0 else None,
            )
    ax.axhline(99.7, color="grey", linestyle=":", label="source: ≈ 99.7% (test)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy %")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
