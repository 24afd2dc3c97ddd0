"""The ensemble: members with their best-on-validation copies, the two votes, dead members, and
the saved form (`<run>/ensemble/`: one spec JSON and one weights file per member)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from rmdl.members import Member, MemberSpec, build_member

ENSEMBLE_DIR = "ensemble"
INDEX_FILE = "ensemble.json"
PREDICTIONS_FILE = "predictions.pt"
VOTES = ("vote", "average")
"""The two votes `vote` returns labels for (its "tied" entry is the majority vote's tie mask)."""


class Ensemble(nn.Module):
    """`members` train; `best` holds each member's weights at its best validation accuracy
    (the checkpoint the source picked on test). Both live in the run's checkpoints."""

    def __init__(self, specs: list[MemberSpec]) -> None:
        super().__init__()
        self.specs = specs
        self.members = nn.ModuleList(build_member(spec) for spec in specs)
        self.best = nn.ModuleList(build_member(spec).requires_grad_(False) for spec in specs)
        self.register_buffer("best_val_acc", torch.full((len(specs),), -1.0))
        self.register_buffer("best_epoch", torch.zeros(len(specs), dtype=torch.long))

    def forward(self, images: torch.Tensor, index: int, best: bool = False) -> torch.Tensor:
        """Logits of member `index`, or of its best copy. Called through the ensemble, members
        compute in the run's mixed precision (the ensemble is `checkpointed`, not prepared)."""
        return (self.best if best else self.members)[index](images)

    def keep_if_best(self, index: int, val_acc: float, epoch: int) -> None:
        """Keras `ModelCheckpoint(save_best_only=True)` on validation accuracy."""
        if val_acc > self.best_val_acc[index]:
            self.best[index].load_state_dict(self.members[index].state_dict())
            self.best_val_acc[index] = val_acc
            self.best_epoch[index] = epoch


def majority_vote(probabilities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard vote over members' labels, from their probabilities [members, samples, classes].
    A tie goes to the tied label with the highest mean probability over the members (the
    source's `Counter(votes).most_common()[0]` gives it to the earliest member's label, so a
    member's position decided a tie). Returns the labels and which samples were tied."""
    classes = probabilities.shape[2]
    labels = probabilities.argmax(dim=2)  # [members, samples]
    counts = nn.functional.one_hot(labels.T, classes).sum(dim=1)  # [samples, classes]
    tied = counts == counts.max(dim=1, keepdim=True).values
    mean = probabilities.mean(dim=0).nan_to_num(nan=-1.0)
    return torch.where(tied, mean, -2.0).argmax(dim=1), tied.sum(dim=1) > 1


def average_vote(probabilities: torch.Tensor) -> torch.Tensor:
    """Label of the mean class probability over members [members, samples, classes]."""
    return probabilities.mean(dim=0).argmax(dim=1)


def alive_members(best_val_acc: torch.Tensor, dead_below: float) -> torch.Tensor:
    """Members whose best validation accuracy beats `dead_below` (the others stayed near
    chance: their votes would only add noise)."""
    return best_val_acc > dead_below


def voters(best_val_acc: torch.Tensor, dead_below: float) -> torch.Tensor:
    """The alive members; all of them when none is alive (a smoke run), so there is a vote."""
    alive = alive_members(best_val_acc, dead_below)
    return alive if alive.any() else torch.ones_like(alive)


def vote(probabilities: torch.Tensor, alive: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both votes of the alive members, and which samples tied the majority vote."""
    kept = probabilities[alive]
    majority, tied = majority_vote(kept)
    return {"vote": majority, "average": average_vote(kept), "tied": tied}


def tie_percent(votes: dict[str, torch.Tensor]) -> float:
    """Percentage of samples whose majority vote was a tie."""
    return 100 * votes["tied"].float().mean().item()


def save_ensemble(folder: Path, ensemble: Ensemble, index: dict, predictions: dict) -> None:
    """Each member's spec (JSON) and best weights side by side, an index with the per-member
    table, and the members' validation/test probabilities."""
    folder.mkdir(exist_ok=True)
    for spec, best in zip(ensemble.specs, ensemble.best, strict=True):
        (folder / f"{spec.name}.json").write_text(spec.to_json() + "\n")
        torch.save({k: v.cpu() for k, v in best.state_dict().items()}, folder / f"{spec.name}.pt")
    torch.save(predictions, folder / PREDICTIONS_FILE)
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


def load_member(folder: Path, name: str) -> Member:
    """Rebuild a saved member from its spec alone, then load its weights."""
    member = build_member(MemberSpec.load(folder / f"{name}.json"))
    member.load_state_dict(torch.load(folder / f"{name}.pt", map_location="cpu"))
    return member.eval()


def load_ensemble(folder: Path) -> tuple[list[Member], dict]:
    """A saved ensemble's members (vote order) and its index."""
    index = json.loads((folder / INDEX_FILE).read_text())
    return [load_member(folder, row["name"]) for row in index["members"]], index
