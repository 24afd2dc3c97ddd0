"""`uv run --package guess-net train`: the VAE + classifier, its guess net, and (with --border)
border training; the test split is evaluated once at the end, overall and on the hard set."""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F

from guess_net.config import GuessNetConfig
from guess_net.losses import (
    focal_loss,
    group_embeddings_by_class,
    normalised_focal_loss,
    ramped_gamma,
    vae_loss,
)
from guess_net.metrics import auroc
from guess_net.model import GuessNetVAE, Outputs, Route, equal_size_model
from guess_net.reference import hard_mask
from mnistlab.batches import BatchSource
from mnistlab.classify import mnist_sources, prefixed
from mnistlab.cli import UsageError
from mnistlab.loop import fit
from mnistlab.resources import check_memory
from mnistlab.run import Run

DESCRIPTION = (
    "Guess-net border training: a VAE + classifier whose encoder keeps half its capacity for "
    "the samples a guess net expects it to get wrong (vs the same-size baseline and focal loss)."
)
EVAL_BATCH = 1000
PIXELS = 28 * 28


def build_model(config: GuessNetConfig, classes: int) -> GuessNetVAE:
    widths = [PIXELS, *config.hidden, config.latent]
    weights = sum(a * b for a, b in itertools.pairwise(widths)) * 2  # encoder + mirrored decoder
    # float32 parameters, gradients and Adam's two slots.
    check_memory(
        16 * weights,
        f"--hidden {config.hidden} --latent {config.latent}",
        "choose smaller --hidden widths or --latent",
    )
    try:
        return equal_size_model(
            reserved=config.reserved,
            pixels=PIXELS,
            hidden=config.hidden,
            latent=config.latent,
            classifier_hidden=config.classifier_hidden,
            classes=classes,
            dropout=config.dropout,
            guess_width=config.guess_width,
            # 0.5 (the source's) until a threshold is chosen on validation when routing starts.
            flag_threshold=0.5 if config.flag_threshold is None else config.flag_threshold,
            ge2e=config.ge2e_weight > 0,
            decoder_output=config.decoder_output,
        )
    except ValueError as exc:
        raise UsageError(f"--reserved conditional --hidden {config.hidden}: {exc}") from exc


def route_in(config: GuessNetConfig, epoch_index: int) -> Route:
    """Who takes the reserved half in epoch `epoch_index`: everyone (no border training), no one
    (border phase 1), or the flagged samples (border phase 2)."""
    if not config.border:
        return "all"
    return "guess" if config.routes(epoch_index) else "none"


def judged_logits(config: GuessNetConfig, out: Outputs) -> torch.Tensor:
    """The prediction the guess net learns to judge: the one made before any routing (the main
    half alone under border training, the whole network otherwise)."""
    return out.main_logits if config.border else out.logits


def classification_loss(
    config: GuessNetConfig, logits: torch.Tensor, labels: torch.Tensor, epoch_index: int
) -> torch.Tensor:
    if config.loss == "focal-lin":
        return focal_loss(logits, labels, alpha=config.alpha, gamma=config.gamma)
    if config.loss == "focal-source":
        gamma = ramped_gamma(config.gamma, epoch_index, config.epochs)
        return normalised_focal_loss(logits, labels, gamma)
    return F.cross_entropy(logits, labels)


def training_loss(
    config: GuessNetConfig,
    model: GuessNetVAE,
    x: torch.Tensor,
    labels: torch.Tensor,
    epoch_index: int,
) -> torch.Tensor:
    """Reconstruction + classification + KL (as the source: reconstruction averaged over
    pixels, KL averaged over latent dimensions), the guess net's BCE, optional GE2E."""
    out = model(x, route_in(config, epoch_index))
    assert out.recon is not None
    # vae_loss sums over pixels and latent dims; rescale to the source's means.
    vae = (
        vae_loss(
            out.recon,
            x,
            out.z_mean,
            out.z_logvar,
            config.reconstruction,
            kl_weight=config.kl_weight * 2 / config.latent * PIXELS,
        ).total
        / PIXELS
    )
    loss = vae + classification_loss(config, out.logits, labels, epoch_index)
    right = (judged_logits(config, out).argmax(dim=1) == labels).float()
    loss = loss + F.binary_cross_entropy_with_logits(out.guess_logit, right)
    unwrapped = getattr(model, "module", model)
    if unwrapped.ge2e is not None and int((labels.bincount() >= 2).sum()) >= 2:
        loss = loss + config.ge2e_weight * unwrapped.ge2e(
            group_embeddings_by_class(out.z_mean, labels)
        )
    return loss


