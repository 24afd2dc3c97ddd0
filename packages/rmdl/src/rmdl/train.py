"""`uv run --package rmdl train`: train one random multimodel ensemble, select each member on
the validation split, leave dead members out, and report both votes.

All members train side by side in one `fit`: every step feeds the same batch to each member
and the loss is the sum of the members' losses (their parameters are disjoint, so each member
gets exactly its own gradient and its own optimizer step). Under `accelerate launch
--num_processes N` the members, not the samples, are split: process r trains members r, r+N,
... on the whole training split, and after each epoch every member's state is sent to all
processes, so each holds (and checkpoints) the whole ensemble. The logged train/loss is each
process's sum over its members, averaged over processes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from accelerate.utils import broadcast_object_list

from mnistlab.batches import BatchSource, derive_seed
from mnistlab.classify import Sources, mnist_sources
from mnistlab.cli import UsageError
from mnistlab.loop import fit
from mnistlab.resources import check_memory
from mnistlab.run import Run
from rmdl.config import RmdlConfig
from rmdl.ensemble import (
    ENSEMBLE_DIR,
    VOTES,
    Ensemble,
    alive_members,
    save_ensemble,
    tie_percent,
    vote,
    voters,
)
from rmdl.members import draw_specs, make_optimizer, parameter_count

DESCRIPTION = (
    "RMDL random multimodel deep learning: an ensemble of randomly drawn DNN, CNN and RNN "
    "members, each rebuildable from its saved spec, voting by majority and by mean probability."
)
# float32 bytes per parameter: weights, gradient, two optimizer slots, best copy
BYTES_PER_PARAMETER = 4 * 5


@torch.no_grad()
def probabilities(
    ensemble: Ensemble, index: int, source: BatchSource, *, best: bool = False
) -> torch.Tensor:
    """Class probabilities [samples, classes] of member `index` (or of its best copy) on every
    sample of `source`."""
    (ensemble.best if best else ensemble.members)[index].eval()
    parts = [
        ensemble(images, index, best=best).softmax(dim=1) for images, _, _ in source.eval_batches()
    ]
    return torch.cat(parts)


def from_owner(value: Any, owner: int, run: Run) -> Any:
    """`value` as held by process `owner`, on every process."""
    if run.world_size == 1:
        return value
    payload = [value if run.rank == owner else None]
    broadcast_object_list(payload, from_process=owner)
    return payload[0]


def to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(v) for v in value)
    return value


def share_members(ensemble: Ensemble, optimizers: list[Any], run: Run) -> None:
    """Every member's weights, best copy and optimizer state from its owner to all processes,
    so the main process's checkpoint holds the whole ensemble."""
    if run.world_size == 1:
        return
    for index, (member, best) in enumerate(zip(ensemble.members, ensemble.best, strict=True)):
        owner = index % run.world_size
        state = {
            "member": member.state_dict(),
            "best": best.state_dict(),
            "optimizer": optimizers[index].state_dict(),
            "acc": ensemble.best_val_acc[index],
            "epoch": ensemble.best_epoch[index],
        }
        state = from_owner(to_cpu(state) if run.rank == owner else None, owner, run)
        if run.rank != owner:
            member.load_state_dict(state["member"])
            best.load_state_dict(state["best"])
            optimizers[index].load_state_dict(state["optimizer"])
            ensemble.best_val_acc[index] = state["acc"]
            ensemble.best_epoch[index] = state["epoch"]


