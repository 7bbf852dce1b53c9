"""A compressed variant's run folder (RUN-int8, RUN-pruned50, ...): built in a staging folder beside it, renamed into
place only when whole, so a failure leaves nothing behind and never touches the source run.

    with staged_variant(source, dest, overwrite) as stage:   # stage holds the source's config.yaml and features.json
        ... write stage/model.onnx, meta.json, metrics.json ...
    # now dest is the variant; an old dest was replaced only with overwrite=True
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from forgeml.bundle import Bundle
from forgeml.errors import BundleError

COPIED = ("config.yaml", "features.json")  # what a variant shares with its source: the same preprocessing, the same data


def variant_path(source: Path, suffix: str, name: str | None = None) -> Path:
    """Where a variant goes: beside its source, named SOURCE-suffix unless a name is given."""
    return source.parent / (name or f"{source.name}-{suffix}")


@contextlib.contextmanager
def staged_variant(source: Bundle, dest: Path, overwrite: bool = False) -> Iterator[Path]:
    """A staging folder that becomes `dest` when the block ends without an error, and is deleted when it raises."""
    from forgeml.run_folder import replacing, run_lock

    dest = Path(dest)
    if dest.resolve() == source.path.resolve():
        raise BundleError(f"{dest}: a variant cannot replace the run it was made from; choose another --name")
    if dest.exists() and not overwrite:
        raise BundleError(f"{dest}: already exists; pass --overwrite to replace it, or choose another --name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(dest):  # no second process builds or trains into the same folder
        stage = dest.with_name(f".{dest.name}.staging-{os.getpid()}")
        shutil.rmtree(stage, ignore_errors=True)  # a leftover of a killed process with this PID
        stage.mkdir()
        try:
            for name in COPIED:
                shutil.copy2(source.file(name), stage / name)
            yield stage
            with replacing(dest):  # an old variant is set aside, and deleted only once the new one is in place
                stage.rename(dest)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
