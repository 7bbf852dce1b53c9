"""One process at a time per run folder: an flock on runs/.NAME.lock, held for a whole train or resume.

The operating system releases the lock when the process dies (even by SIGKILL), so a lock is never
stale; a killed holder leaves the file, which the next one simply locks. The file holds the PID of its
holder, for the error message, and is deleted (while still locked) when the holder is done; a process
that locked a file so deleted sees that it is no longer at the path and tries again. Where fcntl is missing (Windows) runs
are not locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from forgeml.errors import BundleError

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
    return run_dir.with_name(f".{run_dir.name}.lock")


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the run folder's lock; RunInUse (naming the holder's PID) when another process has it."""
    run_dir = Path(run_dir)
    if fcntl is None:  # pragma: no cover
        yield run_dir
        return
    run_dir.parent.mkdir(parents=True, exist_ok=True)
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