@torch.no_grad()
def assess(
    config: GuessNetConfig,
    model: torch.nn.Module,
    source: BatchSource,
    epoch_index: int,
    hard: torch.Tensor | None = None,
) -> dict[str, float]:
    """Accuracy (routed, and of the main half alone), the guess net's AUROC (its probability of
    "right" against whether the judged prediction was right) and the routed share over the
    whole split; with `hard`, accuracy and routed share on those samples too. Every process
    walks the whole split (AUROC needs every sample)."""
    columns: dict[str, list[torch.Tensor]] = {
        "correct": [],
        "main_correct": [],
        "judged_right": [],
        "score": [],
        "routed": [],
    }
    for start in range(0, len(source), EVAL_BATCH):
        images = source.images[start : start + EVAL_BATCH]
        labels = source.labels[start : start + EVAL_BATCH]
        out = model(images.flatten(1), route_in(config, epoch_index), decode=False)
        columns["correct"].append(out.logits.argmax(dim=1) == labels)
        columns["main_correct"].append(out.main_logits.argmax(dim=1) == labels)
        columns["judged_right"].append(judged_logits(config, out).argmax(dim=1) == labels)
        columns["score"].append(out.guess_logit)
        columns["routed"].append(out.routed)
    correct, main_correct, judged_right, score, routed = (
        torch.cat(parts).float().cpu() for parts in columns.values()
    )
    metrics = {
        "acc1": correct.mean().item(),
        "main_acc1": main_correct.mean().item(),
        "guess_auroc": auroc(score, judged_right),
        "routed": routed.mean().item(),
    }
    if hard is not None:
        metrics["hard_acc1"] = correct[hard].mean().item()
        metrics["hard_routed"] = routed[hard].mean().item()
    return metrics


@torch.no_grad()
def choose_flag_threshold(model: torch.nn.Module, source: BatchSource) -> tuple[float, float]:
    """Set the flag threshold that flags as many samples of `source` as the main half gets
    wrong (a perfect guess net would flag exactly those); returns the threshold and that
    share. The model must be in eval mode."""
    wrong, right_probability = [], []
    for start in range(0, len(source), EVAL_BATCH):
        labels = source.labels[start : start + EVAL_BATCH]
        out = model(source.images[start : start + EVAL_BATCH].flatten(1), "none", decode=False)
        wrong.append(out.main_logits.argmax(dim=1) != labels)
        right_probability.append(torch.sigmoid(out.guess_logit.float()))
    share = torch.cat(wrong).float().mean()
    threshold = torch.quantile(torch.cat(right_probability), share)
    getattr(model, "module", model).flag_threshold.fill_(threshold)
    return threshold.item(), share.item()


def train(config: GuessNetConfig) -> dict[str, Any]:
    with Run(config) as run:
        # Pixels in [0, 1], not standardised: the source's input and reconstruction target.
        data = mnist_sources(config, run, EVAL_BATCH, standardise=False)
        model = build_model(config, data.classes)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        model, optimizer = run.prepare(model, optimizer)

        def loss_fn(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return training_loss(config, model, images.flatten(1), labels, run.state.epoch)

        def on_epoch_end(epoch: int, train_loss: float, metrics: dict[str, float]) -> bool:
            # Chosen again after every routed epoch, as the guess net's probabilities rise with
            # the main half's accuracy; and at the last epoch too, for a --resume with more.
            if config.border and epoch >= config.phase1_epochs and config.flag_threshold is None:
                threshold, share = choose_flag_threshold(model, data.val)
                run.log({"border/flag_threshold": threshold}, run.state.step)
                run.print(
                    f"border training: flag threshold {threshold:.4f}, which flags the "
                    f"{share:.2%} of validation samples the main half gets wrong"
                )
            if config.border and epoch == config.phase1_epochs < config.epochs:
                run.print(f"border training: routing flagged samples from epoch {epoch + 1} on")
            return False

        fit(
            run,
            model=model,
            optimizers=[optimizer],
            train=data.train,
            loss_fn=loss_fn,
            evaluate=lambda: prefixed("val", assess(config, model, data.val, run.state.epoch)),
            epochs=config.epochs,
            on_epoch_end=on_epoch_end,
        )
        model.eval()
        hard = hard_mask(config.dataset, config.data_dir, config.hard_fraction)
        last_epoch = max(run.state.epoch - 1, 0)
        metrics = prefixed("test", assess(config, model, data.test, last_epoch, hard))
        if config.border:
            metrics["border/flag_threshold"] = getattr(model, "module", model).flag_threshold.item()
        return run.finish(metrics, model)
