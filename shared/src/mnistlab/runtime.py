"""The training runtime every study shares: accelerator, run folder, tracking, checkpoints, loop.

A run lives in `<out-dir>/<study>/<run-name>/`:
  config.json     the resolved config
  metrics.jsonl   one JSON line per logged step / epoch
  summary.json    final metrics, wall time, samples/s, world size, model fingerprint, command
  checkpoints/    `epoch-NNNN/` folders from `Accelerator.save_state`, written under a
                  `.partial` name and renamed when complete, so a crash never leaves a
                  checkpoint that looks complete
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import netrc
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from tqdm.auto import tqdm

from mnistlab.batches import derive_seed
from mnistlab.cli import UsageError, fail, parse_config
from mnistlab.config import RunConfig, from_jsonable, to_jsonable

CHECKPOINTS = "checkpoints"
LOOP_STATE = "loop.json"
KEEP_CHECKPOINTS = 2


@dataclass
class LoopState:
    """Where the loop stands; saved in each checkpoint."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    samples: int = 0  # training samples seen, all ranks together
    train_seconds: float = 0.0


class Batches(Protocol):
    """What the loop needs from a data source (`BatchSource`, `LoaderBatches`)."""

    def steps_per_epoch(self) -> int: ...
    def train_epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]: ...


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a model's state_dict."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def wandb_has_login() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoints of a run, oldest first (unfinished ones keep a `.partial` name)."""
    folder = run_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("epoch-*") if (p / LOOP_STATE).is_file())


def find_checkpoint(study_dir: Path, resume: str) -> Path:
    """The checkpoint `--resume` names: 'latest', a run folder or a checkpoint folder."""
    if resume == "latest":
        candidates = [c for run in study_dir.glob("*") for c in complete_checkpoints(run)]
        if not candidates:
            raise UsageError(f"--resume latest: no finished checkpoint under {study_dir}")
        return max(candidates, key=lambda c: (c / LOOP_STATE).stat().st_mtime)
    path = Path(resume)
    if (path / LOOP_STATE).is_file():
        return path
    found = complete_checkpoints(path)
    if not found:
        raise UsageError(
            f"--resume {resume}: no finished checkpoint there; give a run folder, a "
            f"checkpoint folder (…/{CHECKPOINTS}/epoch-NNNN) or 'latest'"
        )
    return found[-1]


