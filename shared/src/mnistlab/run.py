"""`Run`: the one object a study's `train` talks to — accelerator, run folder, tracker,
checkpoints, evaluation and the summary.

    with Run(config) as run:
        data = mnist_sources(config, run)
        model, optimizer = run.prepare(model, optimizer)
        fit(run, ...)
        return run.finish(metrics, model)
"""

from __future__ import annotations

import datetime
import hashlib
import json
import netrc
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import (
    InitProcessGroupKwargs,
    broadcast_object_list,
    convert_outputs_to_fp32,
    gather_object,
    get_mixed_precision_context_manager,
    set_seed,
)
from tqdm.auto import tqdm

from mnistlab.batches import Batches, derive_seed
from mnistlab.cli import UsageError, first_line
from mnistlab.config import RunConfig, launched_command, to_jsonable
from mnistlab.entry import Abandoned
from mnistlab.loop import LoopState
from mnistlab.provenance import machine
from mnistlab.run_folder import (
    CONFIG,
    SUMMARY,
    RunFolder,
    checkpoint_record,
    resume_instead,
    training_fields,
)


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


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class Run:
    """One run of a study, used as `with Run(config) as run:`. It owns the Accelerator, the
    run folder and the tracker.

    Build the data and the model first, then call `prepare`: only a run that got that far
    creates (or, on --resume, touches) its run folder, so a failed start leaves nothing behind.
    An exception that leaves the block abandons the run (`RunFolder.abandon`) and carries what
    was kept to `guarded_main`, which says it in one line.
    """

    def __init__(self, config: RunConfig, evaluate_only: bool = False) -> None:
        self.study = type(config).study
        self.config = config
        self.evaluate_only = evaluate_only
        self.started = time.perf_counter()
        # Accelerate keeps one state per process, fixed by its first Accelerator (mixed
        # precision included); a process may run several runs, e.g. a reproduction.
        AcceleratorState._reset_state(reset_partial_state=True)
        if config.mixed_precision == "fp16" and not torch.cuda.is_available():
            # Accelerate would accept it and compute in fp32, and the run would say fp16.
            raise UsageError(
                "--mixed-precision fp16 needs a GPU; on the CPU pass --mixed-precision bf16 or no"
            )
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(),
            mixed_precision=config.mixed_precision,
            log_with="wandb" if config.tracker == "wandb" else None,
            # Our schedulers step once per epoch, on every rank: no per-process multiplier.
            step_scheduler_with_optimizer=False,
            # A rank that stops responding fails the others after this, instead of never.
            kwargs_handlers=[
                InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=config.ddp_timeout))
            ],
        )
        self.state = LoopState()
        self.prepared = False
        self._writing = False  # config.json recorded, tracker started (see `_start_writing`)
        self.closed = False
        self._resumed_step = 0
        self.folder: RunFolder = self._on_main(lambda: RunFolder.pick(config, self.world_size))
        self.seed_everything()
        self.print(f"{self.study}: run folder {self.run_dir}")
        self.print(json.dumps(to_jsonable(config), indent=1))

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            self.close()
        elif not self.closed:
            note = self.folder.abandon()
            if self.prepared:  # before `prepare` nothing was written, which needs no note
                Abandoned(note, self.rank, self.world_size, self.config.ddp_timeout).attach_to(
                    error
                )

    # -- properties -------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.folder.path

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
        """Noise (dropout, sampled masks, augmentation choices) then differs per rank."""
        set_seed(derive_seed("noise", self.config.seed, self.rank) % 2**32)

    # -- the one set-up call ----------------------------------------------------------------
    def prepare(self, *objects: Any, checkpointed: Sequence[Any] = ()) -> Any:
        """Call once data and model are built: prepares models/optimizers/schedulers for the
        device and processes, seeds per-rank noise, restores the --resume checkpoint, and only
        then writes the run folder and starts the tracker (a resumed run: once it writes
        anything, see `_start_writing`). Returns the prepared objects
        (one object alone, like `Accelerator.prepare`). `checkpointed`: further objects with
        `state_dict`/`load_state_dict` saved in every checkpoint and restored on --resume, left
        as they are otherwise (e.g. a convergence monitor, members that are not DDP-wrapped);
        a module among them computes in the run's mixed precision, as a prepared one does."""
        for thing in checkpointed:
            self.accelerator.register_for_checkpointing(thing)
            if isinstance(thing, torch.nn.Module) and self.accelerator.native_amp:
                autocast = get_mixed_precision_context_manager(
                    True, self.accelerator.autocast_handler
                )
                thing.forward = convert_outputs_to_fp32(autocast(thing.forward))
        prepared = self.accelerator.prepare(*objects) if objects else ()
        self.seed_per_rank()
        self._on_main(self.folder.open)
        self.prepared = True
        self.restore()
        if self.folder.checkpoint is None:
            self._start_writing()
        return prepared

    def _start_writing(self) -> None:
        """Before a run's first write: record its config, drop the metrics lines logged after
        the resumed checkpoint, start the tracker. A resumed run calls it only when it has
        something to write, so resuming a finished run changes none of its files; an
        evaluation never does."""
        if self._writing or self.evaluate_only:
            return
        self._writing = True
        if self.is_main:
            self.write_json(CONFIG, to_jsonable(self.config))
            self.folder.forget_metrics_after(self._resumed_step)
        self._start_tracker()

    def _on_main(self, pick: Callable[[], Any]) -> Any:
        """Run `pick` on the main process; every rank gets its answer or its UsageError."""
        answer: list[Any] = [None, None]
        if self.is_main:
            try:
                answer = [pick(), None]
            except UsageError as error:
                answer = [None, str(error)]
        if self.world_size > 1:
            broadcast_object_list(answer)
        if answer[1]:
            raise UsageError(answer[1])
        return answer[0]

    def write_json(self, name: str, payload: dict) -> Path:
        """Write a JSON file into the run folder atomically (main process only)."""
        return self.folder.write_json(name, payload)

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
        self._start_writing()
        if self.is_main:
            self.folder.append_metrics({"step": step, **metrics})
        try:
            self.accelerator.log(metrics, step=step)
        except Exception as exc:  # never let the tracker stop a run
            self.print(f"warning: tracker log failed ({exc})")

    # -- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Save model/optimizer/scheduler/RNG state and the loop state for a finished epoch."""
        self._start_writing()
        partial, final = self.folder.checkpoint_folders(self.state.epoch)
        if self.is_main:
            self.folder.start_checkpoint(partial)
        self.accelerator.wait_for_everyone()
        error = ""
        try:
            self.accelerator.save_state(str(partial))
        # A full disk surfaces as OSError from Python, RuntimeError from torch.save's stream
        # writer and SafetensorError from safetensors: all mean "this checkpoint is not written".
        except Exception as exc:  # noqa: BLE001
            error = f"{type(exc).__name__}: {first_line(exc)}"
            failure = exc
        # Every rank learns whether any rank failed, so all stop together; past this point every
        # rank's files are written.
        errors = gather_object([error]) if self.world_size > 1 else [error]
        if any(errors):
            needed = self._checkpoint_bytes()
            if self.is_main:
                self.folder.discard_checkpoint(partial)
            exc = failure if error else OSError(next(e for e in errors if e))
            raise self.folder.disk_error(partial, exc, needed) from exc
        record = {
            "state": asdict(self.state),
            "world_size": self.world_size,
            "trained_with": training_fields(self.config),
        }
        # The main process records and renames the checkpoint; every rank waits for the answer.
        self._on_main(
            lambda: self.folder.complete_checkpoint(partial, final, record, self._checkpoint_bytes)
        )
        return final

    def _checkpoint_bytes(self) -> int:
        """About what one checkpoint takes: the last complete one's size, else the tensors of
        the prepared models and optimizers and of the objects passed as `checkpointed`."""
        previous = self.folder.last_checkpoint_bytes()
        if previous:
            return previous
        holders = [*self.accelerator._models, *self.accelerator._custom_objects]
        tensors = [t for holder in holders for t in holder.state_dict().values()]
        for optimizer in self.accelerator._optimizers:
            tensors += [
                t
                for state in optimizer.state_dict()["state"].values()
                for t in state.values()
                if torch.is_tensor(t)
            ]
        return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))

    def restore(self) -> None:
        """Load the checkpoint chosen by --resume (called by `prepare`)."""
        checkpoint = self.folder.checkpoint
        if checkpoint is None:
            return
        try:
            self.accelerator.load_state(str(checkpoint))
            self.state = LoopState(**checkpoint_record(checkpoint)["state"])
        except Exception as exc:
            raise UsageError(
                f"checkpoint {checkpoint} cannot be loaded ({type(exc).__name__}: "
                f"{first_line(exc, 120)}); {resume_instead(checkpoint)}"
            ) from exc
        self._resumed_step = self.state.step
        self.print(f"resumed from {checkpoint} (epoch {self.state.epoch})")

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
    def finish(
        self,
        metrics: dict[str, Any],
        model: torch.nn.Module,
        *,
        steps: int | None = None,
        samples: int | None = None,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        """Write summary.json, close the tracker and the process group.

        A study that does not train through `fit` (a simulation) passes its own steps, samples
        and training seconds. Resuming a finished run changes nothing: its summary is kept."""
        summary_path = self.run_dir / SUMMARY
        resumed = self.folder.checkpoint is not None
        if resumed and self.state.step == self._resumed_step and summary_path.is_file():
            self.print(f"run already finished; its summary is kept: {summary_path}")
            self.close()
            return json.loads(summary_path.read_text())
        if steps is not None:
            self.state.step = steps
        if samples is not None:
            self.state.samples = samples
        if seconds is not None:
            self.state.train_seconds = seconds
        self._start_writing()
        fingerprint = model_fingerprint(self.accelerator.unwrap_model(model))
        # Every rank's own fingerprint: DDP ranks must end with identical parameters.
        rank_fingerprints = gather_object([fingerprint]) if self.world_size > 1 else [fingerprint]
        summary = {
            "study": self.study,
            "run_dir": str(self.run_dir),
            "command": launched_command(self.config, getattr(sys, "orig_argv", sys.argv)),
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
            # Timings belong to a machine: its CPU (and AMX), GPU and the threads used.
            "machine": machine(),
            "threads": torch.get_num_threads(),
            "fingerprint": fingerprint,
            "ranks_agree": len(set(rank_fingerprints)) == 1,
            "config": to_jsonable(self.config),
        }
        if self.is_main:
            self.write_json(SUMMARY, summary)
        self.print(f"summary: {summary_path}")
        self.print(json.dumps(metrics))
        self.close()
        return summary

    def close(self) -> None:
        """End the tracker and the process group and unlock the run folder (once)."""
        if self.closed:
            return
        # Every rank reaches this barrier before the process group goes away: a rank that tears
        # down gloo while a peer still talks to rank 0's store is what aborts runs at exit.
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        self.folder.release()
        self.closed = True