def train(config: RmdlConfig) -> dict[str, Any]:
    """Train the ensemble; returns the summary (metrics: both votes, best member, dead count)."""
    with Run(config) as run:
        # Members are split across processes, not data; pixels / 255 like the source.
        data = mnist_sources(config, run, sharded=False, standardise=False)
        specs = draw_specs(config, data.classes)
        if len(specs) < run.world_size:
            raise UsageError(
                f"--members {config.members}: {len(specs)} members for "
                f"{run.world_size} processes; give at least one member per process"
            )
        parameters = sum(parameter_count(spec) for spec in specs)
        check_memory(
            parameters * BYTES_PER_PARAMETER,
            f"--members {config.members} ({parameters:,} parameters)",
            "give fewer --members or narrower ranges",
            run.device,
        )
        ensemble = Ensemble(specs).to(run.device)
        owned = list(range(run.rank, len(specs), run.world_size))
        # The ensemble is not wrapped for DDP (members are split, gradients never synchronised):
        # it is checkpointed as it is; the optimizers are prepared as usual.
        optimizers = [make_optimizer(member) for member in ensemble.members]
        prepared = run.prepare(*optimizers, checkpointed=[ensemble])
        optimizers = list(prepared) if len(optimizers) > 1 else [prepared]

        def reseed_dropout(step: int) -> None:
            for index in owned:
                member = ensemble.members[index]
                member.reseed(
                    derive_seed("dropout", config.seed, member.spec.name, step), run.device
                )

        def loss_fn(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            total = torch.zeros((), device=run.device)
            for index in owned:
                loss = F.cross_entropy(ensemble(images, index), labels)
                # A diverged member must not stop the others: it ends near chance, found dead.
                total = total + torch.nan_to_num(loss, nan=0.0, posinf=0.0)
            return total

        def validate() -> dict[str, float]:
            epoch = run.state.epoch + 1
            for index in owned:
                val_acc = (
                    (probabilities(ensemble, index, data.val).argmax(dim=1) == data.val.labels)
                    .float()
                    .mean()
                    .item()
                )
                ensemble.keep_if_best(index, val_acc, epoch)
            share_members(ensemble, optimizers, run)
            best = ensemble.best_val_acc
            return {
                "val/member_acc1_mean": best.mean().item(),
                "val/member_acc1_max": best.max().item(),
                "val/dead_members": (~alive_members(best, config.dead_below)).sum().item(),
            }

        fit(
            run,
            model=ensemble,
            optimizers=[optimizers[i] for i in owned],
            train=data.train,
            before_step=reseed_dropout,
            loss_fn=loss_fn,
            evaluate=validate,
            epochs=config.epochs,
        )
        metrics, index, predictions = evaluate_ensemble(ensemble, data, config, run)
        if run.is_main:
            save_ensemble(run.run_dir / ENSEMBLE_DIR, ensemble, index, predictions)
        for row in index["members"]:
            run.print(
                f"{row['name']:>7}  {row['summary']:<48} {row['parameters']:>10,}  val "
                f"{100 * row['val_acc1']:.2f}%  test {100 * row['test_acc1']:.2f}%"
                + ("  DEAD (left out of the vote)" if row["dead"] else "")
            )
        return run.finish(metrics, ensemble)


def evaluate_ensemble(
    ensemble: Ensemble, data: Sources, config: RmdlConfig, run: Run
) -> tuple[dict[str, float], dict, dict[str, torch.Tensor]]:
    """Each member's best weights on validation and test (once), gathered from their owners;
    the two votes over the alive members; the per-member table."""
    splits = {"val": data.val, "test": data.test}
    probs = {split: [] for split in splits}
    for index in range(len(ensemble.specs)):
        owner = index % run.world_size
        for split, source in splits.items():
            mine = (
                probabilities(ensemble, index, source, best=True).cpu()
                if run.rank == owner
                else None
            )
            probs[split].append(from_owner(mine, owner, run))
    labels = {split: source.labels.cpu() for split, source in splits.items()}
    stacked = {split: torch.stack(parts) for split, parts in probs.items()}
    member_acc = {
        split: (stacked[split].argmax(dim=2) == labels[split]).float().mean(dim=1)
        for split in splits
    }
    alive = alive_members(ensemble.best_val_acc.cpu(), config.dead_below)
    voting = voters(ensemble.best_val_acc.cpu(), config.dead_below)
    if not alive.any():
        run.print(
            f"warning: every member is at or below --dead-below {config.dead_below} "
            "validation accuracy; all of them vote"
        )
    metrics: dict[str, float] = {}
    for split in splits:
        votes = vote(stacked[split], voting)
        for method in VOTES:
            metrics[f"{split}/{method}/acc1"] = (
                (votes[method] == labels[split]).float().mean().item()
            )
        metrics[f"{split}/vote/ties_percent"] = tie_percent(votes)
        metrics[f"{split}/best_member/acc1"] = member_acc[split][voting].max().item()
    metrics["members"] = len(ensemble.specs)
    metrics["dead_members"] = int((~alive).sum())
    rows = [
        {
            "name": spec.name,
            "kind": spec.kind,
            "summary": spec.summary(),
            "parameters": parameter_count(spec),
            "best_epoch": int(ensemble.best_epoch[i]),
            "val_acc1": member_acc["val"][i].item(),
            "test_acc1": member_acc["test"][i].item(),
            "dead": not bool(alive[i]),
        }
        for i, spec in enumerate(ensemble.specs)
    ]
    index = {
        "dataset": config.dataset,
        "classes": data.classes,
        "seed": config.seed,
        "dead_below": config.dead_below,
        "members": rows,
    }
    return (
        metrics,
        index,
        {
            **{f"{s}_probabilities": p for s, p in stacked.items()},
            **{f"{s}_labels": lab for s, lab in labels.items()},
        },
    )