def parse_run_config(
    config_cls: type[RunConfig], argv: Sequence[str] | None, description: str, study: str
) -> RunConfig:
    """Parse a study's command line. With --resume, flags not given on the command line take
    the values saved with the run being resumed, so `--resume RUN` alone continues it as it was.
    """
    config = parse_config(config_cls, argv, description)
    if config.resume is None:
        return config
    try:
        run_dir = find_checkpoint(config.out_dir / study, config.resume).parent.parent
        saved = json.loads((run_dir / "config.json").read_text())
        default = from_jsonable(config_cls, {**saved, "resume": config.resume})
    except UsageError as error:
        fail(str(error))
    except (OSError, ValueError, TypeError) as exc:
        fail(
            f"--resume {config.resume}: its config.json cannot be read ({exc}); pass a run "
            "folder written by this version"
        )
    return parse_config(config_cls, argv, description, default=default)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class Run:
    """One training run of a study: owns the Accelerator, the run folder and the tracker."""

    def __init__(self, study: str, config: RunConfig, evaluate_only: bool = False) -> None:
        self.study = study
        self.config = config
        self.started = time.perf_counter()
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(),
            mixed_precision=config.mixed_precision,
            log_with="wandb" if config.tracker == "wandb" else None,
            # Our schedulers step once per epoch, on every rank: no per-process multiplier.
            step_scheduler_with_optimizer=False,
        )
        self.state = LoopState()
        self.resume_from: Path | None = None
        self.run_dir = self._agree_on_run_dir()
        self.seed_everything()
        if self.is_main and not evaluate_only:  # an evaluation leaves the run's config as is
            self.write_json("config.json", to_jsonable(config))
        self.print(f"{study}: run folder {self.run_dir}")
        self.print(json.dumps(to_jsonable(config), indent=1))
        self._start_tracker()

    # -- properties -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    def print(self, *args: object) -> None:
        self.accelerator.print(*args, flush=True)

    def progress(self, iterable: Iterable, total: int, desc: str) -> Iterator:
        """A progress bar on the main process only, and only on a terminal."""
        return iter(
            tqdm(
                iterable,
                total=total,
                desc=desc,
                leave=False,
                disable=None if self.is_main else True,
                dynamic_ncols=True,
            )
        )

    # -- seeding ----------------------------------------------------------------------------
    def seed_everything(self) -> None:
        """Same seed on every rank, so models are initialised identically."""
        set_seed(self.config.seed)

    def seed_per_rank(self) -> None:
        """Call after building the model: noise (dropout, sampled masks) then differs per rank."""
        set_seed(derive_seed("noise", self.config.seed, self.rank) % 2**32)

    # -- run folder -------------------------------------------------------------------------
    def _agree_on_run_dir(self) -> Path:
        """The main process picks the folder (and checks it); every rank gets the same answer."""
        answer: list[Any] = [None, None, None]
        if self.is_main:
            try:
                run_dir, resume_from = self._pick_run_dir()
                answer = [str(run_dir), str(resume_from) if resume_from else None, None]
            except UsageError as error:
                answer = [None, None, str(error)]
        if self.world_size > 1:
            broadcast_object_list(answer)
        if answer[2]:
            raise UsageError(answer[2])
        self.resume_from = Path(answer[1]) if answer[1] else None
        return Path(answer[0])

    def _pick_run_dir(self) -> tuple[Path, Path | None]:
        study_dir = self.config.out_dir / self.study
        resume = self.config.resume
        if resume is None:
            name = self.config.run_name or time.strftime("%Y%m%d-%H%M%S") + f"-s{self.config.seed}"
            run_dir = study_dir / name
            if run_dir.exists():
                raise UsageError(
                    f"run folder {run_dir} already exists; pass --resume {run_dir} to continue "
                    "it, or a new --run-name"
                )
            try:
                run_dir.mkdir(parents=True)
            except OSError as exc:
                raise UsageError(
                    f"cannot create run folder {run_dir} ({exc.strerror}); choose a writable "
                    "--out-dir"
                ) from exc
            return run_dir, None
        checkpoint = find_checkpoint(study_dir, resume)
        run_dir = checkpoint.parent.parent
        if not os.access(run_dir, os.W_OK):
            raise UsageError(f"run folder {run_dir} is not writable; copy it somewhere writable")
        self._refuse_changed_config(run_dir / "config.json")
        return run_dir, checkpoint

    def _refuse_changed_config(self, config_path: Path) -> None:
        """A resumed run must compute the same thing: only `resumable_fields` may change."""
        if not config_path.is_file():
            return
        saved = json.loads(config_path.read_text())
        resolved = to_jsonable(self.config)
        changed = sorted(
            k
            for k in resolved
            if k not in self.config.resumable_fields and saved.get(k) != resolved[k]
        )
        if changed:
            raise UsageError(
                f"--resume: {', '.join('--' + k.replace('_', '-') for k in changed)} differ "
                f"from the run being resumed ({config_path}); pass the same values or start "
                "a new run"
            )

    def write_json(self, name: str, payload: dict) -> Path:
        """Write a JSON file into the run folder atomically (main process only)."""
        path = self.run_dir / name
        partial = path.with_name(name + ".partial")
        partial.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(partial, path)
        return path

    # -- tracking ---------------------------------------------------------------------------
    def _start_tracker(self) -> None:
        """wandb through Accelerate; offline without a login; a failure only disables it."""
        if self.config.tracker != "wandb":
            return
        if "WANDB_MODE" not in os.environ and not wandb_has_login():
            os.environ["WANDB_MODE"] = "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            import wandb

            self.accelerator.init_trackers(
                f"mnistlab-{self.study}",
                config=to_jsonable(self.config),
                init_kwargs={
                    "wandb": {
                        "name": self.run_dir.name,
                        "dir": str(self.run_dir),
                        "settings": wandb.Settings(init_timeout=30),
                    }
                },
            )
            self.print(
                f"tracking: wandb ({os.environ.get('WANDB_MODE', 'online')}) in "
                f"{self.run_dir / 'wandb'}"
            )
        except Exception as exc:  # tracking is optional: never let it stop a run
            self.accelerator.trackers = []
            self.accelerator.log_with = []
            self.print(f"warning: wandb disabled for this run ({type(exc).__name__}: {exc})")

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Append one line to metrics.jsonl and send it to the tracker (main process)."""
        if self.is_main:
            with (self.run_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps({"step": step, **metrics}) + "\n")
        try:
            self.accelerator.log(metrics, step=step)
        except Exception as exc:  # never let the tracker stop a run
            self.print(f"warning: tracker log failed ({exc})")

    # -- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Save model/optimizer/scheduler/RNG state and the loop state for a finished epoch."""
        folder = self.run_dir / CHECKPOINTS
        final = folder / f"epoch-{self.state.epoch:04d}"
        partial = folder / f"epoch-{self.state.epoch:04d}.partial"
        if self.is_main:
            shutil.rmtree(partial, ignore_errors=True)
            folder.mkdir(exist_ok=True)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(partial))
        self.accelerator.wait_for_everyone()
        if self.is_main:
            (partial / LOOP_STATE).write_text(json.dumps(asdict(self.state)))
            if final.exists():  # a re-run of this epoch after resuming from an earlier one
                shutil.rmtree(final)
            os.replace(partial, final)
            for old in complete_checkpoints(self.run_dir)[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return final

    def restore(self) -> None:
        """Load the checkpoint chosen by --resume (after `accelerator.prepare`)."""
        if self.resume_from is None:
            return
        try:
            self.accelerator.load_state(str(self.resume_from))
            self.state = LoopState(**json.loads((self.resume_from / LOOP_STATE).read_text()))
        except Exception as exc:
            raise UsageError(
                f"checkpoint {self.resume_from} cannot be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:120]}); pass an earlier one with --resume PATH"
            ) from exc
        self.print(f"resumed from {self.resume_from} (epoch {self.state.epoch})")

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self,
        source: Batches,
        per_sample: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    ) -> dict[str, float]:
        """Mean of per-sample metrics over exactly the samples of `source`, across all ranks."""
        chunks: dict[str, list[torch.Tensor]] = {}
        valid_chunks = []
        for images, labels, valid in source.eval_batches():
            for name, value in per_sample(images, labels).items():
                chunks.setdefault(name, []).append(value.float())
            valid_chunks.append(valid)
        # Ranks hold equal-length shards (padded), so one gather each; padding is masked out.
        valid = self.accelerator.gather_for_metrics(torch.cat(valid_chunks))
        return {
            name: self.accelerator.gather_for_metrics(torch.cat(parts))[valid].mean().item()
            for name, parts in chunks.items()
        }

    # -- end --------------------------------------------------------------------------------
    def finish(self, metrics: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
        """Write summary.json, close the tracker and the process group."""
        fingerprint = model_fingerprint(self.accelerator.unwrap_model(model))
        # Every rank's own fingerprint: DDP ranks must end with identical parameters.
        rank_fingerprints = gather_object([fingerprint]) if self.world_size > 1 else [fingerprint]
        summary = {
            "study": self.study,
            "run_dir": str(self.run_dir),
            "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
            "git_commit": _git_commit() if self.is_main else None,
            "metrics": metrics,
            "epochs": self.state.epoch,
            "steps": self.state.step,
            "wall_time_s": round(time.perf_counter() - self.started, 3),
            "train_time_s": round(self.state.train_seconds, 3),
            "samples_per_s": round(self.state.samples / max(self.state.train_seconds, 1e-9), 1),
            "world_size": self.world_size,
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name() if self.device.type == "cuda" else "cpu",
            "mixed_precision": self.config.mixed_precision,
            "torch": torch.__version__,
            "fingerprint": fingerprint,
            "ranks_agree": len(set(rank_fingerprints)) == 1,
            "config": to_jsonable(self.config),
        }
        if self.is_main:
            self.write_json("summary.json", summary)
        self.print(f"summary: {self.run_dir / 'summary.json'}")
        self.print(json.dumps(metrics))
        self.close()
        return summary

    def close(self) -> None:
        # Every rank reaches this barrier before the process group goes away: a rank that tears
        # down gloo while a peer still talks to rank 0's store is what aborts runs at exit.
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
) -> dict[str, float]:
    """The one training loop: epochs of shuffled batches, one backward per step, every optimizer
    stepped (a study with per-layer losses sums detached block losses), evaluation and a
    checkpoint after each epoch. Returns the last evaluation."""
    config, state, accelerator = run.config, run.state, run.accelerator
    metrics: dict[str, float] = {}
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
        run.save_checkpoint()
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
