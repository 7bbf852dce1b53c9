"""Run folders: which one a new run gets, one process at a time in each, and --overwrite's swap.

Lock: an flock on runs/.NAME.lock, held for a whole train or resume. The operating system releases it
when the process dies (even by SIGKILL), so a lock is never stale; a killed holder leaves the file,
which the next one simply locks. The file holds the PID of its holder, for the error message, and is
deleted (while still locked) when the holder is done; a process that locked a file so deleted sees that
it is no longer at the path and tries again. Where fcntl is missing (Windows) runs are not locked.

Swap: `train --overwrite` sets the old run aside as runs/.NAME.replaced-PID and deletes it only once the
new run is worth keeping; whatever a killed swap leaves is put right by the next process to take the lock.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from forgeml.bundle import Bundle
from forgeml.errors import BundleError, Interrupted, TrainingDiverged
from forgeml.notes import note

if TYPE_CHECKING:
    from forgeml.config import Config

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class RunInUse(BundleError):
    """Another live process is training or resuming this run folder."""

    def __init__(self, run_dir: Path, pid: str):
        super().__init__(f"{run_dir}: another forgeml process (PID {pid}) is training this run; wait for it to finish or stop it "
                         f"(kill {pid}), or train under another --name")
        self.pid = pid


def lock_path(run_dir: Path) -> Path:
    run_dir = run_dir.resolve()  # '.', 'runs/x/..', a symlink: one lock file per real folder
    return run_dir.with_name(f".{run_dir.name}.lock")


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the run folder's lock; RunInUse (naming the holder's PID) when another process has it.
    The folder that holds the run folder must exist."""
    run_dir = Path(run_dir)
    if fcntl is None:  # pragma: no cover
        yield run_dir
        return
    path = lock_path(run_dir)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunInUse(run_dir, holder) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder deleted this file as we opened it: lock the one at the path now
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield run_dir
    finally:
        os.unlink(path)  # while still held, so no one can lock the old file after we let go
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def claim_run_dir(cfg: Config, name: str | None, overwrite: bool) -> Iterator[Path]:
    """runs_dir/name, locked for as long as the run trains; a finished or interrupted run of that name is
    never silently replaced: the new run gets name-2, name-3, ... unless overwrite is asked for. A name
    another process holds (it may not have made its folder yet) is passed over the same way."""
    base = Path(cfg.runs_dir) / (name or cfg.name or "run")
    base.parent.mkdir(parents=True, exist_ok=True)  # a new run may make runs_dir; a resume never makes a folder
    n = 1
    while True:
        run_dir = base if n == 1 else base.parent / f"{base.name}-{n}"
        n += 1
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(run_lock(run_dir))
            except RunInUse:
                if overwrite:
                    raise
                continue  # another process is choosing or training this name: take the next
            recover_replaced(run_dir)
            if overwrite or not run_dir.exists():
                yield run_dir
                return


def recover_replaced(run_dir: Path) -> None:
    """Finish what a killed `train --overwrite` left beside run_dir. Called with run_dir's lock held, so
    every leftover belongs to a holder that is gone, whatever its PID (PIDs are reused: in a container the
    same few come back on every start). The old run set aside as .NAME.replaced-PID is put back when
    run_dir is missing or holds a new run that died before anything worth resuming, and deleted when the
    new run is complete or resumable."""
    for left, _ in _leftovers(run_dir, "failed"):
        shutil.rmtree(left, ignore_errors=True)  # a failed new run, already swapped out
    for left, pid in _leftovers(run_dir, "replaced"):
        status = Bundle(run_dir).meta().get("status") if (run_dir / "meta.json").is_file() else None
        if not run_dir.exists():
            left.rename(run_dir)
            note(f"{run_dir}: put back the run that 'forgeml train --overwrite' (PID {pid}, stopped) had set aside as {left.name}")
        elif status == "complete" or (run_dir / "checkpoints" / "last.pt").is_file():
            shutil.rmtree(left)
            note(f"{run_dir}: deleted {left.name}, the run that 'forgeml train --overwrite' (PID {pid}, stopped) replaced; "
                 f"the new run is {'complete' if status == 'complete' else 'resumable: forgeml train --resume ' + str(run_dir)}")
        else:
            _swap_back(run_dir, left)
            note(f"{run_dir}: put back the run that 'forgeml train --overwrite' (PID {pid}, stopped) had set aside as {left.name}; "
                 "the new run it started had not reached a checkpoint and was deleted")


def _leftovers(run_dir: Path, kind: str) -> list[tuple[Path, str]]:
    """The folders named .NAME.KIND-PID or .NAME.KIND-PID-N beside run_dir, with their PIDs; a run whose
    own name only begins with NAME.KIND- (its leftovers are .NAME.KIND-5.KIND-PID) is not matched."""
    prefix = f".{run_dir.name}.{kind}-"
    found = []
    for left in sorted(run_dir.parent.glob(f"{glob.escape(prefix)}*")):
        pid, _, n = left.name[len(prefix):].partition("-")
        if pid.isdigit() and (not n or n.isdigit()):
            found.append((left, pid))
    return found


def _aside(run_dir: Path, kind: str) -> Path:
    """A free name beside run_dir to set a run aside under: .NAME.KIND-PID, or -PID-2, -PID-3, ... when a
    leftover of an earlier process with this PID holds it (a rename onto it would fail or merge)."""
    base = run_dir.with_name(f".{run_dir.name}.{kind}-{os.getpid()}")
    path, n = base, 2
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def _swap_back(run_dir: Path, replaced: Path) -> None:
    """run_dir <- replaced with renames only, so a kill at any moment leaves one whole run at run_dir
    (or none, with the old one still beside it for recover_replaced)."""
    failed = _aside(run_dir, "failed")
    if run_dir.exists():
        run_dir.rename(failed)
    replaced.rename(run_dir)
    shutil.rmtree(failed, ignore_errors=True)


@contextlib.contextmanager
def replacing(run_dir: Path):
    """--overwrite: an existing run is set aside and deleted only once the new one has finished (or was
    interrupted, and so can be resumed, or diverged, and so holds the last good checkpoint its error points
    to); if the new one fails otherwise, the old one is put back."""
    replaced = _aside(run_dir, "replaced") if run_dir.exists() else None
    if replaced is not None:
        run_dir.rename(replaced)
    try:
        yield
    except (Interrupted, TrainingDiverged):
        if replaced is not None:
            if (run_dir / "checkpoints" / "last.pt").is_file():  # the new run can be resumed or looked at: keep it
                shutil.rmtree(replaced)
            else:  # it stopped before its first checkpoint: nothing of it is worth the old run
                _swap_back(run_dir, replaced)
        raise
    except BaseException:
        if replaced is not None:
            _swap_back(run_dir, replaced)
        raise
    if replaced is not None:
        shutil.rmtree(replaced)
