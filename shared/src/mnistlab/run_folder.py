"""The run folder on disk: which one a run uses, its creation and lock, its atomic writes.

A run lives in `<out-dir>/<study>/<run-name>/`:
  config.json     the resolved config
  metrics.jsonl   one JSON line per logged step / epoch
  summary.json    final metrics, wall time, samples/s, world size, model fingerprint, command
  checkpoints/    `epoch-NNNN/` folders (written by `Run.save_checkpoint`) under a `.partial`
                  name and renamed when every rank has saved, so a crash never leaves a
                  checkpoint that looks complete; each one's loop.json holds the loop state,
                  the world size and training config it was saved with, and the size of every
                  file in it, so that a damaged or edited run is refused rather than resumed

Plain files and paths only (no Accelerate, no torch): `Run` calls it on the main process.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from mnistlab.cli import UsageError, first_line, two_sizes
from mnistlab.config import RunConfig, to_jsonable

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
LOOP_STATE = "loop.json"
KEEP_CHECKPOINTS = 2
PARTIAL = ".partial"


def _finished(checkpoint: Path) -> bool:
    """Renamed from its `.partial` name, which happens only after loop.json is written."""
    return (
        checkpoint.name.startswith("epoch-")
        and not checkpoint.name.endswith(PARTIAL)
        and (checkpoint / LOOP_STATE).is_file()
    )


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoints of a run, oldest first (unfinished ones keep a `.partial` name)."""
    folder = run_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("epoch-*") if _finished(p))


def checkpoint_record(checkpoint: Path) -> dict:
    """A checkpoint's loop.json: `state` (the `LoopState`), `world_size`, `trained_with` (the
    config fields that shape training) and `files` (name -> size of what the save wrote)."""
    return json.loads((checkpoint / LOOP_STATE).read_text())


def checkpoint_problem(checkpoint: Path) -> str:
    """Why `checkpoint` is not as it was saved ('' when it is): a file that any rank wrote is
    missing or has another size. Loading such a checkpoint may succeed and silently resume
    with other random states, so it is checked before."""
    try:
        files = checkpoint_record(checkpoint)["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {LOOP_STATE} is unreadable or was written by an older mnistlab"
    for name, size in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} when saved"
    return ""


def resume_instead(checkpoint: Path) -> str:
    """The fix for a checkpoint that cannot be loaded: the newest intact one before it."""
    run_dir = run_dir_of(checkpoint)
    earlier = [
        c
        for c in complete_checkpoints(run_dir)
        if c.name < checkpoint.name and not checkpoint_problem(c)
    ]
    if earlier:
        return f"resume from the intact {earlier[-1].name} with --resume {earlier[-1]}"
    return f"no intact checkpoint is left: delete {run_dir} and start the run again"


def find_checkpoint(study_dir: Path, resume: str) -> Path:
    """The checkpoint `--resume` names: 'latest', a run folder or a checkpoint folder; refused
    when it is not complete (see `checkpoint_problem`)."""
    if resume == "latest":
        candidates = [c for run in study_dir.glob("*") for c in complete_checkpoints(run)]
        if not candidates:
            raise UsageError(f"--resume latest: no finished checkpoint under {study_dir}")
        checkpoint = max(candidates, key=lambda c: (c / LOOP_STATE).stat().st_mtime)
    elif _finished(Path(resume)):
        checkpoint = Path(resume)
    else:
        found = complete_checkpoints(Path(resume))
        if not found and (Path(resume) / CONFIG).is_file():
            raise UsageError(f"--resume {resume}: {without_checkpoint(Path(resume))}")
        if not found:
            raise UsageError(
                f"--resume {resume}: no finished checkpoint there; give a run folder, a "
                f"checkpoint folder (…/{CHECKPOINTS}/epoch-NNNN) or 'latest'"
            )
        checkpoint = found[-1]
    owner = run_dir_of(checkpoint).parent.name
    if owner != study_dir.name:  # runs live in <out-dir>/<study>/<run-name>
        raise UsageError(
            f"--resume {resume}: that run belongs to the {owner} study, not {study_dir.name}; "
            f"resume it with `uv run --package {owner} train --resume {resume}`"
        )
    problem = checkpoint_problem(checkpoint)
    if problem:
        raise UsageError(
            f"checkpoint {checkpoint} cannot be loaded ({problem}); {resume_instead(checkpoint)}"
        )
    return checkpoint


def without_checkpoint(run_dir: Path) -> str:
    """What to do with a run folder that holds no finished checkpoint: a finished run whose
    checkpoints were not kept (a committed run keeps config, summary and metrics only), or a
    run killed (or still running) before its first epoch ended. Resuming it is impossible, and
    its name is taken."""
    if (run_dir / SUMMARY).is_file():
        return (
            f"run folder {run_dir} already exists and holds a finished run whose checkpoints "
            f"were not kept (its results are in {run_dir / SUMMARY}), so there is nothing to "
            "resume or evaluate; train it again under a new --run-name to get its weights"
        )
    if _locked(run_dir):
        return f"run folder {run_dir} is in use by a run still in its first epoch; wait for it"
    return (
        f"run folder {run_dir} holds no checkpoint (its run ended before its first epoch did), "
        f"so there is nothing to resume; delete it (rm -r {run_dir}) and start the run again, "
        "or pass a new --run-name"
    )


