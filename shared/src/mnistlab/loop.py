"""The one training loop every study shares (`fit`) and where it stands (`LoopState`)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mnistlab.batches import Batches
from mnistlab.run_folder import complete_checkpoints

if TYPE_CHECKING:
    from mnistlab.run import Run


@dataclass
class LoopState:
    """Where the loop stands; saved in each checkpoint."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    samples: int = 0  # training samples seen, all ranks together
    train_seconds: float = 0.0
    stopped: bool = False  # the epoch hook ended training (e.g. converged): a resume adds nothing


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Called after each epoch's evaluation with (epoch number from 1, the epoch's mean train loss,
# its metrics); True stops training.
EpochHook = Callable[[int, float, dict[str, float]], bool | None]


def fit(
    run: Run,
    *,
    model: torch.nn.Module,
    optimizers: Sequence[torch.optim.Optimizer],
    train: Batches,
    loss_fn: LossFn,
    evaluate: Callable[[], dict[str, float]],
    epochs: int,
    schedulers: Sequence[Any] = (),
    lr_at: Callable[[int], float] | None = None,
    before_step: Callable[[int], None] | None = None,
    on_epoch_end: EpochHook | None = None,
) -> dict[str, float]:
    """The one training loop: epochs of shuffled batches, one backward per step, every optimizer
    stepped (a study with per-layer losses sums detached block losses), evaluation and a
    checkpoint after each epoch. Returns the last evaluation.

    schedulers: stepped after each epoch. Per-step schedules get the optimizer steps taken so
    far (over the whole run, so restored on --resume): `lr_at` gives the lr of every param group
    for the next step, `before_step` sets other per-step state (e.g. reseeds a member's
    dropout). `on_epoch_end` may stop training (convergence) or switch a phase."""
    config, state, accelerator = run.config, run.state, run.accelerator
    metrics: dict[str, float] = {}
    if state.stopped:
        run.print(f"training had stopped after epoch {state.epoch}: nothing to continue")
        return metrics
    for epoch in range(state.epoch, epochs):
        model.train()
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=run.device)
        steps = 0
        stopped_early = False
        batches = run.progress(
            train.train_epoch(epoch), train.steps_per_epoch(), f"epoch {epoch + 1}/{epochs}"
        )
        for images, labels in batches:
            if lr_at is not None:
                lr = lr_at(state.step)
                for optimizer in optimizers:
                    for group in optimizer.param_groups:
                        group["lr"] = lr
            if before_step is not None:
                before_step(state.step)
            loss = loss_fn(images, labels)
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            for optimizer in optimizers:
                optimizer.step()
            loss_sum += loss.detach()
            steps += 1
            state.step += 1
            state.samples += len(labels) * run.world_size
            if state.step % config.log_every == 0:
                recent = _finite_mean(run, loss_sum, steps, epoch)
                run.log(
                    {"train/loss": recent, "epoch": epoch + steps / train.steps_per_epoch()},
                    state.step,
                )
            if config.max_steps is not None and state.step >= config.max_steps:
                stopped_early = True
                break
        for scheduler in schedulers:
            scheduler.step()
        state.train_seconds += time.perf_counter() - started
        train_loss = _finite_mean(run, loss_sum, steps, epoch)
        model.eval()
        metrics = evaluate()
        seconds = time.perf_counter() - started
        run.log({"epoch": epoch + 1, "train/loss_epoch": train_loss, **metrics}, state.step)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        run.print(f"epoch {epoch + 1}/{epochs}  loss {train_loss:.4f}  {shown}  ({seconds:.1f} s)")
        if stopped_early:
            run.print(
                f"stopped at --max-steps {config.max_steps} (no checkpoint for a partial epoch)"
            )
            break
        state.epoch = epoch + 1
        state.stopped = bool(on_epoch_end and on_epoch_end(epoch + 1, train_loss, metrics))
        run.save_checkpoint()
        if state.stopped:
            run.print(f"training stopped after epoch {epoch + 1} by the study's epoch hook")
            break
    return metrics


def _finite_mean(run: Run, loss_sum: torch.Tensor, steps: int, epoch: int) -> float:
    """Mean loss over all ranks; stop the run (keeping the last checkpoint) if it is not finite."""
    mean = run.accelerator.reduce(loss_sum.clone(), reduction="mean").item() / max(steps, 1)
    if not math.isfinite(mean):
        last = complete_checkpoints(run.run_dir)
        kept = f"last good checkpoint: {last[-1]}" if last else "no checkpoint was written yet"
        run.print(
            f"error: training loss became {mean} in epoch {epoch + 1} (step "
            f"{run.state.step}); {kept}; lower --lr or check the data"
        )
        with contextlib.suppress(Exception):
            run.close()
        raise SystemExit(1)
    return mean
