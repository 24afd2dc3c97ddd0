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
import datetime
import fcntl
import hashlib
import json
import math
import netrc
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil
import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, broadcast_object_list, gather_object, set_seed
from tqdm.auto import tqdm

from mnistlab.batches import derive_seed
from mnistlab.cli import UsageError, fail, first_line, parse_config
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
    stopped: bool = False  # the epoch hook ended training (e.g. converged): a resume adds nothing


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


def check_memory(
    needed_bytes: float, what: str, fix: str, device: torch.device | None = None
) -> None:
    """Refuse, before allocating, a size that cannot fit: RAM on the CPU, free memory on a GPU."""
    if device is not None and device.type == "cuda":
        available = torch.cuda.mem_get_info(device)[0]
    else:
        available = psutil.virtual_memory().available
    if needed_bytes > available:
        raise UsageError(
            f"{what} needs about {needed_bytes / 2**30:.1f} GiB but {available / 2**30:.1f} GiB "
            f"is available; {fix}"
        )


def parse_run_config(
    config_cls: type[RunConfig], argv: Sequence[str] | None, description: str
) -> RunConfig:
    """Parse a study's command line. With --resume, flags not given on the command line take
    the values saved with the run being resumed, so `--resume RUN` alone continues it as it was.
    """
    config = parse_config(config_cls, argv, description)
    if config.resume is None:
        return config
    try:
        run_dir = find_checkpoint(config.out_dir / config_cls.study, config.resume).parent.parent
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
    """One run of a study: owns the Accelerator, the run folder and the tracker.

    Build the data and the model first, then call `prepare`: only a run that got that far
    creates (or, on --resume, touches) its run folder, so a failed start leaves nothing behind.
    """

    def __init__(self, config: RunConfig, evaluate_only: bool = False) -> None:
        self.study = type(config).study
        self.config = config
        self.evaluate_only = evaluate_only
        self.started = time.perf_counter()
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
        self.resume_from: Path | None = None
        self.opened = False  # the run folder exists and belongs to this process
        self._created = False  # ... and this process created it
        self._lock: int | None = None
        self._resumed_step = 0
        self.run_dir, self.resume_from = self._on_main(self._pick_run_dir)
        self.seed_everything()
        self.print(f"{self.study}: run folder {self.run_dir}")
        self.print(json.dumps(to_jsonable(config), indent=1))

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
        """Noise (dropout, sampled masks, augmentation choices) then differs per rank."""
        set_seed(derive_seed("noise", self.config.seed, self.rank) % 2**32)

    # -- the one set-up call ----------------------------------------------------------------
    def prepare(self, *objects: Any, checkpointed: Sequence[Any] = ()) -> Any:
        """Call once data and model are built: prepares models/optimizers/schedulers for the
        device and processes, seeds per-rank noise, restores the --resume checkpoint, and only
        then writes the run folder and starts the tracker. Returns the prepared objects
        (one object alone, like `Accelerator.prepare`). `checkpointed`: further objects with
        `state_dict`/`load_state_dict` saved in every checkpoint and restored on --resume, left
        as they are otherwise (e.g. a convergence monitor, members that are not DDP-wrapped)."""
        for thing in checkpointed:
            self.accelerator.register_for_checkpointing(thing)
        prepared = self.accelerator.prepare(*objects) if objects else ()
        self.seed_per_rank()
        self._on_main(self._open_run_dir)
        global ACTIVE_RUN
        ACTIVE_RUN = self
        self.restore()
        if self.is_main and not self.evaluate_only:  # an evaluation leaves the run as it is
            self.write_json("config.json", to_jsonable(self.config))
            self._forget_metrics_after(self.state.step)
        self._start_tracker()
        return prepared

    # -- run folder -------------------------------------------------------------------------
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

    def _pick_run_dir(self) -> tuple[Path, Path | None]:
        """Which folder (and checkpoint) this run uses; checked, but nothing is written yet."""
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
            existing = next((p for p in run_dir.parents if p.exists()), Path("."))
            if not os.access(existing, os.W_OK):
                raise UsageError(
                    f"cannot create {run_dir}: {existing} is not writable; choose "
                    "a writable --out-dir"
                )
            return run_dir, None
        checkpoint = find_checkpoint(study_dir, resume)
        run_dir = checkpoint.parent.parent
        if not os.access(run_dir, os.W_OK):
            raise UsageError(f"run folder {run_dir} is not writable; copy it somewhere writable")
        self._refuse_changed_config(run_dir / "config.json")
        return run_dir, checkpoint

    def _open_run_dir(self) -> None:
        """Create (new run) and lock the run folder: one process per run folder."""
        if self.resume_from is None:
            try:
                self.run_dir.mkdir(parents=True)
            except FileExistsError as exc:
                raise UsageError(
                    f"run folder {self.run_dir} appeared meanwhile; pass a new --run-name"
                ) from exc
            except OSError as exc:
                raise UsageError(
                    f"cannot create run folder {self.run_dir} ({exc.strerror}); "
                    "choose a writable --out-dir"
                ) from exc
            self._created = True
        try:  # a lock on the folder itself: nothing is written into it
            self._lock = os.open(self.run_dir, os.O_RDONLY)
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UsageError(
                f"run folder {self.run_dir} is in use by another process; wait "
                "for it to end, or start a new run"
            ) from exc
        except OSError as exc:
            raise UsageError(
                f"cannot lock run folder {self.run_dir} ({exc.strerror}); "
                "choose a writable --out-dir"
            ) from exc
        self.opened = True

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

    def _disk_error(self, what: Path, exc: BaseException, needed: int = 0) -> UsageError:
        free = shutil.disk_usage(self.run_dir).free if self.run_dir.exists() else 0
        space = (
            f"; it needs about {needed / 2**20:.0f} MiB, {free / 2**20:.0f} MiB free"
            if needed
            else ""
        )
        keep = complete_checkpoints(self.run_dir)
        kept = f"; checkpoint {keep[-1]} is kept (--resume {self.run_dir})" if keep else ""
        reason = getattr(exc, "strerror", None) or first_line(exc)
        return UsageError(
            f"cannot write {what} ({reason}){space}; free space or choose another --out-dir{kept}"
        )

    def write_json(self, name: str, payload: dict) -> Path:
        """Write a JSON file into the run folder atomically (main process only)."""
        path = self.run_dir / name
        partial = path.with_name(name + ".partial")
        try:
            partial.write_text(json.dumps(payload, indent=2) + "\n")
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise self._disk_error(path, exc) from exc
        return path

    def _forget_metrics_after(self, step: int) -> None:
        """A resumed run logs again what came after its checkpoint: drop those lines."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file() or self.resume_from is None:
            return
        kept = [
            line
            for line in path.read_text().splitlines(keepends=True)
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        partial = path.with_name("metrics.jsonl.partial")
        try:
            partial.write_text("".join(kept))
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise self._disk_error(path, exc) from exc

    # -- tracking ---------------------------------------------------------------------------
    def _start_tracker(self) -> None:
        """wandb through Accelerate; offline without a login; a failure only disables it."""
        if self.config.tracker != "wandb" or self.evaluate_only:
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
            path = self.run_dir / "metrics.jsonl"
            try:
                with path.open("a") as f:
                    f.write(json.dumps({"step": step, **metrics}) + "\n")
            except OSError as exc:
                raise self._disk_error(path, exc) from exc
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
        error = ""
        try:
            self.accelerator.save_state(str(partial))
            if self.is_main:
                (partial / LOOP_STATE).write_text(json.dumps(asdict(self.state)))
        # A full disk surfaces as OSError from Python, RuntimeError from torch.save's stream
        # writer and SafetensorError from safetensors: all mean "this checkpoint is not written".
        except Exception as exc:  # noqa: BLE001
            error = f"{type(exc).__name__}: {first_line(exc)}"
            failure = exc
        # Every rank learns whether any rank failed, so all stop together.
        errors = gather_object([error]) if self.world_size > 1 else [error]
        if any(errors):
            needed = self._checkpoint_bytes()
            if self.is_main:
                shutil.rmtree(partial, ignore_errors=True)
            exc = failure if error else OSError(next(e for e in errors if e))
            raise self._disk_error(partial, exc, needed) from exc
        if self.is_main:
            try:
                if final.exists():  # a re-run of this epoch after resuming from an earlier one
                    shutil.rmtree(final)
                os.replace(partial, final)
            except OSError as exc:
                shutil.rmtree(partial, ignore_errors=True)
                raise self._disk_error(final, exc, self._checkpoint_bytes()) from exc
            for old in complete_checkpoints(self.run_dir)[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return final

    def _checkpoint_bytes(self) -> int:
        """About what one checkpoint takes: the last complete one's size, else the tensors of
        the prepared models and optimizers and of the objects passed as `checkpointed`."""
        previous = complete_checkpoints(self.run_dir)
        if previous:
            return sum(f.stat().st_size for f in previous[-1].rglob("*") if f.is_file())
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
        if self.resume_from is None:
            return
        try:
            self.accelerator.load_state(str(self.resume_from))
            self.state = LoopState(**json.loads((self.resume_from / LOOP_STATE).read_text()))
        except Exception as exc:
            raise UsageError(
                f"checkpoint {self.resume_from} cannot be loaded ({type(exc).__name__}: "
                f"{first_line(exc, 120)}); pass an earlier one with --resume PATH"
            ) from exc
        self._resumed_step = self.state.step
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
        summary_path = self.run_dir / "summary.json"
        if self.resume_from and self.state.step == self._resumed_step and summary_path.is_file():
            self.print(f"run already finished; its summary is kept: {summary_path}")
            self.close()
            return json.loads(summary_path.read_text())
        if steps is not None:
            self.state.step = steps
        if samples is not None:
            self.state.samples = samples
        if seconds is not None:
            self.state.train_seconds = seconds
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
        self.print(f"summary: {summary_path}")
        self.print(json.dumps(metrics))
        self.close()
        return summary

    def close(self) -> None:
        global ACTIVE_RUN
        # Every rank reaches this barrier before the process group goes away: a rank that tears
        # down gloo while a peer still talks to rank 0's store is what aborts runs at exit.
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        self._release()
        ACTIVE_RUN = None

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def abandon(self) -> str:
        """After an interruption or failure: say what is kept. A new run with no checkpoint
        yet is removed, so the same --run-name can simply be started again."""
        self._release()
        if not (self.is_main and self.opened):
            return ""
        for partial in (self.run_dir / CHECKPOINTS).glob("*.partial"):
            shutil.rmtree(partial, ignore_errors=True)
        kept = complete_checkpoints(self.run_dir)
        if kept:
            return f"checkpoint {kept[-1]} is kept; continue with --resume {self.run_dir}"
        if self._created:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            return f"no checkpoint was written yet; run folder {self.run_dir} removed"
        return f"the run folder {self.run_dir} is unchanged"


ACTIVE_RUN: Run | None = None  # the run of this process, for the interruption message


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send), handled like Ctrl-C."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def guarded_main(main: Callable[[], Any]) -> Any:
    """Run a study's `main`: bad input is one line and exit 2; Ctrl-C (exit 130) and SIGTERM
    (exit 143) say in one line what was kept and how to continue; a silent DDP peer ends in
    one line instead of a hang."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return main()
    except UsageError as error:
        note = ACTIVE_RUN.abandon() if ACTIVE_RUN else ""
        fail(f"{error}" + (f" ({note})" if note and "kept" not in str(error) else ""))
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)
        note = ACTIVE_RUN.abandon() if ACTIVE_RUN else "nothing was written"
        print(
            f"\ninterrupted ({'SIGTERM' if terminated else 'Ctrl-C'}): {note}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(143 if terminated else 130) from None
    except Exception as exc:
        if ACTIVE_RUN is None or ACTIVE_RUN.world_size == 1 or not _is_collective_failure(exc):
            if ACTIVE_RUN:
                ACTIVE_RUN.abandon()
            raise
        run = ACTIVE_RUN
        note = run.abandon()
        others = [str(rank) for rank in range(run.world_size) if rank != run.rank]
        gone = f"rank {others[0]}" if len(others) == 1 else f"one of ranks {', '.join(others)}"
        print(
            f"error: rank {run.rank}: {gone} of this run stopped responding or "
            f"died (no answer within --ddp-timeout {run.config.ddp_timeout} s: "
            f"{first_line(exc)}); {note or 'see the other ranks’ logs'}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _is_collective_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    markers = (
        "timed out",
        "timeout",
        "connection reset",
        "connection closed",
        "broken pipe",
        "gloo",
        "nccl",
        "peer",
    )
    return isinstance(exc, RuntimeError) and any(m in text for m in markers)


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Called after each epoch's evaluation with (epoch number from 1, its metrics); True stops.
EpochHook = Callable[[int, dict[str, float]], bool | None]


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
    on_epoch_end: EpochHook | None = None,
) -> dict[str, float]:
    """The one training loop: epochs of shuffled batches, one backward per step, every optimizer
    stepped (a study with per-layer losses sums detached block losses), evaluation and a
    checkpoint after each epoch. `on_epoch_end` may stop training (convergence) or switch a
    phase. Returns the last evaluation."""
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
        state.stopped = bool(on_epoch_end and on_epoch_end(epoch + 1, metrics))
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