def _lock_folder(path: Path) -> int:
    """A handle on the folder itself holding its exclusive lock (nothing is written into it):
    one process per run folder. BlockingIOError when another process holds the lock."""
    handle = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(handle)
        raise
    return handle


def _locked(run_dir: Path) -> bool:
    """Whether a running process holds the run folder's lock."""
    try:
        os.close(_lock_folder(run_dir))  # closing releases the lock taken here
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def run_dir_of(checkpoint: Path) -> Path:
    return checkpoint.parent.parent


# How long a run trains: a finished run may be extended (resumed with a larger --epochs), so a
# checkpoint's `trained_with` leaves them out, but a finished run made for another length is
# not the run a reproduction asks for.
LENGTH_FIELDS = ("epochs", "max_steps")


def changed_fields(config: RunConfig, saved: dict) -> list[str]:
    """Fields in which `config` computes something other than the run that saved `saved` (its
    config.json, or a checkpoint's `trained_with`): every field but the `resumable_fields`,
    which only say where and how long, and the length wherever `saved` records it (a
    config.json does)."""
    now = training_fields(config)
    now.update({k: getattr(config, k) for k in LENGTH_FIELDS if k in saved})
    return sorted(k for k in now if saved.get(k) != now[k])


def training_fields(config: RunConfig) -> dict:
    """The config fields that shape what a run computes (all but the `resumable_fields`)."""
    return {k: v for k, v in to_jsonable(config).items() if k not in config.resumable_fields}


