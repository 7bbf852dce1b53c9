"""Write files so that a crash never leaves a half-written one: write a temporary name, then rename."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgeml.errors import WriteError

# what a user can fix about a place (permissions, a file where a folder should be, a full disk); other OSErrors stay bugs
UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOSPC, errno.EDQUOT}


def write_error(exc: OSError, path: str | Path | None, fix: str = "make that folder writable or choose another place") -> WriteError | None:
    """A one-line WriteError for an OSError a user can fix (None for any other, which stays a bug)."""
    if exc.errno not in UNWRITABLE:
        return None
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        reason = "part of the path is a file, not a folder"
    elif exc.errno == errno.EISDIR:
        reason = "a folder of that name is in the way"
    else:
        reason = (exc.strerror or "").lower()
    error = WriteError(f"{path or exc.filename}: cannot be written ({reason}); {fix}")
    error.path, error.reason = path or exc.filename, reason  # so a caller can restate the fix for its own case
    return error


def _umask() -> int:
    try:  # Linux reports it without changing it (setting it, even briefly, races with other threads)
        with open("/proc/self/status") as fh:
            return int(next(line for line in fh if line.startswith("Umask:")).split()[1], 8)
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)  # elsewhere the only way to read it is to set it: put it straight back
        os.umask(mask)
        return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, then rename tmp_path onto path (atomic on one filesystem).

    The file gets the permissions of any new file (0666 less the umask), whatever the writer chose for
    its temporary one. A place the user cannot write to is a WriteError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # writers that use mkstemp (safetensors, torch.save) leave 0600
        os.replace(tmp, path)
    except OSError as exc:
        error = write_error(exc, path)
        if error is None:
            raise
        raise error from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