class RunFolder:
    """One run's folder: picked (and checked) without writing, then created and locked once
    the run has got far enough to train. Only the main process opens and writes it."""

    def __init__(self, path: Path, checkpoint: Path | None = None) -> None:
        self.path = path
        self.checkpoint = checkpoint
        """The checkpoint a resumed run starts from; None for a new run."""
        self.opened = False  # the folder exists and belongs to this process
        self.created = False  # ... and this process created it
        self._lock: int | None = None

    @classmethod
    def pick(cls, config: RunConfig, world_size: int) -> RunFolder:
        """The folder (and, on --resume, the checkpoint) `config` names, checked: a new run's
        folder must not exist and be creatable; a resumed one must be writable, its checkpoint
        complete and saved by as many processes and with the same settings."""
        study_dir = config.out_dir / type(config).study
        if config.resume is None:
            name = config.run_name or time.strftime("%Y%m%d-%H%M%S") + f"-s{config.seed}"
            path = study_dir / name
            if path.exists() and not complete_checkpoints(path):
                raise UsageError(without_checkpoint(path))
            if path.exists():
                raise UsageError(
                    f"run folder {path} already exists; pass --resume {path} to continue "
                    "it, or a new --run-name"
                )
            existing = next((p for p in path.parents if p.exists()), Path("."))
            if not os.access(existing, os.W_OK):
                raise UsageError(
                    f"cannot create {path}: {existing} is not writable; choose a writable --out-dir"
                )
            return cls(path)
        checkpoint = find_checkpoint(study_dir, config.resume)
        path = run_dir_of(checkpoint)
        if not os.access(path, os.W_OK):
            raise UsageError(f"run folder {path} is not writable; copy it somewhere writable")
        record = checkpoint_record(checkpoint)
        if record["world_size"] != world_size:
            raise UsageError(
                f"--resume: {checkpoint} was saved by {record['world_size']} process(es), this "
                f"run has {world_size}: the data shards, the batches of each step and the random "
                f"states would change; resume it with {record['world_size']} process(es) or "
                "start a new run"
            )
        trained = record["trained_with"]
        changed = changed_fields(config, trained)
        saved_path = path / CONFIG
        saved = json.loads(saved_path.read_text()) if saved_path.is_file() else trained
        edited = [k for k in changed if saved.get(k) != trained.get(k)]
        if edited:  # flags not given take config.json's values (see `parse_run_config`)
            values = ", ".join(f"{k} {json.dumps(saved.get(k))}" for k in edited)
            before = ", ".join(f"{k} {json.dumps(trained.get(k))}" for k in edited)
            raise UsageError(
                f"--resume: {saved_path} was edited after {checkpoint.name} was saved ({values}; "
                f"trained with {before}); put those values back or start a new run"
            )
        if changed:
            raise UsageError(
                f"--resume: {', '.join('--' + k.replace('_', '-') for k in changed)} differ "
                f"from the run being resumed ({saved_path}); pass the same values or start "
                "a new run"
            )
        planned = saved.get("epochs")
        if not (path / SUMMARY).exists() and planned not in (None, config.epochs):
            # A study's lr schedule or phases may follow the planned length (simplenet's one
            # cycle, guess-net's routing epoch): changing it midway trains neither length.
            raise UsageError(
                f"--resume: --epochs {config.epochs} differs from the {planned} that the "
                f"unfinished run {path} is training for; resume it with --epochs {planned}, "
                "or start a new run"
            )
        return cls(path, checkpoint)

    def open(self) -> None:
        """Create (new run) and lock the folder: one process per run folder."""
        if self.checkpoint is None:
            try:
                self.path.mkdir(parents=True)
            except FileExistsError as exc:
                raise UsageError(
                    f"run folder {self.path} appeared meanwhile; pass a new --run-name"
                ) from exc
            except OSError as exc:
                raise UsageError(
                    f"cannot create run folder {self.path} ({exc.strerror}); "
                    "choose a writable --out-dir"
                ) from exc
            self.created = True
        try:
            self._lock = _lock_folder(self.path)
        except BlockingIOError as exc:
            raise UsageError(
                f"run folder {self.path} is in use by another process; wait "
                "for it to end, or start a new run"
            ) from exc
        except OSError as exc:
            raise UsageError(
                f"cannot lock run folder {self.path} ({exc.strerror}); choose a writable --out-dir"
            ) from exc
        self.opened = True

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def abandon(self) -> str:
        """After an interruption or failure: say what is kept. A new run with no checkpoint
        yet is removed, so the same --run-name can simply be started again."""
        self.release()
        if not self.opened:
            return ""
        for partial in (self.path / CHECKPOINTS).glob("*" + PARTIAL):
            shutil.rmtree(partial, ignore_errors=True)
        kept = complete_checkpoints(self.path)
        if kept:
            return f"checkpoint {kept[-1]} is kept; continue with --resume {self.path}"
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            return f"no checkpoint was written yet; run folder {self.path} removed"
        return f"the run folder {self.path} is unchanged"

    # -- writes -----------------------------------------------------------------------------
    def disk_error(self, what: Path, exc: BaseException, needed: int = 0) -> UsageError:
        """One line for a write that failed: why, the space needed and free, what is kept."""
        free = shutil.disk_usage(self.path).free if self.path.exists() else 0
        need, have = two_sizes(needed, free)
        space = f"; it needs about {need}, {have} free" if needed else ""
        keep = complete_checkpoints(self.path)
        kept = f"; checkpoint {keep[-1]} is kept (--resume {self.path})" if keep else ""
        reason = getattr(exc, "strerror", None) or first_line(exc)
        return UsageError(
            f"cannot write {what} ({reason}){space}; free space or choose another --out-dir{kept}"
        )

    def _replace(self, path: Path, text: str) -> Path:
        try:
            write_whole(path, text)
        except OSError as exc:
            raise self.disk_error(path, exc) from exc
        return path

    def write_json(self, name: str, payload: dict) -> Path:
        """Write a JSON file into the run folder atomically."""
        return self._replace(self.path / name, json.dumps(payload, indent=2) + "\n")

    def append_metrics(self, line: dict) -> None:
        path = self.path / METRICS
        try:
            with path.open("a") as f:
                f.write(json.dumps(line) + "\n")
        except OSError as exc:
            raise self.disk_error(path, exc) from exc

    def forget_metrics_after(self, step: int) -> None:
        """A resumed run logs again what came after its checkpoint: drop those lines."""
        path = self.path / METRICS
        if not path.is_file() or self.checkpoint is None:
            return
        kept = [
            line
            for line in path.read_text().splitlines(keepends=True)
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        self._replace(path, "".join(kept))

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint_folders(self, epoch: int) -> tuple[Path, Path]:
        """(partial, final) folders of epoch `epoch`'s checkpoint."""
        final = self.path / CHECKPOINTS / f"epoch-{epoch:04d}"
        return final.with_name(final.name + PARTIAL), final

    def start_checkpoint(self, partial: Path) -> None:
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(exist_ok=True)

    def discard_checkpoint(self, partial: Path) -> None:
        shutil.rmtree(partial, ignore_errors=True)

    def complete_checkpoint(
        self, partial: Path, final: Path, record: dict, needed: Callable[[], int]
    ) -> None:
        """Once every rank has saved into `partial`: write its loop.json (`record` and the size
        of each file), rename it to its final name, then keep only the newest ones.
        `needed`: about what a checkpoint takes, asked only when a write fails."""
        files = {
            str(f.relative_to(partial)): f.stat().st_size
            for f in sorted(partial.rglob("*"))
            if f.is_file()
        }
        try:
            write_whole(partial / LOOP_STATE, json.dumps({**record, "files": files}))
            if final.exists():  # a re-run of this epoch after resuming from an earlier one
                shutil.rmtree(final)
            os.replace(partial, final)
        except OSError as exc:
            self.discard_checkpoint(partial)
            raise self.disk_error(final, exc, needed()) from exc
        for old in complete_checkpoints(self.path)[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)

    def last_checkpoint_bytes(self) -> int:
        """The size of the newest complete checkpoint; 0 when there is none yet."""
        previous = complete_checkpoints(self.path)
        if not previous:
            return 0
        return sum(f.stat().st_size for f in previous[-1].rglob("*") if f.is_file())


def write_whole(path: Path, text: str) -> None:
    """Write `path` whole or not at all: under a `.partial` name, then renamed."""
    partial = path.with_name(path.name + PARTIAL)
    try:
        partial.write_text(text)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
